"""Property tests: any CSV or JSONL text gives a dataset or a DataError, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec.data.config import DataConfig
from seqrec.data.registry import load
from seqrec.errors import DataError

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["user_id", "item_id", "timestamp", "rating", "uid", "x", ""]
TOKENS = ["", "1", "2", "3", "007", "-1", "1.5", "nan", "inf", "1e300", "a", "b", "é", '"', '"q,x"', " ",
          "2024-01-01", "2024-01-01T00:00:00Z", "1700000000000", "\x00", "\ufeff", "\r"]
cells = st.sampled_from(TOKENS) | st.text(max_size=4)
rows = st.lists(st.lists(cells, min_size=1, max_size=5), max_size=20)


def check(path: Path, **options: object) -> None:
    """Loading gives a consistent dataset or a DataError."""
    try:
        data = load(DataConfig(path=str(path), **options))
    except DataError:
        return
    assert data.train.items.min(initial=1) >= 1 and data.train.items.max(initial=0) <= data.num_items
    assert len(data.full_histories) == data.num_users
    assert np.all(data.test.targets >= 1) and len(data.test.targets) == len(data.test.users)


usual_header = st.tuples(st.booleans(), st.booleans()).flatmap(lambda extra: st.permutations(
    ["user_id", "item_id"] + ["timestamp"] * extra[0] + ["rating"] * extra[1]))
any_header = st.lists(st.sampled_from(NAMES), min_size=1, max_size=5)


@FAST
@given(header=usual_header | any_header, data=st.data(),
       options=st.sampled_from([{}, {"duplicates": "first"}, {"min_rating": 2.0}, {"timestamp": "iso"},
                                {"split": "temporal"}, {"min_user_interactions": 2}]))
def test_any_csv_table(header: list[str], data: st.DataObject, options: dict) -> None:
    """Rows as wide as the header (now and then one wider) and mostly plausible values, so that many tables
    get past the parser and through the filters and splits."""
    noisy = data.draw(st.booleans())
    numeric = st.sampled_from(["1", "2", "3", "4", "5", "10", "20"])
    columns = [numeric if name in ("timestamp", "rating") else st.sampled_from(["1", "2", "3", "a", "b"])
               for name in header]
    columns = [st.one_of(c, cells) if noisy else c for c in columns]
    row = st.tuples(*columns).map(list) if columns else st.just([])
    if data.draw(st.integers(0, 20)) == 0:
        row = row.map(lambda r: [*r, "extra"])
    body = data.draw(st.lists(row, max_size=30))
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in body)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check(path, **options)


@FAST
@given(text=st.text(max_size=200) | st.binary(max_size=200),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".csv.gz", ".jsonl.gz", ".parquet"]))
def test_any_text(text: str | bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        if isinstance(text, str):
            path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        else:
            path.write_bytes(text)
        check(path)


scalars = st.one_of(st.integers(-3, 5), st.sampled_from(["1", "2", "a", "", "2024-01-01", "x y"]), st.none(),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.lists(st.integers(0, 2),
                                                                                            max_size=2))
plain = st.one_of(st.integers(1, 4), st.integers(1, 4), st.sampled_from(["a", "b"]))
record = st.fixed_dictionaries({"user_id": plain, "item_id": plain},
                               optional={"timestamp": st.one_of(st.integers(0, 9), scalars),
                                         "rating": st.one_of(st.integers(1, 5), scalars), "extra": scalars})
records = st.lists(st.one_of(record, record, st.dictionaries(st.sampled_from(["user_id", "item_id"]), scalars)),
                   max_size=30)


@FAST
@given(rows=records)
def test_any_json_records(rows: list[dict]) -> None:
    """JSON lines of mixed value types, and the same rows as a pyarrow table built from Python objects."""
    import json

    from seqrec.datasets import from_frame

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        check(path)
    import pyarrow as pa

    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError):  # pyarrow refuses some mixes; frames start from a table
        return
    try:
        from_frame(table)
    except DataError:
        pass
