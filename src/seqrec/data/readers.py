"""Readers for the common sequential-recommendation file formats.

Interaction readers return `(Interactions, ItemCatalog)`; `read_rechorus` returns a `RawDataset` that also
marks the rows of the shipped validation and test parts. Item metadata is read into an `ItemTable` keyed by
raw item id and aligned to a dataset's internal ids with `build_catalog`. Malformed input raises `DataError`
naming `file:line`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.errors import DataError, suggest

PathLike = str | Path
TITLE_COLUMNS = ("title", "name", "movie_title")  # first one present holds item titles
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
MOVIELENS_URL = "https://grouplens.org/datasets/movielens/"
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True  # the bytes `bytes.split()` splits on


@dataclass
class ItemTable:
    """Item metadata keyed by raw item id, before alignment to a dataset's internal ids."""

    ids: np.ndarray  # [M] raw ids: int64 when all are integers, else str
    titles: list[str] | None = None  # [M]
    attributes: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # name -> [M] value tuples


@dataclass
class RawDataset:
    """A dataset as read from disk, plus the rows of its shipped validation and test parts, if any."""

    interactions: Interactions
    catalog: ItemCatalog
    valid_rows: np.ndarray | None = None  # [n] bool, aligned with the interaction rows
    test_rows: np.ndarray | None = None  # [n] bool

    @property
    def has_predefined_split(self) -> bool:
        return self.valid_rows is not None and self.test_rows is not None


# ---------------------------------------------------------------- interaction files


def read_sasrec(path: PathLike, metadata: Iterable[ItemTable] = ()) -> tuple[Interactions, ItemCatalog]:
    """SASRec / BERT4Rec file: one `user item` pair per line, time-ordered within each user."""
    path = Path(path)
    (users, items), lines = _fixed_columns(path, _read_bytes(path), ("user", "item"))
    inter = Interactions.from_raw(_to_array(users, np.int64, path, lines, "user"),
                                  _to_array(items, np.int64, path, lines, "item"))
    return inter, build_catalog(inter.item_map, *metadata)


def read_s3rec(path: PathLike, metadata: Iterable[ItemTable] = ()) -> tuple[Interactions, ItemCatalog]:
    """S3-Rec file: one line per user, `user item_1 item_2 ...`, oldest item first."""
    path = Path(path)
    tokens, counts, lines = _fields(_read_bytes(path))
    if len(counts) == 0:
        raise DataError(f"{path}: no interactions found (the file is empty)")
    short = np.flatnonzero(counts < 2)
    if len(short):
        raise DataError(f"{path}:{lines[short[0]]}: expected a user id followed by its items, "
                        f"found {counts[short[0]]} field")
    values = _to_array(tokens, np.int64, path, np.repeat(lines, counts), "user/item id")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    is_item = np.ones(len(values), dtype=bool)
    is_item[starts] = False
    inter = Interactions.from_raw(np.repeat(values[starts], counts - 1), values[is_item])
    return inter, build_catalog(inter.item_map, *metadata)


def read_rechorus(folder: PathLike) -> RawDataset:
    """ReChorus folder with its shipped split; rows are ordered by user, then time (ties: train, dev, test).

    `train.csv`, `dev.csv` and `test.csv` are tab-separated with columns `user_id item_id time` (extra columns
    such as `neg_items` are ignored). In the optional `item_meta.csv`, each `i_<name>` column becomes
    attribute `<name>` (e.g. `i_category` -> "category").
    """
    folder = Path(folder)
    parts = [_read_table(folder / name) for name in ("train.csv", "dev.csv", "test.csv")]
    users = _ids([u for t in parts for u in t.column("user_id")])
    items = _ids([i for t in parts for i in t.column("item_id")])
    times = np.concatenate([t.floats("time") for t in parts])
    part = np.repeat([0, 1, 2], [len(t.rows) for t in parts])
    user_map, user_ids = IdMap.encode(users, offset=0)
    item_map, item_ids = IdMap.encode(items, offset=1)
    order = np.lexsort((part, times, user_ids))  # stable: file order breaks the remaining ties
    inter = Interactions(user_ids[order], item_ids[order], user_map, item_map, timestamps=times[order])
    meta_path = folder / "item_meta.csv"
    metadata = [_rechorus_items(meta_path)] if meta_path.is_file() else []
    catalog = build_catalog(item_map, *metadata)
    return RawDataset(inter, catalog, valid_rows=part[order] == 1, test_rows=part[order] == 2)


def read_recbole(inter_path: PathLike, item_path: PathLike | None = None) -> tuple[Interactions, ItemCatalog]:
    """RecBole atomic files (tab-separated, header `name:type`).

    The `.inter` file needs `user_id` and `item_id` columns and may have `timestamp` and `rating`.
    The optional `.item` file needs `item_id`; a title/name/movie_title column gives titles and each
    `token_seq` column a multi-valued attribute of the same name.
    """
    table = _read_recbole_table(Path(inter_path))
    timestamps = table.floats("timestamp") if "timestamp" in table.header else None
    ratings = table.floats("rating") if "rating" in table.header else None
    users, items = table.ids("user_id"), table.ids("item_id")
    inter = Interactions.from_raw(users, items, timestamps=timestamps, ratings=ratings)
    metadata = [] if item_path is None else [_recbole_items(Path(item_path))]
    return inter, build_catalog(inter.item_map, *metadata)


def read_movielens(folder: PathLike) -> tuple[Interactions, ItemCatalog]:
    """MovieLens `.dat` folder: `ratings.dat` (`user::item::rating::timestamp`) and optional `movies.dat`.

    `movies.dat` (`item::title::Genre1|Genre2`, latin-1) gives titles and the "genre" attribute.
    """
    folder = Path(folder)
    path = folder / "ratings.dat"
    if not path.is_file():
        raise DataError(f"{path} not found. MovieLens ratings ship in the dataset zip from {MOVIELENS_URL}; "
                        f"unpack it and put ratings.dat at {path}")
    raw = _read_bytes(path).replace(b"::", b" ")
    (users, items, ratings, times), lines = _fixed_columns(path, raw, ("user", "item", "rating", "timestamp"))
    inter = Interactions.from_raw(
        _to_array(users, np.int64, path, lines, "user"),
        _to_array(items, np.int64, path, lines, "item"),
        timestamps=_to_array(times, np.int64, path, lines, "timestamp"),
        ratings=_to_array(ratings, np.float64, path, lines, "rating"),  # float: ML-10M has half stars
    )
    movies = folder / "movies.dat"
    metadata = [_movielens_items(movies)] if movies.is_file() else []
    return inter, build_catalog(inter.item_map, *metadata)


# ---------------------------------------------------------------- item metadata


def read_item_table(
    path: PathLike,
    id_column: str | None = None,
    title_column: str | None = None,
    multi_columns: Mapping[str, str] | None = None,
    value_sep: str = "|",
) -> ItemTable:
    """Tab-separated item table with a header (e.g. `item_id movie_id title genres`).

    Ids come from `id_column` (default: the first column), titles from `title_column` (default: the first of
    title/name/movie_title present) and `multi_columns` maps `value_sep`-separated columns to attribute
    names (default: genres -> genre, when that column exists).
    """
    table = _read_table(Path(path))
    if title_column is None:
        title_column = next((c for c in TITLE_COLUMNS if c in table.header), None)
    if multi_columns is None:
        multi_columns = {"genres": "genre"} if "genres" in table.header else {}
    attributes = {attr: [_split_values(v, value_sep) for v in table.column(col)]
                  for col, attr in multi_columns.items()}
    titles = None if title_column is None else table.column(title_column)
    return ItemTable(table.ids(id_column or table.header[0]), titles, attributes)


def read_item_attributes_json(path: PathLike, name: str = "attribute") -> ItemTable:
    """S3-Rec `<Name>_item2attributes.json` (`{"item": [attribute ids]}`) as attribute `name`."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping item id -> list of attribute ids")
    bad = next((k for k, v in data.items() if not isinstance(v, list)), None)
    if bad is not None:
        raise DataError(f"{path}: item {bad!r}: expected a list of attribute ids, got {data[bad]!r}")
    values = [tuple(str(v) for v in vals) for vals in data.values()]
    return ItemTable(_ids([str(k).strip() for k in data]), attributes={name: values})


def build_catalog(item_map: IdMap, *tables: ItemTable) -> ItemCatalog:
    """Align item tables to internal ids; items a table lacks get "" / (). Later tables win on conflicts."""
    num_items = len(item_map)
    titles: list[str] | None = None
    attributes: dict[str, list[tuple[str, ...]]] = {}
    for table in tables:
        internal = item_map.lookup(table.ids)
        known = np.flatnonzero(internal >= 0)
        if len(table.ids) and not len(known):
            shown = ", ".join(str(i) for i in table.ids[:3])
            raise DataError(f"item metadata ids ({shown}, ...) match none of the dataset's item ids; "
                            "is the item file from the same dataset?")
        if table.titles is not None:
            titles = titles or [""] * (num_items + 1)
            for k in known:
                titles[internal[k]] = table.titles[k]
        for name, values in table.attributes.items():
            column = attributes.setdefault(name, [()] * (num_items + 1))
            for k in known:
                column[internal[k]] = values[k]
    return ItemCatalog(num_items=num_items, titles=titles, attributes=attributes)


def _rechorus_items(path: Path) -> ItemTable:
    table = _read_table(path)
    names = {col: col[2:] for col in table.header if col.startswith("i_")}
    attributes = {attr: [(v,) if v else () for v in table.column(col)] for col, attr in names.items()}
    return ItemTable(table.ids("item_id"), attributes=attributes)


def _recbole_items(path: Path) -> ItemTable:
    table = _read_recbole_table(path)
    title_column = next((c for c in TITLE_COLUMNS if c in table.header), None)
    titles = None if title_column is None else table.column(title_column)
    multi = [c for c, kind in table.types.items() if kind == "token_seq"]
    attributes = {c: [_split_values(v, None) for v in table.column(c)] for c in multi}
    return ItemTable(table.ids("item_id"), titles, attributes)


def _movielens_items(path: Path) -> ItemTable:
    ids, titles, genres = [], [], []
    for lineno, line in enumerate(_read_text(path, "latin-1").split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("::")
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: expected 3 '::'-separated fields (item::title::genres), "
                            f"found {len(fields)}")
        ids.append(fields[0].strip())
        titles.append(fields[1].strip())
        genres.append(_split_values(fields[2], "|"))
    return ItemTable(_ids(ids), titles, {"genre": genres})


def _split_values(text: str, sep: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(sep) if v.strip())


# ---------------------------------------------------------------- parsing helpers


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    return path.read_bytes()


def _read_text(path: Path, encoding: str = "utf-8-sig") -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid {encoding} text ({err.reason}); "
                        f"re-save the file as UTF-8") from None


def _fields(raw: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
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


def _fixed_columns(path: Path, raw: bytes, names: Sequence[str]) -> tuple[list[list[bytes]], np.ndarray]:
    """Columns of a whitespace-separated file with exactly `len(names)` fields per line, and line numbers."""
    tokens, counts, lines = _fields(raw)
    if len(counts) == 0:
        raise DataError(f"{path}: no interactions found (the file is empty)")
    bad = np.flatnonzero(counts != len(names))
    if len(bad):
        raise DataError(f"{path}:{lines[bad[0]]}: expected {len(names)} fields ({', '.join(names)}), "
                        f"found {counts[bad[0]]}")
    return [tokens[j :: len(names)] for j in range(len(names))], lines


def _to_array(values: Sequence[str | bytes], dtype: type, path: Path, lines: np.ndarray, what: str
              ) -> np.ndarray:
    """Convert to int64 / float64 (finite), naming `file:line` of the first bad value."""
    try:
        out = np.array(values, dtype=dtype)
        if dtype is np.int64 or np.isfinite(out).all():
            return out
    except (ValueError, OverflowError):
        pass
    k = next(k for k, v in enumerate(values) if not _convertible(v, dtype))
    value = values[k].decode(errors="replace") if isinstance(values[k], bytes) else values[k]
    kind = "an integer" if dtype is np.int64 else "a finite number"
    raise DataError(f"{path}:{lines[k]}: {what} must be {kind}, got {value!r}")


def _convertible(value: str | bytes, dtype: type) -> bool:
    try:
        return bool(np.isfinite(np.array([value], dtype=dtype)).all())
    except (ValueError, OverflowError):
        return False


def _ids(values: list[str]) -> np.ndarray:
    """Raw ids: int64 when all are plain integers (numeric order is then kept), else strings as written."""
    try:
        ints = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        return np.array(values, dtype=str)
    if [str(i) for i in ints.tolist()] != values:  # e.g. "007" or "+7": keep the ids as written
        return np.array(values, dtype=str)
    return ints


@dataclass
class _Table:
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
        return _ids(values)

    def floats(self, name: str) -> np.ndarray:
        return _to_array(self.column(name), np.float64, self.path, self.lines, name)


def _read_table(path: Path, sep: str = "\t") -> _Table:
    """Header plus rows; every non-blank row must have as many `sep`-separated fields as the header."""
    lines = _read_text(path).split("\n")
    if not lines[0].strip():
        raise DataError(f"{path}:1: expected a header line with the column names")
    header = [h.strip() for h in lines[0].rstrip("\r").split(sep)]
    numbers = [n for n, line in enumerate(lines[1:], start=2) if line.strip()]
    rows = [lines[n - 1].rstrip("\r").split(sep) for n in numbers]
    bad = next((k for k, row in enumerate(rows) if len(row) != len(header)), None)
    if bad is not None:
        raise DataError(f"{path}:{numbers[bad]}: expected {len(header)} tab-separated fields "
                        f"({', '.join(header)}), found {len(rows[bad])}")
    return _Table(path, header, rows, np.array(numbers, dtype=np.int64))


def _read_recbole_table(path: Path) -> _Table:
    """RecBole atomic file: a `_Table` whose header `name:type` is split into names and types."""
    table = _read_table(path)
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
