"""Mean-rating baselines for rating prediction: global, per-user and per-item means fit on the train rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from seqrec.errors import SeqrecError
from seqrec.llm.rows import RatingRow

Key = Callable[[RatingRow], str]


def observed_ratings(rows: Sequence[RatingRow]) -> dict[tuple[str, str], float]:
    """(user, item key) -> rating from every train row label and every rated history entry of those rows; each
    pair counts once (histories repeat earlier rows), a row's own label wins over a history copy. The item key is
    the item id, or the item text when the id is empty."""
    ratings: dict[tuple[str, str], float] = {}
    for row in rows:
        for h in row.history:
            ratings.setdefault((row.user, h.item or h.text), float(h.rating))
    for row in rows:
        ratings[(row.user, row.item or row.target)] = float(row.label)
    return ratings


@dataclass
class MeanPredictor:
    """Predicts the mean rating of the row's group (user or item); groups unseen in training get `default`, the
    global mean. Without a key every row gets the global mean."""

    default: float
    means: dict[str, float]
    key: Key | None = None

    def predict(self, rows: Sequence[RatingRow]) -> list[float]:
        if self.key is None:
            return [self.default] * len(rows)
        return [self.means.get(self.key(row), self.default) for row in rows]


def _fit(rows: Sequence[RatingRow], part: int, key: Key | None) -> MeanPredictor:
    ratings = observed_ratings(rows)
    if not ratings:
        raise SeqrecError("no train ratings to fit a mean baseline on")
    default = sum(ratings.values()) / len(ratings)
    groups: dict[str, list[float]] = defaultdict(list)
    for pair, rating in ratings.items():
        groups[pair[part]].append(rating)
    return MeanPredictor(default, {g: sum(v) / len(v) for g, v in groups.items()}, key)


def global_mean(train: Sequence[RatingRow]) -> MeanPredictor:
    """The mean of all observed train ratings, for every row."""
    return _fit(train, 0, None)


def user_mean(train: Sequence[RatingRow]) -> MeanPredictor:
    """The user's mean observed train rating; unseen users get the global mean."""
    return _fit(train, 0, lambda row: row.user)


def item_mean(train: Sequence[RatingRow]) -> MeanPredictor:
    """The item's mean observed train rating (keyed by item id, or text when the id is empty); unseen items get the
    global mean."""
    return _fit(train, 1, lambda row: row.item or row.target)
