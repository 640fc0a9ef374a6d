"""Synthetic interactions with planted structure, deterministic given the seed.

Planted: long-tail (Zipf) item popularity with shuffled ids, 1-3 genres per item, users in taste clusters
with 1-2 favourite genres, a sparse item -> successor pattern that favours same-genre items, no repeated
items within a user's sequence, and per-user increasing timestamps. `planted_structure` returns the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.config import check_finite
from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.errors import ConfigError

GENRE_NAMES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Animation",
               "Thriller", "Fantasy", "Mystery", "Adventure")
TITLE_WORDS = ("Story", "Night", "Journey", "Secret", "Legacy", "Dream", "Shadow", "Empire", "Echo",
               "Horizon", "Promise", "Return", "Garden", "Signal")
START_TIME = 1_600_000_000.0  # seconds since the epoch (September 2020)
MEAN_GAP_S = 6 * 3600.0  # mean time between a user's consecutive interactions
MAX_TRIES = 10  # redraws of a repeated item before one is drawn uniformly from the unseen items


@dataclass
class SyntheticConfig:
    """Size and planted structure of the synthetic dataset; the p_* are per-step source probabilities."""

    num_users: int = 2000
    num_items: int = 500
    seed: int = 0
    num_genres: int = 8
    max_genres_per_item: int = 3  # each item has 1..this many genres (fewer are likelier)
    mean_seq_len: float = 30.0  # approximate: a shifted exponential clipped to max_seq_len
    min_seq_len: int = 5
    max_seq_len: int = 100
    zipf_exponent: float = 1.0  # base popularity of the item of rank r is proportional to r^-zipf_exponent
    p_sequential: float = 0.3  # next item is a planted successor of the previous item
    p_taste: float = 0.5  # next item is drawn by popularity among the user's favourite genres
    # with the remaining probability the next item is drawn by global popularity
    num_taste_clusters: int = 16  # user groups, each with 1-2 favourite genres
    num_successors: int = 4  # planted successors per item, the first the likeliest
    successor_same_genre: float = 0.8  # probability that a successor shares the item's primary genre
    timestamps: bool = True
    time_span_days: float = 365.0  # user start times are spread uniformly over this period

    def __post_init__(self) -> None:
        check_finite(self, "data.synthetic")
        checks = [
            ("num_users", self.num_users >= 1, ">= 1"),
            ("num_items", self.num_items >= 10, ">= 10"),
            ("num_genres", 1 <= self.num_genres <= self.num_items, "between 1 and num_items"),
            ("max_genres_per_item", self.max_genres_per_item >= 1, ">= 1"),
            ("min_seq_len", self.min_seq_len >= 3, ">= 3"),
            ("max_seq_len", self.min_seq_len <= self.max_seq_len <= self.num_items,
             "between min_seq_len and num_items"),
            ("mean_seq_len", self.min_seq_len <= self.mean_seq_len <= self.max_seq_len,
             "between min_seq_len and max_seq_len"),
            ("zipf_exponent", self.zipf_exponent >= 0, ">= 0"),
            ("p_sequential", 0 <= self.p_sequential <= 1, "in [0, 1]"),
            ("p_taste", 0 <= self.p_taste <= 1 - self.p_sequential, "in [0, 1 - p_sequential]"),
            ("num_taste_clusters", self.num_taste_clusters >= 1, ">= 1"),
            ("num_successors", 1 <= self.num_successors < self.num_items, "between 1 and num_items - 1"),
            ("successor_same_genre", 0 <= self.successor_same_genre <= 1, "in [0, 1]"),
            ("time_span_days", self.time_span_days > 0, "> 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"data.synthetic.{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass
class PlantedStructure:
    """Ground truth behind `generate`, indexed by internal item id (0 = padding) or internal user id."""

    genre_names: list[str]
    item_genres: np.ndarray  # [N+1, G] bool
    primary_genre: np.ndarray  # [N+1] int, -1 for padding
    popularity: np.ndarray  # [N+1] base popularity, sums to 1
    successors: np.ndarray  # [N+1, S] planted next items (duplicates possible; row 0 unused)
    successor_probs: np.ndarray  # [S] probability of each successor slot
    cluster_genres: np.ndarray  # [K, G] bool, favourite genres of each taste cluster
    user_cluster: np.ndarray  # [U] taste cluster of each user

    def user_genres(self) -> np.ndarray:
        """Favourite genres of each user.  # [U, G] bool"""
        return self.cluster_genres[self.user_cluster]


class _Sampler:
    """Draws item ids from one of several weight rows over 0..N (vectorised inverse-CDF sampling)."""

    def __init__(self, weights: np.ndarray) -> None:  # weights [R, N+1], column 0 zero
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        self.width = weights.shape[1]
        self.flat = (cdf + np.arange(len(cdf))[:, None]).ravel()  # rows stacked into one increasing array

    def draw(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        idx = np.searchsorted(self.flat, rows + rng.random(len(rows)), side="right") - rows * self.width
        return np.minimum(idx, self.width - 1)


def genre_names(num_genres: int) -> list[str]:
    """The first `num_genres` names of GENRE_NAMES, extended with "Genre 13", "Genre 14", ..."""
    extra = [f"Genre {k}" for k in range(len(GENRE_NAMES) + 1, num_genres + 1)]
    return list(GENRE_NAMES[:num_genres]) + extra


def planted_structure(cfg: SyntheticConfig) -> PlantedStructure:
    """Popularity, genres, successors and taste clusters (independent of the sequence draws)."""
    rng = np.random.default_rng([cfg.seed, 0])
    ranks = rng.permutation(cfg.num_items) + 1.0  # shuffled, so popularity is not id order
    popularity = np.concatenate([[0.0], ranks ** -cfg.zipf_exponent])
    popularity /= popularity.sum()
    primary, item_genres = _item_genres(cfg, rng)
    successors = _successors(cfg, rng, popularity, primary, item_genres)
    slot_weights = 1.0 / np.arange(1, cfg.num_successors + 1)
    k, g = cfg.num_taste_clusters, cfg.num_genres
    num_favourites = rng.integers(1, min(2, g) + 1, size=k)
    cluster_genres = _ranks(rng.random((k, g))) < num_favourites[:, None]
    return PlantedStructure(
        genre_names=genre_names(g),
        item_genres=item_genres,
        primary_genre=primary,
        popularity=popularity,
        successors=successors,
        successor_probs=slot_weights / slot_weights.sum(),
        cluster_genres=cluster_genres,
        user_cluster=rng.integers(0, k, size=cfg.num_users),
    )


def _ranks(keys: np.ndarray) -> np.ndarray:
    """Rank of each entry within its row (0 = smallest)."""
    return keys.argsort(axis=1).argsort(axis=1)


def _item_genres(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Primary genre [N+1] (every genre is some item's primary) and genre membership [N+1, G]."""
    n, g = cfg.num_items, cfg.num_genres
    primary = rng.permutation(np.arange(n) % g)
    keys = rng.random((n, g))
    keys[np.arange(n), primary] = -1.0  # the primary genre ranks first
    sizes = np.arange(1, min(cfg.max_genres_per_item, g) + 1)
    size_probs = 0.5 ** (sizes - 1.0)
    counts = rng.choice(sizes, size=n, p=size_probs / size_probs.sum())
    genres = _ranks(keys) < counts[:, None]
    return np.concatenate([[-1], primary]), np.vstack([np.zeros((1, g), bool), genres])


def _successors(cfg: SyntheticConfig, rng: np.random.Generator, popularity: np.ndarray,
                primary: np.ndarray, item_genres: np.ndarray) -> np.ndarray:
    """Successor items [N+1, S], drawn by sqrt-popularity, mostly among items of the same primary genre."""
    n, s = cfg.num_items, cfg.num_successors
    weight = np.sqrt(popularity)
    by_genre = _Sampler(item_genres.T * weight)
    anywhere = _Sampler(weight[None])
    source = np.repeat(np.arange(1, n + 1), s)
    same = rng.random(n * s) < cfg.successor_same_genre
    out = np.where(same, by_genre.draw(primary[source], rng), anywhere.draw(np.zeros(n * s, np.int64), rng))
    out = np.where(out == source, out % n + 1, out)  # never an item's own successor
    return np.vstack([np.zeros((1, s), np.int64), out.reshape(n, s)])


class _NextItem:
    """Proposes each user's next item: a successor of the previous item, a taste item, or a popular one."""

    def __init__(self, cfg: SyntheticConfig, truth: PlantedStructure) -> None:
        self.cfg = cfg
        self.truth = truth
        likes = (truth.cluster_genres.astype(np.int64) @ truth.item_genres.T.astype(np.int64)) > 0  # [K, N+1]
        self.taste = _Sampler(likes * truth.popularity)
        self.popular = _Sampler(truth.popularity[None])
        self.slot_cdf = np.cumsum(truth.successor_probs)

    def propose(self, users: np.ndarray, prev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        src = rng.random(len(users))
        seq = (src < self.cfg.p_sequential) & (prev > 0)
        taste = ~seq & (src < self.cfg.p_sequential + self.cfg.p_taste)
        pop = ~seq & ~taste
        out = np.empty(len(users), dtype=np.int64)
        slot = np.minimum(np.searchsorted(self.slot_cdf, rng.random(int(seq.sum())), side="right"),
                          len(self.slot_cdf) - 1)
        out[seq] = self.truth.successors[prev[seq], slot]
        out[taste] = self.taste.draw(self.truth.user_cluster[users[taste]], rng)
        out[pop] = self.popular.draw(np.zeros(int(pop.sum()), np.int64), rng)
        return out


def _unseen(past: np.ndarray, num_items: int, rng: np.random.Generator) -> np.ndarray:
    """One item per row drawn uniformly from the items not in that row of `past` [R, t]."""
    seen = np.zeros((len(past), num_items + 1), dtype=bool)
    seen[np.arange(len(past))[:, None], past] = True
    seen[:, 0] = True
    scores = rng.random(seen.shape)
    scores[seen] = -1.0
    return scores.argmax(axis=1)


def _sample_sequences(cfg: SyntheticConfig, truth: PlantedStructure, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Sequence lengths [U] and items in user-major, chronological order [sum(lengths)]."""
    extra = np.rint(rng.exponential(cfg.mean_seq_len - cfg.min_seq_len, size=cfg.num_users))
    lengths = np.minimum(cfg.min_seq_len + extra.astype(np.int64), cfg.max_seq_len)
    hist = np.zeros((cfg.num_users, int(lengths.max())), dtype=np.int64)
    next_item = _NextItem(cfg, truth)
    for t in range(hist.shape[1]):  # all users' step t at once
        users = np.flatnonzero(lengths > t)
        prev = hist[users, t - 1] if t else np.zeros(len(users), np.int64)
        past = hist[users, :t]
        cand = next_item.propose(users, prev, rng)
        for _ in range(MAX_TRIES):  # redraw repeats from the same mixture
            bad = np.flatnonzero((past == cand[:, None]).any(axis=1))
            if len(bad) == 0:
                break
            cand[bad] = next_item.propose(users[bad], prev[bad], rng)
        bad = np.flatnonzero((past == cand[:, None]).any(axis=1))
        cand[bad] = _unseen(past[bad], cfg.num_items, rng)
        hist[users, t] = cand
    return lengths, hist[np.arange(hist.shape[1]) < lengths[:, None]]


def _cover_all_items(items: np.ndarray, num_items: int, rng: np.random.Generator) -> np.ndarray:
    """Overwrite random repeat occurrences with never-drawn items, so every item occurs (when possible)."""
    present, first = np.unique(items, return_index=True)
    missing = np.setdiff1d(np.arange(1, num_items + 1), present)
    spare = np.ones(len(items), dtype=bool)
    spare[first] = False  # keep each item's first occurrence, so no item disappears
    slots = np.flatnonzero(spare)
    take = min(len(missing), len(slots))
    out = items.copy()  # a missing item occurs nowhere, so placing it cannot repeat it within a user
    out[rng.choice(slots, size=take, replace=False)] = rng.permutation(missing)[:take]
    return out


def _timestamps(cfg: SyntheticConfig, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strictly increasing integer-second timestamps per user, start times spread over the period."""
    start = START_TIME + np.floor(rng.uniform(0, cfg.time_span_days * 86400.0, size=len(lengths)))
    gaps = 1.0 + np.floor(rng.exponential(MEAN_GAP_S, size=int(lengths.sum())))
    total = np.cumsum(gaps)
    before = np.concatenate([[0.0], total])[np.cumsum(lengths) - lengths]  # gap total before each user
    return np.repeat(start - before, lengths) + total


def _catalog(truth: PlantedStructure) -> ItemCatalog:
    """Titles like "Comedy Story 17" and the genre tuples (primary genre first)."""
    names = truth.genre_names
    titles, genres = [""], [()]
    for item in range(1, len(truth.primary_genre)):
        primary = int(truth.primary_genre[item])
        others = [names[g] for g in np.flatnonzero(truth.item_genres[item]) if g != primary]
        titles.append(f"{names[primary]} {TITLE_WORDS[item % len(TITLE_WORDS)]} {item}")
        genres.append((names[primary], *others))
    return ItemCatalog(num_items=len(titles) - 1, titles=titles, attributes={"genre": genres})


def generate(cfg: SyntheticConfig) -> tuple[Interactions, ItemCatalog]:
    """Interactions of users 1..U with items 1..N (raw ids equal internal item ids) and their catalog."""
    truth = planted_structure(cfg)
    lengths, items = _sample_sequences(cfg, truth, np.random.default_rng([cfg.seed, 1]))
    items = _cover_all_items(items, cfg.num_items, np.random.default_rng([cfg.seed, 2]))
    users = np.repeat(np.arange(1, cfg.num_users + 1), lengths)
    ts = _timestamps(cfg, lengths, np.random.default_rng([cfg.seed, 3])) if cfg.timestamps else None
    # with every item present, encoding raw ids 1..N already yields internal ids 1..N (and is much faster)
    covered = len(np.unique(items)) == cfg.num_items
    item_map = None if covered else IdMap([str(i) for i in range(1, cfg.num_items + 1)], offset=1)
    return Interactions.from_raw(users, items, ts, item_map=item_map), _catalog(truth)
