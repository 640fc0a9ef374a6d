"""k-core filtering and train/valid/test splits into padded-sequence-ready form."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from seqrec.data.catalog import ItemCatalog, item_counts, popularity_labels
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions, Sequences, offsets_of
from seqrec.errors import DataError

if TYPE_CHECKING:
    from seqrec.data.config import DataConfig

log = logging.getLogger(__name__)


@dataclass
class ItemStats:
    """Popularity of items in the training data (what beyond-accuracy metrics are measured against)."""

    counts: np.ndarray  # [N+1] training interactions per item
    labels: np.ndarray  # [N+1] +1 head / 0 mid / -1 tail

    @property
    def pop_scores(self) -> np.ndarray:  # [N+1] share of training interactions
        return self.counts / max(int(self.counts.sum()), 1)


@dataclass
class EvalSplit:
    """Users to evaluate: each has an input history (also the seen items) and one target item."""

    name: str
    users: np.ndarray  # [E] internal user ids
    histories: Sequences  # E rows, oldest first
    targets: np.ndarray  # [E] internal item ids
    num_items: int
    item_stats: ItemStats
    catalog: ItemCatalog

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class SplitData:
    """A dataset ready for training and evaluation."""

    name: str
    train: Sequences  # [U rows] training sequence per internal user (may be empty)
    valid: EvalSplit
    test: EvalSplit
    user_map: IdMap
    item_map: IdMap
    catalog: ItemCatalog
    item_stats: ItemStats
    full_histories: Sequences = field(repr=False)  # every known item per user (for serving)
    source: DataConfig | None = field(default=None, repr=False)  # the resolved source (set by registry.load)

    def __repr__(self) -> str:
        from seqrec.data.summary import summary

        return summary(self)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    @property
    def num_users(self) -> int:
        return len(self.user_map)


def kcore(interactions: Interactions, min_user: int = 5, min_item: int = 5, catalog: ItemCatalog | None = None
          ) -> tuple[Interactions, ItemCatalog | None]:
    """Iteratively drop users and items with fewer interactions than the thresholds."""
    mask = np.ones(len(interactions), dtype=bool)
    while True:
        user_n = np.bincount(interactions.users[mask], minlength=interactions.num_users)
        item_n = np.bincount(interactions.items[mask], minlength=interactions.num_items + 1)
        keep = mask & (user_n[interactions.users] >= min_user) & (item_n[interactions.items] >= min_item)
        if keep.sum() == mask.sum():
            break
        mask = keep
    if not mask.any():
        raise DataError(f"no interactions left after {min_user}/{min_item}-core filtering; lower the thresholds")
    if mask.all():
        return interactions, catalog
    kept_items = np.unique(interactions.items[mask])
    out = interactions.subset(mask)
    return out, None if catalog is None else _subset_catalog(catalog, kept_items)


def _subset_catalog(catalog: ItemCatalog, kept_items: np.ndarray) -> ItemCatalog:
    index = np.concatenate([[0], kept_items])
    titles = None if catalog.titles is None else [catalog.titles[i] for i in index]
    attrs = {k: [vals[i] for i in index] for k, vals in catalog.attributes.items()}
    return ItemCatalog(num_items=len(kept_items), titles=titles, attributes=attrs)


def _stats(train: Sequences, num_items: int, head_share: float, tail_share: float) -> ItemStats:
    counts = item_counts(train.items, num_items)
    return ItemStats(counts=counts, labels=popularity_labels(counts, head_share, tail_share))


def leave_one_out(
    interactions: Interactions,
    catalog: ItemCatalog,
    name: str = "data",
    head_share: float = 0.2,
    tail_share: float = 0.8,
    drop_short_users: bool = True,
) -> SplitData:
    """Valid target = second-to-last item, test target = last item; users need >= 3 interactions."""
    seqs = interactions.sequences()
    lengths = seqs.lengths
    short = lengths < 3
    if short.any() and not drop_short_users:
        raise DataError(
            f"{name}: {int(short.sum())} users have fewer than 3 interactions, too few for leave-one-out; "
            "apply k-core filtering (data.min_user_interactions) or allow dropping them"
        )
    if short.any():
        log.warning("%s: dropping %d users with fewer than 3 interactions", name, int(short.sum()))
    keep = np.flatnonzero(~short)
    if len(keep) == 0:
        raise DataError(f"{name}: no user has the 3 interactions leave-one-out needs")
    train = seqs.truncate(np.where(short, lengths, 2))  # short users' rows are empty, so taking `keep` copies nothing
    stats = _stats(train, interactions.num_items, head_share, tail_share)
    common = dict(num_items=interactions.num_items, item_stats=stats, catalog=catalog)
    valid = EvalSplit("valid", keep, train.take(keep), seqs.last(2)[keep], **common)
    test_histories = seqs.truncate(np.where(short, lengths, 1)).take(keep)
    test = EvalSplit("test", keep, test_histories, seqs.last(1)[keep], **common)
    return SplitData(name, train, valid, test, interactions.user_map, interactions.item_map, catalog, stats, seqs)


def temporal_split(
    interactions: Interactions,
    catalog: ItemCatalog,
    name: str = "data",
    valid_share: float = 0.1,
    test_share: float = 0.1,
    head_share: float = 0.2,
    tail_share: float = 0.8,
) -> SplitData:
    """Global temporal split: the last `test_share` of time is test, the `valid_share` before it validation.

    Training uses every interaction before the validation boundary. A valid (test) user has history before the
    boundary; the target is its first interaction after it, predicted from everything before the boundary.
    """
    if interactions.timestamps is None:
        raise DataError(f"{name}: the temporal split needs timestamps; this dataset has none (use split: loo)")
    ts = interactions.timestamps
    t_test = np.quantile(ts, 1.0 - test_share)
    t_valid = np.quantile(ts, 1.0 - test_share - valid_share)
    seqs = interactions.sequences()
    train = _masked(interactions, interactions.timestamps < t_valid)
    stats = _stats(train, interactions.num_items, head_share, tail_share)
    common = dict(num_items=interactions.num_items, item_stats=stats, catalog=catalog)
    valid = _first_after(interactions, t_valid, t_test, "valid", common)
    test = _first_after(interactions, t_test, np.inf, "test", common)
    if len(test) == 0:
        raise DataError(f"{name}: no user has interactions on both sides of the test boundary")
    return SplitData(name, train, valid, test, interactions.user_map, interactions.item_map, catalog, stats, seqs)


def temporal_users_split(
    interactions: Interactions,
    catalog: ItemCatalog,
    name: str = "data",
    valid_share: float = 0.1,
    test_share: float = 0.2,
    head_share: float = 0.2,
    tail_share: float = 0.8,
    seed: int = 0,
) -> SplitData:
    """Global temporal split with user-disjoint validation ("Does it look sequential?", Klenitskiy et al.).

    Boundary t* = the `1 - test_share` quantile of all timestamps. Test: every user with an interaction after
    t* and at least 2 in all; the target is the user's last item, predicted from everything before it. Training:
    the interactions up to t* of the other users minus a random `valid_share` of them (fixed `seed`), which
    become validation users: their last item up to t* predicted from the rest.
    """
    if interactions.timestamps is None:
        raise DataError(f"{name}: the temporal split needs timestamps; this dataset has none (use split: loo)")
    ts = interactions.timestamps
    boundary = np.quantile(ts, 1.0 - test_share)
    before = _masked(interactions, ts <= boundary)  # per-user items up to t*
    seqs = interactions.sequences()
    last_ts = np.where(seqs.lengths > 0, ts[np.maximum(seqs.offsets[1:] - 1, 0)], -np.inf)  # rows are chronological
    test_users = np.flatnonzero((last_ts > boundary) & (seqs.lengths >= 2))
    candidates = np.flatnonzero(before.lengths >= 2)
    rng = np.random.default_rng(seed)
    valid_users = np.sort(rng.choice(candidates, int(round(valid_share * len(candidates))), replace=False))
    train_lengths = before.lengths.copy()
    train_lengths[valid_users] = 0
    train = before.truncate(before.lengths - train_lengths)
    stats = _stats(train, interactions.num_items, head_share, tail_share)
    common = dict(num_items=interactions.num_items, item_stats=stats, catalog=catalog)
    valid = EvalSplit("valid", valid_users, before.take(valid_users).truncate(1), before.last(1)[valid_users],
                      **common)
    test = EvalSplit("test", test_users, seqs.take(test_users).truncate(1), seqs.last(1)[test_users], **common)
    if len(test) == 0 or len(valid) == 0:
        raise DataError(f"{name}: the temporal split left no test or no validation user; change test_share or "
                        "valid_share")
    return SplitData(name, train, valid, test, interactions.user_map, interactions.item_map, catalog, stats, seqs)


def _first_after(inter: Interactions, start: float, end: float, split: str, common: dict) -> EvalSplit:
    history = _masked(inter, inter.timestamps < start)
    rows = np.flatnonzero((inter.timestamps >= start) & (inter.timestamps < end))
    users, first = np.unique(inter.users[rows], return_index=True)  # rows are chronological per user
    has_history = history.lengths[users] > 0
    users, targets = users[has_history], inter.items[rows[first]][has_history]
    return EvalSplit(split, users.astype(np.int64), history.take(users), targets.astype(np.int64), **common)


def predefined_split(
    interactions: Interactions,
    catalog: ItemCatalog,
    valid_rows: np.ndarray,
    test_rows: np.ndarray,
    name: str = "data",
    head_share: float = 0.2,
    tail_share: float = 0.8,
) -> SplitData:
    """Split shipped with the data: `valid_rows` / `test_rows` mark each user's (at most one) target row.

    Every other row is training. The valid history is the user's training rows; the test history is the
    training plus validation rows. Users without such a row, or without history, are absent from that split.
    A target older than its history (the split is not chronological) is logged as a warning.
    """
    if not len(valid_rows) == len(test_rows) == len(interactions):
        raise DataError(f"{name}: the valid/test row masks must have one entry per interaction")
    _warn_unordered_targets(interactions, valid_rows, test_rows, name)
    train = _masked(interactions, ~(valid_rows | test_rows))
    stats = _stats(train, interactions.num_items, head_share, tail_share)
    common = dict(num_items=interactions.num_items, item_stats=stats, catalog=catalog)
    valid = _shipped_targets(interactions, valid_rows, train, "valid", name, common)
    test = _shipped_targets(interactions, test_rows, _masked(interactions, ~test_rows), "test", name, common)
    if len(test) == 0:
        raise DataError(f"{name}: the predefined split has no test user with a history")
    maps = (interactions.user_map, interactions.item_map)
    return SplitData(name, train, valid, test, *maps, catalog, stats, interactions.sequences())


def _warn_unordered_targets(inter: Interactions, valid_rows: np.ndarray, test_rows: np.ndarray, name: str) -> None:
    """Warn about users whose valid (test) row is older than one of their training (training or valid) rows."""
    if inter.timestamps is None:
        return
    ts, users = inter.timestamps, inter.users
    latest_train = np.full(inter.num_users, -np.inf)
    np.maximum.at(latest_train, users[~(valid_rows | test_rows)], ts[~(valid_rows | test_rows)])
    latest_before_test = latest_train.copy()
    np.maximum.at(latest_before_test, users[valid_rows], ts[valid_rows])
    early = (valid_rows & (ts < latest_train[users])) | (test_rows & (ts < latest_before_test[users]))
    affected = len(np.unique(users[early]))
    if affected:
        log.warning("%s: the predefined split is not chronological for %d of %d users (a validation or test "
                    "row is older than the rows before it, so their histories include later interactions); "
                    "use split: loo or temporal for a time-ordered evaluation", name, affected, inter.num_users)


def _masked(inter: Interactions, mask: np.ndarray) -> Sequences:
    """Per-user items of the rows in `mask` (row order kept)."""
    counts = np.bincount(inter.users[mask], minlength=inter.num_users)
    return Sequences(offsets_of(counts), inter.items[mask])


def _shipped_targets(inter: Interactions, target_rows: np.ndarray, history: Sequences, split: str, name: str,
                     common: dict) -> EvalSplit:
    rows = np.flatnonzero(target_rows)
    users, counts = np.unique(inter.users[rows], return_counts=True)
    if (counts > 1).any():
        k = int(np.argmax(counts > 1))
        raise DataError(f"{name}: user {inter.user_map.external[users[k]]} has {counts[k]} {split} rows; "
                        "a predefined split needs at most one target per user")
    targets = inter.items[rows[np.argsort(inter.users[rows], kind="stable")]]  # aligned with `users`
    has_history = history.lengths[users] > 0
    if not has_history.all():
        skipped = int((~has_history).sum())
        log.warning("%s: skipping %d %s users with no earlier interactions", name, skipped, split)
    users, targets = users[has_history], targets[has_history]
    return EvalSplit(split, users.astype(np.int64), history.take(users), targets.astype(np.int64), **common)
