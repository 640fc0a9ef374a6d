"""The one interaction table every reader produces, and per-user sequences in CSR form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.data.idmap import IdMap
from seqrec.data.ordering import group_by_user
from seqrec.errors import DataError


@dataclass
class Sequences:
    """Ragged per-row item sequences (CSR): row r holds `items[offsets[r]:offsets[r+1]]`, oldest first."""

    offsets: np.ndarray  # [R+1] int64
    items: np.ndarray  # [nnz] int64, internal item ids (>= 1)

    @classmethod
    def from_lists(cls, rows: list[list[int]] | list[np.ndarray]) -> Sequences:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
        return cls(offsets, items.astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.items[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:  # [R]
        return np.diff(self.offsets)

    def take(self, rows: np.ndarray) -> Sequences:
        """Sub-table of the given rows (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        if len(rows) and bool(np.all(rows[1:] > rows[:-1])):  # increasing rows: a mask keeps their items
            kept = np.zeros(len(self), dtype=bool)
            kept[rows] = True
            return Sequences(offsets_of(lengths), self.items[self._prefix(np.where(kept, self.lengths, 0))])
        return Sequences(offsets_of(lengths), self.items[concat_ranges(self.offsets[rows], lengths)])

    def truncate(self, drop_last: np.ndarray | int) -> Sequences:
        """Drop the last `drop_last` items of each row (an int or one count per row)."""
        lengths = np.maximum(self.lengths - drop_last, 0)
        return Sequences(offsets_of(lengths), self.items[self._prefix(lengths)])

    def _prefix(self, lengths: np.ndarray) -> slice | np.ndarray:
        """Index of the first `lengths[r]` items of every row: a slice when that is all of them, else a mask
        (few items dropped) or positions (few kept)."""
        dropped = self.lengths - lengths  # [R]
        n_dropped = int(dropped.sum())
        if n_dropped == 0:
            return slice(None)
        if 2 * n_dropped <= len(self.items):
            keep = np.ones(len(self.items), dtype=bool)
            keep[concat_ranges(self.offsets[:-1] + lengths, dropped)] = False
            return keep
        return concat_ranges(self.offsets[:-1], lengths)

    def last(self, back: int = 1) -> np.ndarray:
        """Item at position -back of each row, 0 where the row is too short.  # [R]"""
        lengths = self.lengths
        idx = self.offsets[1:] - back
        out = np.zeros(len(self), dtype=np.int64)
        ok = lengths >= back
        out[ok] = self.items[idx[ok]]
        return out

    def padded(self, max_len: int) -> np.ndarray:
        """Left-padded matrix of the last `max_len` items per row.  # [R, max_len]"""
        n_rows = len(self)
        lengths = np.minimum(self.lengths, max_len)
        out = np.zeros((n_rows, max_len), dtype=np.int64)
        if n_rows == 0:
            return out
        row_idx = np.repeat(np.arange(n_rows), lengths)
        col_idx = concat_ranges(max_len - lengths, lengths)
        src = concat_ranges(self.offsets[1:] - lengths, lengths)
        out[row_idx, col_idx] = self.items[src]
        return out

    def row_ids(self) -> np.ndarray:
        """Row index of every stored item.  # [nnz]"""
        return np.repeat(np.arange(len(self)), self.lengths)


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """CSR offsets of rows with these lengths.  # [R] -> [R+1] int64"""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for each pair, vectorised (one output allocation)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    nonempty = lengths > 0
    starts, lengths = np.asarray(starts, dtype=np.int64)[nonempty], lengths[nonempty]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out = np.ones(total, dtype=np.int64)  # steps of 1 inside a range, a jump at each range's first position
    heads = np.cumsum(lengths[:-1])
    out[0] = starts[0]
    out[heads] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    np.cumsum(out, out=out)
    return out


@dataclass
class Interactions:
    """(user, item[, timestamp, rating]) rows with internal ids; row order is chronological per user."""

    users: np.ndarray  # [n] int64 in 0..U-1
    items: np.ndarray  # [n] int64 in 1..N
    user_map: IdMap
    item_map: IdMap
    timestamps: np.ndarray | None = None  # [n] float64
    ratings: np.ndarray | None = None  # [n] float32

    @classmethod
    def from_raw(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        timestamps: np.ndarray | None = None,
        ratings: np.ndarray | None = None,
        item_map: IdMap | None = None,
    ) -> Interactions:
        """Encode raw ids; rows are ordered by user, then timestamp (stable, so file order breaks ties).

        Ids may be numpy arrays, lists or Arrow arrays of integers or strings.
        """
        if len(users) != len(items):
            raise DataError("users and items must have the same length")
        times = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        user_values, counts, order = group_by_user(users, times)  # users' rows in time order, no encoding pass
        user_map = IdMap(user_values, offset=0)
        if item_map is None:
            item_map, item_ids = IdMap.encode(items, offset=1)
        else:
            raw_items = np.asarray(items)
            item_ids = item_map.lookup(raw_items)
            if (item_ids < 0).any():
                bad = raw_items[item_ids < 0][:5]
                raise DataError(f"items not in the item map: {list(bad)}")
        stars = None if ratings is None else np.asarray(ratings, dtype=np.float32)
        if order is not None:  # one column-sized temporary at a time keeps the peak low
            times = None if times is None else times[order]
            stars = None if stars is None else stars[order]
            item_ids = np.take(item_ids, order, out=order)  # the order's buffer is not needed after this
        user_ids = np.repeat(np.arange(len(user_map), dtype=np.int64), counts)  # sorted: runs of 0, 1, ...
        return cls(user_ids, item_ids, user_map, item_map, timestamps=times, ratings=stars)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def sequences(self) -> Sequences:
        """Per-user chronological item sequences, one row per internal user id."""
        counts = np.bincount(self.users, minlength=self.num_users)
        return Sequences(offsets_of(counts), self.items.astype(np.int64, copy=False))  # shares the item column

    def subset(self, mask: np.ndarray) -> Interactions:
        """Rows where `mask` is true, with users and items re-indexed contiguously (order kept)."""
        users, items = self.users[mask], self.items[mask]
        user_kept = np.zeros(self.num_users, dtype=bool)
        user_kept[users] = True
        item_kept = np.zeros(self.num_items + 1, dtype=bool)
        item_kept[items] = True
        user_remap = np.cumsum(user_kept, dtype=np.int64) - 1  # [U] new id of each kept user
        item_remap = np.cumsum(item_kept, dtype=np.int64)  # [N+1] new id (1-based) of each kept item
        return Interactions(
            users=user_remap[users],
            items=item_remap[items],
            user_map=self.user_map.take(np.flatnonzero(user_kept)),
            item_map=self.item_map.take(np.flatnonzero(item_kept), offset=1),
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            ratings=None if self.ratings is None else self.ratings[mask],
        )
