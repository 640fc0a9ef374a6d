"""The one interaction table every reader produces, and per-user sequences in CSR form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.data.idmap import IdMap
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
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Sequences(offsets, self.items[concat_ranges(self.offsets[rows], lengths)])

    def truncate(self, drop_last: np.ndarray | int) -> Sequences:
        """Drop the last `drop_last` items of each row (an int or one count per row)."""
        lengths = np.maximum(self.lengths - drop_last, 0)
        starts = self.offsets[:-1]
        keep = concat_ranges(starts, lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Sequences(offsets, self.items[keep])

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


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for each pair, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    base = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)
    return base + np.arange(total, dtype=np.int64)


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
        """Encode raw ids; rows are ordered by user, then timestamp (stable, so file order breaks ties)."""
        if len(users) != len(items):
            raise DataError("users and items must have the same length")
        user_map, user_ids = IdMap.encode(np.asarray(users), offset=0)
        if item_map is None:
            item_map, item_ids = IdMap.encode(np.asarray(items), offset=1)
        else:
            item_ids = item_map.lookup(np.asarray(items))
            if (item_ids < 0).any():
                bad = np.asarray(items)[item_ids < 0][:5]
                raise DataError(f"items not in the item map: {list(bad)}")
        if timestamps is None:
            order = np.argsort(user_ids, kind="stable")
        else:  # lexsort is stable: file order breaks timestamp ties
            order = np.lexsort((np.asarray(timestamps, dtype=np.float64), user_ids))
        return cls(
            users=user_ids[order],
            items=item_ids[order],
            user_map=user_map,
            item_map=item_map,
            timestamps=None if timestamps is None else np.asarray(timestamps, dtype=np.float64)[order],
            ratings=None if ratings is None else np.asarray(ratings, dtype=np.float32)[order],
        )

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
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Sequences(offsets, self.items.astype(np.int64))

    def subset(self, mask: np.ndarray) -> Interactions:
        """Rows where `mask` is true, with users and items re-indexed contiguously (order kept)."""
        kept_users = np.unique(self.users[mask])
        kept_items = np.unique(self.items[mask])
        user_remap = np.full(self.num_users, -1, dtype=np.int64)
        user_remap[kept_users] = np.arange(len(kept_users))
        item_remap = np.full(self.num_items + 1, -1, dtype=np.int64)
        item_remap[kept_items] = np.arange(1, len(kept_items) + 1)
        return Interactions(
            users=user_remap[self.users[mask]],
            items=item_remap[self.items[mask]],
            user_map=IdMap([self.user_map.external[u] for u in kept_users], offset=0),
            item_map=IdMap([self.item_map.external[i - 1] for i in kept_items], offset=1),
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            ratings=None if self.ratings is None else self.ratings[mask],
        )
