"""Readers for the common sequential-recommendation file formats.

Interaction readers return `(Interactions, ItemCatalog)`; `read_rechorus` returns a `RawDataset` that also
marks the rows of the shipped validation and test parts. Item metadata is read into an `ItemTable` keyed by
raw item id and aligned to a dataset's internal ids with `build_catalog`. Every reader accepts a UTF-8
byte-order mark and CRLF line endings; malformed input (including non-finite numbers) raises `DataError`
naming `file:line`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.data.text_files import (
    check_range,
    fixed_columns,
    raw_ids,
    read_bytes,
    read_recbole_table,
    read_table,
    read_text,
    to_array,
    whitespace_fields,
)
from seqrec.errors import DataError
from seqrec.jsonl import parse_json

PathLike = str | Path
TITLE_COLUMNS = ("title", "name", "movie_title")  # first one present holds item titles
MOVIELENS_URL = "https://grouplens.org/datasets/movielens/"
MOVIELENS_SCALE = (0.5, 5.0)  # stars; ML-1M has whole stars, ML-10M/20M half stars
FLOAT32_RANGE = (-float(np.finfo(np.float32).max), float(np.finfo(np.float32).max))


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
    (users, items), lines = fixed_columns(path, read_bytes(path), ("user", "item"))
    inter = Interactions.from_raw(to_array(users, np.int64, path, lines, "user"),
                                  to_array(items, np.int64, path, lines, "item"))
    return inter, build_catalog(inter.item_map, *metadata)


def read_s3rec(path: PathLike, metadata: Iterable[ItemTable] = ()) -> tuple[Interactions, ItemCatalog]:
    """S3-Rec file: one line per user, `user item_1 item_2 ...`, oldest item first."""
    path = Path(path)
    tokens, counts, lines = whitespace_fields(read_bytes(path))
    if len(counts) == 0:
        raise DataError(f"{path}: no interactions found (the file is empty)")
    short = np.flatnonzero(counts < 2)
    if len(short):
        raise DataError(f"{path}:{lines[short[0]]}: expected a user id followed by its items, "
                        f"found {counts[short[0]]} field")
    values = to_array(tokens, np.int64, path, np.repeat(lines, counts), "user/item id")
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
    parts = [read_table(folder / name) for name in ("train.csv", "dev.csv", "test.csv")]
    users = raw_ids([u for t in parts for u in t.column("user_id")])
    items = raw_ids([i for t in parts for i in t.column("item_id")])
    times = np.concatenate([t.floats("time") for t in parts])
    if not len(times):
        raise DataError(f"{folder}: no interactions found (train.csv, dev.csv and test.csv have no rows)")
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

    The `.inter` file needs `user_id` and `item_id` columns and may have `timestamp` and `rating` (finite, and
    within float32 range since ratings are stored as float32).
    The optional `.item` file needs `item_id`; a title/name/movie_title column gives titles and each
    `token_seq` column a multi-valued attribute of the same name.
    """
    table = read_recbole_table(Path(inter_path))
    timestamps = table.floats("timestamp") if "timestamp" in table.header else None
    ratings = table.floats("rating") if "rating" in table.header else None
    if ratings is not None:
        check_range(ratings, FLOAT32_RANGE, table.path, table.lines, "rating")
    users, items = table.ids("user_id"), table.ids("item_id")
    if not len(users):
        raise DataError(f"{table.path}: no interactions found (the file has a header and no rows)")
    inter = Interactions.from_raw(users, items, timestamps=timestamps, ratings=ratings)
    metadata = [] if item_path is None else [_recbole_items(Path(item_path))]
    return inter, build_catalog(inter.item_map, *metadata)


def read_movielens(folder: PathLike) -> tuple[Interactions, ItemCatalog]:
    """MovieLens `.dat` folder: `ratings.dat` (`user::item::rating::timestamp`) and optional `movies.dat`.

    `movies.dat` (`item::title::Genre1|Genre2`, UTF-8 or the original latin-1) gives titles and the "genre"
    attribute. Ratings must lie on the MovieLens star scale (0.5 to 5).
    """
    folder = Path(folder)
    path = folder / "ratings.dat"
    if not path.is_file():
        raise DataError(f"{path} not found. MovieLens ratings ship in the dataset zip from {MOVIELENS_URL}; "
                        f"unpack it and put ratings.dat at {path}")
    raw = read_bytes(path).replace(b"::", b" ")
    (users, items, ratings, times), lines = fixed_columns(path, raw, ("user", "item", "rating", "timestamp"))
    stars = to_array(ratings, np.float64, path, lines, "rating")  # float: ML-10M has half stars
    check_range(stars, MOVIELENS_SCALE, path, lines, "rating")
    inter = Interactions.from_raw(
        to_array(users, np.int64, path, lines, "user"),
        to_array(items, np.int64, path, lines, "item"),
        timestamps=to_array(times, np.int64, path, lines, "timestamp"),
        ratings=stars,
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
    table = read_table(Path(path))
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
    data = parse_json(read_text(path), path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping item id -> list of attribute ids")
    bad = next((k for k, v in data.items() if not k.strip() or not _id_list(v)), None)
    if bad is not None:
        raise DataError(f"{path}: item {bad!r}: expected a list of attribute ids (strings or integers) under a "
                        f"non-empty item id, got {data[bad]!r}; fix that entry")
    values = [tuple(str(v) for v in vals) for vals in data.values()]
    return ItemTable(raw_ids([k.strip() for k in data]), attributes={name: values})


def _id_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)


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
    table = read_table(path)
    names = {col: col[2:] for col in table.header if col.startswith("i_")}
    attributes = {attr: [(v,) if v else () for v in table.column(col)] for col, attr in names.items()}
    return ItemTable(table.ids("item_id"), attributes=attributes)


def _recbole_items(path: Path) -> ItemTable:
    table = read_recbole_table(path)
    title_column = next((c for c in TITLE_COLUMNS if c in table.header), None)
    titles = None if title_column is None else table.column(title_column)
    multi = [c for c, kind in table.types.items() if kind == "token_seq"]
    attributes = {c: [_split_values(v, None) for v in table.column(c)] for c in multi}
    return ItemTable(table.ids("item_id"), titles, attributes)


def _movielens_items(path: Path) -> ItemTable:
    ids, titles, genres = [], [], []
    for lineno, line in enumerate(read_text(path, fallback="latin-1").split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("::")
        if len(fields) != 3 or not fields[0].strip():
            raise DataError(f"{path}:{lineno}: expected 3 '::'-separated fields (item::title::genres) with an "
                            f"item id, found {line[:80]!r}")
        ids.append(fields[0].strip())
        titles.append(fields[1].strip())
        genres.append(_split_values(fields[2], "|"))
    return ItemTable(raw_ids(ids), titles, {"genre": genres})


def _split_values(text: str, sep: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(sep) if v.strip())
