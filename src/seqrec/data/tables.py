"""Columns of a pyarrow Table as seqrec arrays: role -> column resolution, ids, timestamps in seconds, ratings.

Everything is vectorised with pyarrow / NumPy. A bad value is reported with its data row (1 = the first row
after the header) by bisecting the failing conversion, so the happy path pays for one conversion only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqrec.errors import DataError

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userId", "user", "uid", "visitor_id", "visitorid", "reviewerID", "customer_id"),
    "item": ("item_id", "itemId", "item", "iid", "product_id", "movieId", "parent_asin", "asin", "itemid"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "unixReviewTime", "event_time"),
    "rating": ("rating", "score", "weight", "label"),
}
REQUIRED = ("user", "item")
MS_THRESHOLD = 1e11  # auto: numbers this large are milliseconds (1e11 s is the year 5138, 1e11 ms is 1973)
FLOAT32_MAX = float(np.finfo(np.float32).max)
CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,17})$"  # integers written the plain way that fit in int64 (up to 18 digits)


def resolve_columns(names: Sequence[str], mapping: Mapping[str, str], where: str,
                    defaults: Mapping[str, tuple[str, ...]] = DEFAULT_COLUMNS) -> dict[str, str]:
    """Role -> column name: the mapped name, else the first default present (exact, then any case)."""
    resolved: dict[str, str] = {}
    lower = {n.lower(): n for n in reversed(names)}
    for role, candidates in defaults.items():
        if role in mapping:
            if mapping[role] not in names:
                raise DataError(f"{where}: data.columns.{role} names column {mapping[role]!r}, which is not there; "
                                f"columns found: {', '.join(names)}")
            resolved[role] = mapping[role]
            continue
        found = next((c for c in candidates if c in names), None) or next(
            (lower[c.lower()] for c in candidates if c.lower() in lower), None)
        if found is not None:
            resolved[role] = found
        elif role in REQUIRED:
            raise DataError(f"{where}: no {role} column (looked for {', '.join(candidates)}); set "
                            f"data.columns.{role} to one of the columns found: {', '.join(names)}")
    return resolved


def row_error(where: str, row: int, column: str, message: str) -> DataError:
    return DataError(f"{where}: row {row + 1}, column {column!r}: {message}")


def first_failure(values: pa.Array | pa.ChunkedArray, convert: Callable[[pa.Array], object]) -> int:
    """Index of the first value `convert` rejects (`convert` must fail on the whole array)."""
    ok, bad = 0, len(values)  # convert(values[:ok]) succeeds, convert(values[:bad]) fails
    while bad - ok > 1:
        mid = (ok + bad) // 2
        try:
            convert(values.slice(0, mid))
            ok = mid
        except (pa.ArrowException, ValueError):
            bad = mid
    return bad - 1


def check_no_nulls(values: pa.ChunkedArray, where: str, column: str) -> None:
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise row_error(where, row, column, "empty value; fill it in or delete the row")


def ids(values: pa.ChunkedArray, where: str, column: str, arrow_strings: bool = False
        ) -> np.ndarray | pa.ChunkedArray:
    """Raw ids: int64 when every value is a plain integer (numeric order kept), else strings as written
    (trimmed; a NumPy str array, or the Arrow array itself with `arrow_strings`, which `IdMap.encode` takes)."""
    check_no_nulls(values, where, column)
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if pa.types.is_uint64(kind) and len(values) and pc.max(values).as_py() >= 2**63:
        values, kind = values.cast(pa.string()), pa.string()  # beyond int64: kept as written
    if pa.types.is_integer(kind):
        return values.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(kind):
        numbers = values.to_numpy()
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~(np.abs(numbers) < 2.0**63) | (numbers != np.round(numbers)))  # NaN fails too
        if len(bad):
            raise row_error(where, int(bad[0]), column, f"id {float(numbers[bad[0]])!r} is not a 64-bit integer; "
                            "ids must be integers or strings")
        return numbers.astype(np.int64)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{where}: column {column!r} holds {kind}; ids must be integers or strings")
    if pc.all(pc.match_substring_regex(values, CANONICAL_INT)).as_py():  # the common case: one pass, no copies
        return _int64(pc.cast(values, pa.int64()))
    text = pc.utf8_trim_whitespace(values)
    empty = np.flatnonzero(pc.equal(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False))
    if len(empty):
        raise row_error(where, int(empty[0]), column, "empty id; fill it in or delete the row")
    if pc.all(pc.match_substring_regex(text, CANONICAL_INT)).as_py():  # "007", "+7" stay strings
        return _int64(pc.cast(text, pa.int64()))
    return text if arrow_strings else text.to_numpy(zero_copy_only=False).astype(str)


def _int64(values: pa.ChunkedArray) -> np.ndarray:
    """An int64 Arrow column as one NumPy array, returning Arrow's buffers to the system."""
    out = values.to_numpy().astype(np.int64, copy=False)
    del values
    pa.default_memory_pool().release_unused()
    return out


def numbers(values: pa.ChunkedArray, where: str, column: str) -> np.ndarray:
    """Finite float64 values of a numeric or text column."""
    check_no_nulls(values, where, column)
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim_whitespace(values)
        try:
            values = pc.cast(text, pa.float64())
        except pa.ArrowException:
            row = first_failure(text, lambda part: pc.cast(part, pa.float64()))
            raise row_error(where, row, column, f"{text[row].as_py()!r} is not a number") from None
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        raise DataError(f"{where}: column {column!r} holds {kind}; expected numbers")
    out = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raise row_error(where, int(bad[0]), column, f"{out[bad[0]]} is not a finite number")
    return out


def seconds(values: pa.ChunkedArray, kind: str, where: str, column: str) -> np.ndarray:
    """Timestamps as float64 unix seconds. `kind`: auto | seconds | milliseconds | iso."""
    check_no_nulls(values, where, column)
    arrow_type = values.type
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        stamps = values.cast(pa.timestamp("ns")) if pa.types.is_date(arrow_type) else values
        unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[stamps.type.unit]
        return pc.cast(stamps, pa.int64()).to_numpy().astype(np.float64) / unit
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if kind == "iso" or (kind == "auto" and text and not _starts_with_number(values)):
        if not text:
            raise DataError(f"{where}: column {column!r} holds numbers, not ISO dates; set data.timestamp to "
                            "seconds, milliseconds or auto")
        return _iso_seconds(pc.utf8_trim_whitespace(values), where, column)
    out = numbers(values, where, column)
    if kind == "milliseconds" or (kind == "auto" and len(out) and np.abs(out).max() >= MS_THRESHOLD):
        out = out / 1e3
    return out


def _starts_with_number(values: pa.ChunkedArray) -> bool:
    """Whether the first value is a number (auto: the column holds unix times, not ISO dates)."""
    try:
        pc.cast(pc.utf8_trim_whitespace(values.slice(0, 1)), pa.float64())
        return True
    except pa.ArrowException:
        return False


def _iso(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """ISO 8601 strings -> timestamps: all without a zone (read as UTC), or all with one."""
    try:
        return pc.cast(text, pa.timestamp("ns"))
    except pa.ArrowException:
        return pc.cast(text, pa.timestamp("ns", tz="UTC"))


def _iso_seconds(text: pa.ChunkedArray, where: str, column: str) -> np.ndarray:
    try:
        stamps = _iso(text)
    except pa.ArrowException:
        row = first_failure(text, _iso)
        raise row_error(where, row, column, f"cannot read {text[row].as_py()!r} as a timestamp (unix seconds or "
                        "milliseconds, or ISO 8601 like 2024-05-01T12:30:00, with a zone on all rows or none); "
                        "fix the value or set data.timestamp") from None
    return pc.cast(stamps, pa.int64()).to_numpy().astype(np.float64) / 1e9


def check_rating_range(ratings: np.ndarray, where: str, column: str) -> None:
    bad = np.flatnonzero(np.abs(ratings) > FLOAT32_MAX)
    if len(bad):
        raise row_error(where, int(bad[0]), column, f"{ratings[bad[0]]:g} is too large for a rating (float32)")
