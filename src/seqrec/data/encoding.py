"""Vectorised id encoding: raw ids -> (sorted distinct ids, contiguous codes), and id parsing helpers.

Integer ids in a compact range are encoded with a presence table (linear time); strings with Arrow's hash
dictionary encoding when pyarrow is installed; anything else with `np.unique`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqrec.errors import DataError

DENSE_SLACK = 1 << 20  # integer ids spanning up to 2n + this many values use the presence table


def encode_values(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values in ascending order and each value's index among them.  # [K], [n] int64"""
    if _is_arrow(values):
        return _encode_arrow(values)
    array = np.asarray(values)
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.dtype.kind in "iu" and len(array) and _fits_int64(array):
        array = array.astype(np.int64, copy=False)
        lo, hi = int(array.min()), int(array.max())
        if hi - lo <= 2 * len(array) + DENSE_SLACK:
            return _encode_dense(array, lo, hi)
    if array.dtype.kind in "UO" and len(array) > 1000:
        arrow = _arrow_or_none(array)
        if arrow is not None:
            return _encode_arrow(arrow)
    uniques, codes = np.unique(array, return_inverse=True)
    return uniques, codes.reshape(-1).astype(np.int64, copy=False)


def _encode_dense(array: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    base = 0 if 0 <= lo and hi <= 2 * len(array) + DENSE_SLACK else lo  # ids 0/1..K index the table as they are
    shifted = array if base == 0 else array - base  # [n]
    present = np.zeros(hi - base + 1, dtype=bool)  # [span]
    present[shifted] = True
    code_of = np.cumsum(present, dtype=np.int64)  # [span] 1-based code of each present value
    code_of -= 1
    return np.flatnonzero(present) + base, code_of[shifted]


def _encode_arrow(values: Any) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        raise DataError(f"{values.null_count} id(s) are missing (null); every row needs a user and an item id")
    if pa.types.is_integer(values.type):
        return encode_values(values.to_numpy())
    encoded = values.dictionary_encode()
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary).to_numpy()  # [K] code-point order (UTF-8 byte order)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    uniques = dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False)
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    return uniques.astype(str), codes


def _is_arrow(values: Any) -> bool:
    module = type(values).__module__
    return module.startswith("pyarrow") and hasattr(values, "type")


def _arrow_or_none(array: np.ndarray) -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        return None
    try:
        return pa.array(array, type=pa.string()) if array.dtype.kind == "U" else pa.array(array)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. mixed Python objects
        return None


def _fits_int64(array: np.ndarray) -> bool:
    return array.dtype.kind == "i" or array.dtype.itemsize < 8 or int(array.max()) <= np.iinfo(np.int64).max


def is_canonical_int(strings: np.ndarray) -> np.ndarray | None:
    """The ids as int64 when every string is an integer written canonically ("42", not "042"), else None."""
    try:
        ints = strings.astype(np.int64)
    except (ValueError, OverflowError):
        return None
    return ints if np.array_equal(ints.astype(str), strings) else None


def as_int_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys of query ids and which of them are integers at all (as `str(value)` reads).  # [n], [n]"""
    if values.dtype.kind in "iu":
        return values.astype(np.int64), np.ones(len(values), dtype=bool)
    strings = values.astype(str)
    try:
        ints = strings.astype(np.int64)
        return ints, ints.astype(str) == strings
    except (ValueError, OverflowError):
        pass
    ints = np.zeros(len(strings), dtype=np.int64)
    valid = np.zeros(len(strings), dtype=bool)
    for k, text in enumerate(strings.tolist()):
        try:
            number = int(text)
        except ValueError:
            continue
        if str(number) == text and -(2**63) <= number < 2**63:
            ints[k], valid[k] = number, True
    return ints, valid


def strictly_increasing(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] > values[:-1]))
