"""Property tests: any bytes, or lines of plausible tokens, give every reader a valid table or a DataError.

Valid means: arrays of one length, users 0..U-1 and items 1..N all used, finite timestamps and ratings, rows
grouped by user in time order, and a catalog with one entry per item plus padding. Any other exception fails.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.data.readers import (
    ItemTable,
    build_catalog,
    read_item_attributes_json,
    read_item_table,
    read_movielens,
    read_recbole,
    read_rechorus,
    read_s3rec,
    read_sasrec,
)
from seqrec.errors import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# tokens that real files have, and near misses: signs, zero padding, floats, NaN, huge numbers, odd whitespace
ODD = ["", "x", "007", "+4", "-1", "1.5", "0.5", "5", "99", "1e5", "1_0", "nan", "inf", "-Infinity", "true",
       "99999999999999999999", "1e300", "é", "Amélie", "\x00", "\ufeff", "\xa0", "\x0c", "::", "|", "\t", " ",
       "\r", "\n"]
NUMBERS = st.integers(1, 6).map(str)
TOKENS = st.one_of(NUMBERS, NUMBERS, st.integers(-2, 12).map(str), st.sampled_from(ODD))
ODD_NUMBERS = ["nan", "inf", "1e300", "-1e300", "0", "0.5", "99", "-1", "1.5", "true", "", "99999999999999999999"]
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])


@st.composite
def text_file(draw: st.DrawFn, sep: str | st.SearchStrategy[str], max_fields: int = 5,
              header: list[str] | None = None, width: int | None = None,
              modes: tuple[str, ...] = ("bytes", "clean", "clean", "one odd", "odd")) -> bytes:
    """Lines of tokens joined by `sep`, LF or CRLF endings, with or without a BOM; or arbitrary bytes.

    "clean" files (small positive integers, UTF-8, `width` fields or another one for every line) are often
    valid tables; "one odd" ones have a single odd token, to reach the checks behind the first error.
    """
    mode = draw(st.sampled_from(modes))
    if mode == "bytes":
        return draw(st.binary(max_size=120))
    clean = mode != "odd"
    tokens = NUMBERS if clean else TOKENS
    width = width if width is not None and clean else draw(st.integers(1, max_fields))
    row = st.lists(tokens, min_size=width, max_size=width)
    rows = draw(st.lists(row if clean else st.one_of(row, st.lists(tokens, max_size=max_fields)),
                         min_size=1 if mode == "one odd" else 0, max_size=8))
    if mode == "one odd":
        line = draw(st.integers(0, len(rows) - 1))
        if rows[line]:
            rows[line][draw(st.integers(0, len(rows[line]) - 1))] = draw(st.sampled_from(ODD_NUMBERS))
    joiner = sep if isinstance(sep, str) else draw(sep)
    lines = ([joiner.join(header)] if header else []) + [joiner.join(r) for r in rows]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"]) if clean else ENCODINGS)
    return text.encode(encoding, errors="replace")


def outcome(read: Callable[[], Any]) -> Any:
    """The reader's result, or None when it raised DataError (any other exception fails the test)."""
    try:
        result = read()
    except DataError:
        event("DataError")
        return None
    event("valid")
    return result


def check_table(inter: Interactions, catalog: ItemCatalog) -> None:
    n, users, items = len(inter), inter.users, inter.items
    assert n > 0 and len(items) == n
    assert np.array_equal(np.unique(users), np.arange(inter.num_users))
    assert np.array_equal(np.unique(items), np.arange(1, inter.num_items + 1))
    assert (np.diff(users) >= 0).all()  # grouped by user
    assert len(set(inter.user_map.external)) == inter.num_users
    assert len(set(inter.item_map.external)) == inter.num_items
    for values in (inter.timestamps, inter.ratings):
        assert values is None or (len(values) == n and np.isfinite(values).all())
    if inter.timestamps is not None:
        same_user = np.diff(users) == 0
        assert (np.diff(inter.timestamps)[same_user] >= 0).all()  # chronological per user
    assert catalog.num_items == inter.num_items
    assert catalog.titles is None or len(catalog.titles) == inter.num_items + 1
    assert all(len(v) == inter.num_items + 1 for v in catalog.attributes.values())


def check_item_table(table: ItemTable) -> None:
    m = len(table.ids)
    assert table.titles is None or len(table.titles) == m
    assert all(len(v) == m for v in table.attributes.values())
    catalog = outcome(lambda: build_catalog(IdMap(["1", "2", "3"], offset=1), table))
    assert catalog is None or all(len(v) == 4 for v in catalog.attributes.values())


def files(tmp: Path, contents: dict[str, bytes | None]) -> Path:
    for name, raw in contents.items():
        if raw is not None:
            (tmp / name).write_bytes(raw)
    return tmp


@FAST
@given(st.data())
def test_sasrec_and_s3rec(data: st.DataObject) -> None:
    width = data.draw(st.sampled_from([2, 3]))  # SASRec lines have 2 fields, S3-Rec lines any number
    raw = data.draw(text_file(st.sampled_from([" ", "\t", "  "]), max_fields=4, width=width))
    items = data.draw(st.none() | text_file("\t", header=["item_id", "title", "genres"], width=3))
    with tempfile.TemporaryDirectory() as tmp:
        folder = files(Path(tmp), {"d.txt": raw, "items.tsv": items})
        table = outcome(lambda: read_item_table(folder / "items.tsv")) if items is not None else None
        metadata = [table] if table is not None else []
        for read in (read_sasrec, read_s3rec):
            result = outcome(lambda read=read: read(folder / "d.txt", metadata))
            if result is not None:
                check_table(*result)


@FAST
@given(st.data())
def test_movielens(data: st.DataObject) -> None:
    ratings = data.draw(text_file("::", max_fields=5, width=4))
    movies = data.draw(st.none() | text_file("::", max_fields=4, width=3))
    with tempfile.TemporaryDirectory() as tmp:
        result = outcome(lambda: read_movielens(files(Path(tmp), {"ratings.dat": ratings, "movies.dat": movies})))
    if result is not None:
        check_table(*result)
        assert ((result[0].ratings >= 0.5) & (result[0].ratings <= 5)).all()


@FAST
@given(st.data())
def test_rechorus(data: st.DataObject) -> None:
    header = data.draw(st.sampled_from([["user_id", "item_id", "time"], ["user_id", "item_id", "time", "neg"]]))
    modes = data.draw(st.sampled_from([("clean",), ("bytes", "clean", "odd")]))  # all clean: often valid
    parts = {name: data.draw(text_file("\t", max_fields=len(header), header=header, width=len(header),
                                       modes=modes)) for name in ("train.csv", "dev.csv", "test.csv")}
    parts["item_meta.csv"] = data.draw(st.none() | text_file("\t", header=["item_id", "i_cat"], width=2))
    with tempfile.TemporaryDirectory() as tmp:
        raw = outcome(lambda: read_rechorus(files(Path(tmp), parts)))
    if raw is not None:
        check_table(raw.interactions, raw.catalog)
        n = len(raw.interactions)
        assert len(raw.valid_rows) == len(raw.test_rows) == n and not (raw.valid_rows & raw.test_rows).any()


RECBOLE_COLUMNS = ["user_id:token", "item_id:token", "timestamp:float", "rating:float", "rating:float",
                   "weight:int", "user_id", "genre:token_seq", "name:token"]


@FAST
@given(st.data())
def test_recbole(data: st.DataObject) -> None:
    extra = data.draw(st.lists(st.sampled_from(RECBOLE_COLUMNS), max_size=2))
    header = data.draw(st.permutations(["user_id:token", "item_id:token", *extra]))
    item_header = ["item_id:token", *data.draw(st.lists(st.sampled_from(RECBOLE_COLUMNS), max_size=2))]
    inter = data.draw(text_file("\t", max_fields=len(header), header=header, width=len(header)))
    item = data.draw(st.none() | text_file("\t", max_fields=len(item_header), header=item_header,
                                           width=len(item_header)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = files(Path(tmp), {"x.inter": inter, "x.item": item})
        result = outcome(lambda: read_recbole(folder / "x.inter", folder / "x.item" if item is not None else None))
    if result is not None:
        check_table(*result)


@FAST
@given(st.data())
def test_item_table(data: st.DataObject) -> None:
    header = data.draw(st.lists(st.sampled_from(["item_id", "title", "name", "genres", ""]), min_size=1,
                                max_size=4))
    raw = data.draw(text_file("\t", max_fields=len(header), header=header))
    with tempfile.TemporaryDirectory() as tmp:
        table = outcome(lambda: read_item_table(files(Path(tmp), {"i.tsv": raw}) / "i.tsv"))
    if table is not None:
        check_item_table(table)


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**30), st.floats(allow_nan=True),
                         st.text(max_size=4), st.sampled_from(["1", "2", " 3", "007"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


ATTRIBUTE_IDS = st.lists(st.one_of(st.integers(-1, 9), st.text(max_size=3)), max_size=3)


@FAST
@given(st.one_of(st.binary(max_size=120),
                 st.dictionaries(st.sampled_from(["1", "2", "3", "4"]), ATTRIBUTE_IDS, min_size=1)
                 .map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
                 st.dictionaries(st.sampled_from(["1", "2", "3", " 2", "", "x"]), JSON_VALUES, max_size=4)
                 .map(lambda d: json.dumps(d).encode()),
                 JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_item_attributes_json(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        table = outcome(lambda: read_item_attributes_json(files(Path(tmp), {"a.json": raw}) / "a.json"))
    if table is not None:
        check_item_table(table)
        assert all(isinstance(v, str) for values in table.attributes["attribute"] for v in values)
