"""SIREN rating rows from any rated seqrec dataset, and a planted synthetic rating dataset for tests and demos.

Split rules (the LLM4Rec Movies split, spec §1.2), per user sorted by time:
* the last interaction is the **test** row, the second-to-last the **valid** row; both get the history up to
  (not including) the valid item, so their histories are identical;
* every earlier interaction from the 4th on is a **train** row whose history is everything before it, so a user
  with n interactions gives n − 5 train rows and the shortest train history has 3 items.

Every rating must be a finite number within the data's rating scale and every timestamp finite; anything else
is a `DataError` naming the dataset, user and item, so a NaN never reaches a prompt or a metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions
from seqrec.errors import ConfigError, DataError
from seqrec.llm.rows import RatedItem, RatingData, RatingRow

FIRST_TRAIN_TARGET = 3  # 0-based position of the first train target: train histories have at least 3 items
MIN_INTERACTIONS = FIRST_TRAIN_TARGET  # fewer and the valid row would have (almost) no history


@dataclass(frozen=True)
class Event:
    """One rated interaction of one user, before the split."""

    item: str  # item id
    text: str  # "title, attr1|attr2"
    rating: float
    timestamp: int = 0


def split_users(users: Iterable[tuple[str, Sequence[Event]]], name: str, min_interactions: int = 5,
                max_users: int | None = None, scale: tuple[float, float] = (1.0, 5.0),
                category: str = "movie") -> RatingData:
    """RatingData from per-user chronological events (oldest first), in the given user order.

    Users with fewer than `min_interactions` events are dropped; `max_users` keeps the first N that remain.
    Sample ids are f"{split}:{index}" in output order. A rating outside `scale` (or not finite) is a `DataError`.
    """
    if min_interactions < MIN_INTERACTIONS:
        raise ConfigError(f"min_interactions must be at least {MIN_INTERACTIONS} (got {min_interactions}): valid "
                          "and test rows need a history")
    if not (math.isfinite(scale[0]) and math.isfinite(scale[1]) and scale[0] <= scale[1]):
        raise ConfigError(f"the rating scale must be two finite numbers, low <= high (got {scale})")
    out: dict[str, list[RatingRow]] = {"train": [], "valid": [], "test": []}
    kept = 0
    for user, events in users:
        if len(events) < min_interactions:
            continue
        if max_users is not None and kept >= max_users:
            break
        kept += 1
        _check_ratings(name, user, events, scale)
        history = tuple(RatedItem(e.text, e.rating, e.item) for e in events)  # shared by all rows of the user
        for position in range(FIRST_TRAIN_TARGET, len(events) - 2):
            out["train"].append(_row(out, "train", user, events[position], history[:position]))
        for split, position in (("valid", len(events) - 2), ("test", len(events) - 1)):
            out[split].append(_row(out, split, user, events[position], history[: len(events) - 2]))
    if kept == 0:
        raise DataError(f"{name}: no user has at least {min_interactions} rated interactions")
    return RatingData(name=name, train=out["train"], valid=out["valid"], test=out["test"], scale=scale,
                      category=category)


def _check_ratings(name: str, user: str, events: Sequence[Event], scale: tuple[float, float]) -> None:
    low, high = scale
    for event in events:
        rating = event.rating
        if isinstance(rating, bool) or not isinstance(rating, Real) or not low <= rating <= high:  # NaN: False
            raise DataError(f"{name}: user {user!r}, item {event.item!r} has rating {rating!r}; ratings must be "
                            f"finite numbers from {low:g} to {high:g}; fix or drop that interaction")


def _row(out: dict[str, list[RatingRow]], split: str, user: str, event: Event,
         history: tuple[RatedItem, ...]) -> RatingRow:
    return RatingRow(sample_id=f"{split}:{len(out[split])}", split=split, user=user, item=event.item,
                     label=event.rating, target=event.text, history=history, timestamp=event.timestamp)


# ---------------------------------------------------------------- seqrec datasets


def rows_from_interactions(interactions: Interactions, catalog: ItemCatalog, name: str, min_interactions: int = 5,
                           max_users: int | None = None, category: str = "item") -> RatingData:
    """SIREN rows from a seqrec interaction table with ratings; item text is "title, attr1|attr2"."""
    if interactions.ratings is None:
        raise DataError(f"dataset {name!r} has no ratings; SIREN predicts star ratings, so use a dataset whose "
                        "interactions carry a rating column (e.g. ml-1m)")
    texts = [""] + [item_text(catalog, i, ext) for i, ext in enumerate(interactions.item_map.external, start=1)]
    ratings = interactions.ratings.astype(np.float64)  # [n]
    times = interactions.timestamps  # [n] float64 or None
    _require_finite(interactions, ratings, "rating", name)
    if times is not None:
        _require_finite(interactions, times, "timestamp", name)
    seqs = interactions.sequences()
    users = []
    for u in range(interactions.num_users):  # rows are chronological per user already
        rows = range(int(seqs.offsets[u]), int(seqs.offsets[u + 1]))
        events = [Event(interactions.item_map.external[int(interactions.items[r]) - 1],
                        texts[int(interactions.items[r])], float(ratings[r]),
                        int(times[r]) if times is not None else 0) for r in rows]
        users.append((interactions.user_map.external[u], events))
    return split_users(users, name, min_interactions, max_users, rating_scale(ratings), category)


def _require_finite(interactions: Interactions, values: np.ndarray, what: str, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        user = interactions.user_map.external[int(interactions.users[bad[0]])]
        raise DataError(f"dataset {name!r}: user {user!r} has {what} {values[bad[0]]} ({len(bad)} such rows in "
                        f"all); {what}s must be finite numbers, fix the data source")


def item_text(catalog: ItemCatalog, item: int, fallback: str) -> str:
    """"title, v1|v2|…" with the values of every catalog attribute; the external id when there is no title."""
    title = catalog.title(item) if catalog.titles and item < len(catalog.titles) else ""
    values = [v for vals in catalog.attributes.values() if item < len(vals) for v in vals[item]]
    return f"{title or fallback}, {'|'.join(values)}" if values else (title or fallback)


def rating_scale(ratings: np.ndarray) -> tuple[float, float]:
    """(1, 5) when every rating lies there, else the observed range."""
    low, high = float(ratings.min()), float(ratings.max())
    return (1.0, 5.0) if low >= 1.0 and high <= 5.0 else (low, high)


# ---------------------------------------------------------------- planted synthetic data

SYNTHETIC_TOPICS = (  # (title words, category path)
    ("Space Saga", "Sci-Fi|Space"),
    ("Haunted House", "Horror|Ghosts"),
    ("Love Letters", "Romance|Drama"),
    ("Cartoon Pals", "Animation|Kids"),
    ("Desert Outlaw", "Western|Cowboys"),
    ("Kitchen Secrets", "Documentary|Cooking"),
    ("Detective Files", "Crime|Mystery"),
    ("Jungle Quest", "Adventure|Wildlife"),
)


def synthetic_topic(topic: int) -> tuple[str, str]:
    """Title words and category path of planted topic `topic` (generic words past the named ones)."""
    if topic < len(SYNTHETIC_TOPICS):
        return SYNTHETIC_TOPICS[topic]
    return f"Theme{topic} Story", f"Genre{topic}|Style{topic}"


def synthetic_item_topics(num_items: int, num_topics: int) -> list[int]:
    """Planted topic of each synthetic item (round robin).  # [num_items]"""
    return [i % num_topics for i in range(num_items)]


def synthetic_rating_data(num_users: int = 60, num_items: int = 80, num_topics: int = 4, seed: int = 0,
                          min_len: int = 5, max_len: int = 15) -> RatingData:
    """Planted ratings: each user loves 1–2 topics (ratings 4–5) and dislikes the rest (1–2).

    Item `i{j}` belongs to topic j % num_topics and reads e.g. "Space Saga 12, Sci-Fi|Space".
    """
    if num_topics < 2 or num_items < max_len or min_len < 5 or max_len < min_len:
        raise ConfigError("synthetic_rating_data needs num_topics >= 2, num_items >= max_len and "
                          "5 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    topics = synthetic_item_topics(num_items, num_topics)
    texts = [_synthetic_text(j, topics[j]) for j in range(num_items)]
    users = []
    for u in range(num_users):
        loved = set(rng.choice(num_topics, size=int(rng.integers(1, 3)), replace=False).tolist())
        items = rng.choice(num_items, size=int(rng.integers(min_len, max_len + 1)), replace=False)
        events = [Event(f"i{j}", texts[j], float(rng.integers(4, 6) if topics[j] in loved else rng.integers(1, 3)),
                        timestamp=1_000 * (t + 1)) for t, j in enumerate(items.tolist())]
        users.append((f"u{u:03d}", events))
    return split_users(users, "synthetic-ratings", scale=(1.0, 5.0), category="movie")


def _synthetic_text(item: int, topic: int) -> str:
    words, path = synthetic_topic(topic)
    return f"{words} {item}, {path}"
