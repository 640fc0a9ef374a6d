"""Stable row orders by user, then time, using one in-place sort of packed int64 keys per pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seqrec.data.encoding import DENSE_SLACK, encode_values

INT64_MAX = np.iinfo(np.int64).max
CHUNK = 1 << 20  # rows per step when adding row numbers (keeps temporaries small)


def group_by_user(users: np.ndarray, timestamps: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct users (ascending), rows per user, and the row order by user, then timestamp, ties in row order.

    Integer ids are sorted as they are (no encoding pass); other ids are encoded first. The order is None when
    the rows are in that order already.  # [U], [U] int64, [n] int64 | None
    """
    keys, base, bound, decode = _user_keys(users)
    counted = base == 0 and bound <= 2 * len(keys) + DENSE_SLACK  # rows per user from a count table
    found = user_time_order(keys, bound, timestamps, base=base, sorted_keys=not counted)
    if counted:
        per_key = np.bincount(keys, minlength=bound)
        firsts = np.flatnonzero(per_key)
        return decode(firsts), per_key[firsts], None if found is None else found[0]
    if found is None:
        firsts, counts = _runs(keys if base == 0 else keys - base)
        return decode(firsts), counts, None
    del keys
    firsts, counts = _runs(found[1])
    return decode(firsts), counts, found[0]


def _user_keys(users: np.ndarray) -> tuple[np.ndarray, int, int, Callable[[np.ndarray], np.ndarray]]:
    """Integer keys that order like the ids, their offset `base` (key - base is in 0..bound-1), the bound, and how
    to turn `key - base` values back into ids."""
    array = users if isinstance(users, np.ndarray) else None
    if array is not None and array.dtype.kind in "iu" and len(array) and array.dtype.itemsize <= 8:
        lo, hi = int(array.min()), int(array.max())
        if hi <= INT64_MAX and (hi - lo + 1) * len(array) < INT64_MAX:
            base = 0 if 0 <= lo and hi <= 2 * len(array) + DENSE_SLACK else lo
            return array.astype(np.int64, copy=False), base, hi - base + 1, lambda firsts: firsts + base
    uniques, codes = encode_values(users)
    return codes, 0, max(len(uniques), 1), lambda firsts: uniques[firsts]


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and length of each run of equal values in a sorted array.  # [R], [R] int64"""
    if len(sorted_keys) == 0:
        return sorted_keys[:0], np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate([[0], change])
    return sorted_keys[starts], np.diff(np.append(starts, len(sorted_keys)))


def user_time_order(users: np.ndarray, num_users: int, timestamps: np.ndarray | None = None, base: int = 0,
                    sorted_keys: bool = True) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Row order by user, then timestamp, ties kept in row order, and (if `sorted_keys`) `users - base` in that
    order; None when the rows are in that order already. `users - base` are in 0..num_users-1.  # [n], [n]
    """
    if _nondecreasing(users) and (timestamps is None or _ordered_within(users, timestamps)):
        return None
    by_time = None
    if timestamps is not None and not _nondecreasing(timestamps):
        by_time = _stable_argsort_time(timestamps)
    keys = users if by_time is None else users[by_time]
    order, ordered = stable_argsort_codes(keys, num_users, base, sorted_keys)
    return (order if by_time is None else by_time[order]), ordered


def stable_argsort_codes(codes: np.ndarray, bound: int, base: int = 0, sorted_codes: bool = True
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """Stable argsort of integers with `codes - base` in 0..bound-1, and (if asked) `codes - base` sorted.

    Sorts the distinct keys `(code - base) * n + row` in place.  # [n] int64, [n] int64 | None
    """
    n = len(codes)
    if n == 0 or bound * n >= INT64_MAX:
        order = np.argsort(codes, kind="stable").astype(np.int64, copy=False)
        return order, (codes[order] - base).astype(np.int64, copy=False) if sorted_codes else None
    if base and (abs(base) + bound) * n >= INT64_MAX:  # code * n itself would overflow: shift first
        codes, base = codes - base, 0
    keys = np.multiply(codes, n, dtype=np.int64)  # [n] distinct keys, so any sort is stable
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        keys[start:stop] += np.arange(start - base * n, stop - base * n, dtype=np.int64)
    keys.sort()
    ordered = keys // n if sorted_codes else None
    np.remainder(keys, n, out=keys)
    return keys, ordered


def _stable_argsort_time(timestamps: np.ndarray) -> np.ndarray:
    """Stable argsort of timestamps; whole-number timestamps use the packed-key sort.  # [n] int64"""
    lo, hi = float(timestamps.min()), float(timestamps.max())
    n = len(timestamps)
    whole = np.isfinite(lo) and np.isfinite(hi) and (hi - lo + 1) * n < 2.0**62
    if whole and np.array_equal(timestamps, np.floor(timestamps)):
        return stable_argsort_codes((timestamps - lo).astype(np.int64), int(hi - lo) + 1, sorted_codes=False)[0]
    return np.argsort(timestamps, kind="stable").astype(np.int64, copy=False)


def _nondecreasing(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] >= values[:-1]))


def _ordered_within(users: np.ndarray, timestamps: np.ndarray) -> bool:
    """Whether timestamps never decrease within a run of equal users (rows grouped by user)."""
    if len(users) < 2:
        return True
    return bool(np.all((timestamps[1:] >= timestamps[:-1]) | (users[1:] != users[:-1])))
