"""Text files as tables: bytes without a BOM, UTF-8 text with a fallback encoding, whitespace-separated fields,
tab-separated tables with a header, numbers checked to be finite and in range; errors name `file:line`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.errors import DataError, suggest

PathLike = str | Path
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-32 LE starts with the UTF-16 LE mark too
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True  # the bytes `bytes.split()` splits on
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")



def read_bytes(path: Path) -> bytes:
    """The file's bytes without a leading UTF-8 byte-order mark; UTF-16/32 files are refused."""
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check the file's permissions") from None
    if raw.startswith(UTF16_BOMS):
        raise DataError(f"{path}:1: the file is UTF-16 or UTF-32 text; re-save it as UTF-8")
    return raw.removeprefix(UTF8_BOM)


def read_text(path: PathLike, fallback: str | None = None) -> str:
    """A text file as UTF-8 (a BOM is dropped); bytes that are not UTF-8 are decoded with `fallback` if given.

    Undecodable bytes (without a fallback) and NUL characters raise `DataError` naming `file:line`.
    """
    path = Path(path)
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if fallback is None:
            line = raw[: err.start].count(b"\n") + 1
            msg = f"{path}:{line}: not valid UTF-8 text ({err.reason}); re-save the file as UTF-8"
            raise DataError(msg) from None
        text = raw.decode(fallback)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}:{line}: NUL character in a text file; is it binary? re-save it as UTF-8 text")
    return text


def whitespace_fields(raw: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Whitespace-separated fields: all tokens, the field count and line number of each non-blank line."""
    data = np.frombuffer(raw, dtype=np.uint8)
    space = _WHITESPACE[data]
    after_space = np.ones_like(space)
    after_space[1:] = space[:-1]
    starts = np.flatnonzero(~space & after_space)
    newlines = np.flatnonzero(data == 10)
    per_line = np.bincount(np.searchsorted(newlines, starts), minlength=len(newlines) + 1)
    nonblank = np.flatnonzero(per_line)
    return raw.split(), per_line[nonblank], nonblank + 1


def fixed_columns(path: Path, raw: bytes, names: Sequence[str]) -> tuple[list[list[bytes]], np.ndarray]:
    """Columns of a whitespace-separated file with exactly `len(names)` fields per line, and line numbers."""
    tokens, counts, lines = whitespace_fields(raw)
    if len(counts) == 0:
        raise DataError(f"{path}: no interactions found (the file is empty)")
    bad = np.flatnonzero(counts != len(names))
    if len(bad):
        raise DataError(f"{path}:{lines[bad[0]]}: expected {len(names)} fields ({', '.join(names)}), "
                        f"found {counts[bad[0]]}")
    return [tokens[j :: len(names)] for j in range(len(names))], lines


def to_array(values: Sequence[str | bytes], dtype: type, path: Path, lines: np.ndarray, what: str
              ) -> np.ndarray:
    """Convert to int64 / float64 (finite), naming `file:line` of the first bad value."""
    try:
        out = np.array(values, dtype=dtype)
        if dtype is np.int64 or np.isfinite(out).all():
            return out
    except (ValueError, OverflowError):
        pass
    k = next((k for k, v in enumerate(values) if not _convertible(v, dtype)), 0)
    value = values[k].decode(errors="replace") if isinstance(values[k], bytes) else values[k]
    kind = "an integer" if dtype is np.int64 else "a finite number"
    raise DataError(f"{path}:{lines[k]}: {what} must be {kind}, got {value!r}")


def check_range(values: np.ndarray, scale: tuple[float, float], path: Path, lines: np.ndarray, what: str
                 ) -> None:
    """Every value within `scale` (inclusive), else `DataError` naming `file:line` of the first outside it."""
    outside = np.flatnonzero((values < scale[0]) | (values > scale[1]))
    if len(outside):
        k = outside[0]
        raise DataError(f"{path}:{lines[k]}: {what} {values[k]:g} is outside the scale {scale[0]:g} to "
                        f"{scale[1]:g}; fix or delete the line")


def _convertible(value: str | bytes, dtype: type) -> bool:
    try:
        return bool(np.isfinite(np.array([value], dtype=dtype)).all())
    except (ValueError, OverflowError):
        return False


def raw_ids(values: list[str]) -> np.ndarray:
    """Raw ids: int64 when all are plain integers (numeric order is then kept), else strings as written."""
    try:
        ints = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        return np.array(values, dtype=str)
    if [str(i) for i in ints.tolist()] != values:  # e.g. "007" or "+7": keep the ids as written
        return np.array(values, dtype=str)
    return ints


@dataclass
class TextTable:
    """A text table with a header line: rows of string fields and the file line number of each row."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: np.ndarray  # [rows]
    types: dict[str, str] = field(default_factory=dict)  # RecBole column types, by name

    def column(self, name: str) -> list[str]:
        if name not in self.header:
            raise DataError(f"{self.path}:1: no {name!r} column; the header has: {suggest(self.header)}")
        j = self.header.index(name)
        return [row[j].strip() for row in self.rows]

    def ids(self, name: str) -> np.ndarray:
        values = self.column(name)
        if "" in values:
            raise DataError(f"{self.path}:{self.lines[values.index('')]}: empty {name}")
        return raw_ids(values)

    def floats(self, name: str) -> np.ndarray:
        return to_array(self.column(name), np.float64, self.path, self.lines, name)


def read_table(path: Path, sep: str = "\t") -> TextTable:
    """Header plus rows; every non-blank row must have as many `sep`-separated fields as the header."""
    lines = read_text(path).split("\n")
    if not lines[0].strip():
        raise DataError(f"{path}:1: expected a header line with the column names")
    header = [h.strip() for h in lines[0].rstrip("\r").split(sep)]
    numbers = [n for n, line in enumerate(lines[1:], start=2) if line.strip()]
    rows = [lines[n - 1].rstrip("\r").split(sep) for n in numbers]
    bad = next((k for k, row in enumerate(rows) if len(row) != len(header)), None)
    if bad is not None:
        raise DataError(f"{path}:{numbers[bad]}: expected {len(header)} tab-separated fields "
                        f"({', '.join(header)}), found {len(rows[bad])}")
    return TextTable(path, header, rows, np.array(numbers, dtype=np.int64))


def read_recbole_table(path: Path) -> TextTable:
    """RecBole atomic file: a `TextTable` whose header `name:type` is split into names and types."""
    table = read_table(path)
    names = []
    for column in table.header:
        name, _, kind = column.partition(":")
        if kind not in RECBOLE_TYPES:
            raise DataError(f"{path}:1: column {column!r} has type {kind or 'none'!r}; RecBole headers are "
                            f"name:type with type one of {suggest(RECBOLE_TYPES)}")
        names.append(name)
        table.types[name] = kind
    table.header = names
    return table
