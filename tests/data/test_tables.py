"""Users' own files: each format, column maps, timestamps, filters, item files, detection and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec.config import apply_overrides
from seqrec.data.config import DataConfig, ItemsConfig
from seqrec.data.formats import detect_format
from seqrec.data.registry import load
from seqrec.data.synthetic import SyntheticConfig
from seqrec.errors import ConfigError, DataError
from seqrec.experiment import ExperimentConfig

# user, item, unix seconds, rating: three users, four items, chronological per user
ROWS = [("u1", "a", 100, 5), ("u1", "b", 200, 3), ("u1", "c", 300, 4), ("u1", "d", 400, 5),
        ("u2", "b", 150, 4), ("u2", "c", 250, 2), ("u2", "a", 350, 5),
        ("u3", "c", 120, 5), ("u3", "d", 220, 4), ("u3", "a", 320, 1), ("u3", "b", 420, 4)]


def write_delimited(path: Path, header: list[str], rows: list[tuple], sep: str = ",") -> Path:
    path.write_text(sep.join(header) + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in rows))
    return path


def records(header: list[str], rows: list[tuple]) -> list[dict]:
    return [dict(zip(header, r, strict=True)) for r in rows]


def sequences(data) -> dict[str, list[str]]:
    """External user id -> external items of the user's full history, oldest first."""
    out = {}
    for u, user in enumerate(data.user_map.external):
        out[user] = data.item_map.to_external(data.full_histories[u])
    return out


EXPECTED = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "a"], "u3": ["c", "d", "a", "b"]}
HEADER = ["user_id", "item_id", "timestamp", "rating"]


# ---------------------------------------------------------------- formats


def test_csv_with_common_column_names(tmp_path):
    shuffled = ROWS[::-1]  # file order is not time order: rows are sorted by timestamp per user
    data = load(DataConfig(path=str(write_delimited(tmp_path / "clicks.csv", HEADER, shuffled))))
    assert sequences(data) == EXPECTED
    assert data.name == "clicks"
    assert data.source.format == "csv" and data.source.path == str(tmp_path / "clicks.csv")
    assert data.source.columns == {"user": "user_id", "item": "item_id", "timestamp": "timestamp", "rating": "rating"}
    assert len(data.test) == 3 and data.test.targets.tolist() == data.item_map.to_internal(["d", "a", "b"]).tolist()


def test_tsv_parquet_jsonl_and_gzip_read_the_same(tmp_path):
    write_delimited(tmp_path / "x.tsv", HEADER, ROWS, sep="\t")
    pq.write_table(pa.Table.from_pylist(records(HEADER, ROWS)), tmp_path / "x.parquet")
    lines = "".join(json.dumps(r) + "\n" for r in records(HEADER, ROWS))
    (tmp_path / "x.jsonl").write_text(lines)
    with gzip.open(tmp_path / "y.jsonl.gz", "wt") as handle:
        handle.write(lines)
    with gzip.open(tmp_path / "z.csv.gz", "wt") as handle:  # with a byte-order mark and CRLF line ends
        handle.write("\ufeff" + ",".join(HEADER) + "\r\n" + "".join(",".join(map(str, r)) + "\r\n" for r in ROWS))
    cases = [("x.tsv", "tsv"), ("x.parquet", "parquet"), ("x.jsonl", "jsonl"), ("y.jsonl.gz", "jsonl"),
             ("z.csv.gz", "csv")]
    for name, fmt in cases:
        data = load(DataConfig(path=str(tmp_path / name)))
        assert sequences(data) == EXPECTED, name
        assert data.source.format == fmt


def test_parquet_folder_and_explicit_format(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    table = pa.Table.from_pylist(records(HEADER, ROWS))
    pq.write_table(table.slice(0, 5), folder / "part-0.parquet")
    pq.write_table(table.slice(5), folder / "part-1.parquet")
    assert sequences(load(DataConfig(path=str(folder)))) == EXPECTED
    odd = write_delimited(tmp_path / "clicks.log", HEADER, ROWS)
    assert sequences(load(DataConfig(path=str(odd), format="csv"))) == EXPECTED


def test_existing_layouts_are_formats(tmp_path):
    (tmp_path / "seq.txt").write_text("1 5\n1 6\n1 7\n2 6\n2 7\n2 5\n")
    assert detect_format(tmp_path / "seq.txt") == "sasrec"
    (tmp_path / "s3.txt").write_text("1 5 6 7\n2 6 7 5\n")
    assert detect_format(tmp_path / "s3.txt") == "s3rec"
    data = load(DataConfig(path=str(tmp_path / "s3.txt")))
    assert data.source.format == "s3rec" and sequences(data) == {"1": ["5", "6", "7"], "2": ["6", "7", "5"]}
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "ratings.dat").write_text("1::10::5::100\n1::11::3::200\n1::12::4::300\n1::13::4::400\n"
                                    "2::11::5::100\n2::10::2::200\n2::12::4::300\n2::13::5::400\n2::14::5::500\n")
    data = load(DataConfig(path=str(ml), min_rating=4))
    assert data.source.format == "movielens"
    assert sequences(data) == {"1": ["10", "12", "13"], "2": ["11", "12", "13", "14"]}
    assert detect_format(ml) == "movielens"
    with pytest.raises(DataError, match="movielens files have fixed columns"):
        load(DataConfig(path=str(ml), columns={"user": "uid"}))


def test_rechorus_and_amazon2023_folders_keep_their_split(tmp_path):
    amazon = tmp_path / "amazon"
    amazon.mkdir()
    header = ["user_id", "parent_asin", "timestamp", "label"]
    parts = {"train": [("u1", "A", 1_600_000_000_000, 5), ("u1", "B", 1_600_000_100_000, 4),
                       ("u2", "B", 1_600_000_000_000, 3), ("u2", "C", 1_600_000_200_000, 4)],
             "valid": [("u1", "C", 1_600_000_300_000, 4), ("u2", "A", 1_600_000_300_000, 2)],
             "test": [("u1", "D", 1_600_000_400_000, 5), ("u2", "D", 1_600_000_400_000, 1)]}
    for name, rows in parts.items():
        (amazon / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records(header, rows)))
    assert detect_format(amazon) == "amazon2023"
    data = load(DataConfig(path=str(amazon), split="predefined"))
    assert data.source.format == "amazon2023" and data.source.columns["rating"] == "label"
    assert data.item_map.to_external(data.test.targets) == ["D", "D"]
    assert data.item_map.to_external(data.valid.targets) == ["C", "A"]
    rechorus = tmp_path / "rechorus"
    rechorus.mkdir()
    header = "user_id\titem_id\ttime\n"
    (rechorus / "train.csv").write_text(header + "1\t1\t10\n1\t2\t20\n2\t2\t10\n2\t3\t30\n")
    (rechorus / "dev.csv").write_text(header + "1\t3\t40\n2\t1\t40\n")
    (rechorus / "test.csv").write_text(header + "1\t4\t50\n2\t4\t50\n")
    data = load(DataConfig(path=str(rechorus), split="predefined"))
    assert data.source.format == "rechorus" and data.item_map.to_external(data.test.targets) == ["4", "4"]
    (tmp_path / "lfm.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                        + "".join(f"u\t{i}\t{i}\n" for i in range(5)))
    (tmp_path / "lfm.item").write_text("item_id:token\tname:token\n1\tOne\n")
    data = load(DataConfig(path=str(tmp_path / "lfm.inter")))
    assert data.source.format == "recbole" and data.catalog.titles[data.item_map.to_internal(["1"])[0]] == "One"


# ---------------------------------------------------------------- options


def test_column_map_and_config_overrides(tmp_path):
    path = write_delimited(tmp_path / "shop.csv", ["visitor", "sku", "when", "stars"], ROWS)
    raw = apply_overrides({}, [f"data.path={path}", "data.columns={user: visitor, item: sku, timestamp: when}"])
    cfg = ExperimentConfig.from_dict(raw)
    assert cfg.data.name == "shop" and cfg.run_name == "sasrec-shop"
    data = load(cfg.data)
    assert sequences(data) == EXPECTED and "rating" not in data.source.columns


def test_timestamp_kinds(tmp_path):
    iso = [(u, i, f"2024-01-01T00:{t // 60:02d}:{t % 60:02d}", r) for u, i, t, r in ROWS]
    data = load(DataConfig(path=str(write_delimited(tmp_path / "iso.csv", HEADER, iso))))
    assert sequences(data) == EXPECTED
    dates = [(u, i, f"2024-01-{t // 50:02d}", r) for u, i, t, r in ROWS]
    assert sequences(load(DataConfig(path=str(write_delimited(tmp_path / "d.csv", HEADER, dates)),
                                     timestamp="iso"))) == EXPECTED
    ms = [(u, i, t * 1000 + 1_600_000_000_000, r) for u, i, t, r in ROWS]
    path = write_delimited(tmp_path / "ms.csv", HEADER, ms)
    auto = load(DataConfig(path=str(path), split="temporal"))
    explicit = load(DataConfig(path=str(path), split="temporal", timestamp="milliseconds"))
    assert sequences(auto) == EXPECTED and auto.test.targets.tolist() == explicit.test.targets.tolist()
    seconds = load(DataConfig(path=str(write_delimited(tmp_path / "s.csv", HEADER, ROWS)), timestamp="seconds"))
    assert sequences(seconds) == EXPECTED


def test_timestamps_in_seconds_from_every_kind():
    from seqrec.data.tables import seconds

    assert seconds(pa.chunked_array([["2024-01-01T00:00:01Z"]]), "auto", "f", "t").tolist() == [1704067201.0]
    assert seconds(pa.chunked_array([["2024-01-01 00:00:01"]]), "iso", "f", "t").tolist() == [1704067201.0]
    assert seconds(pa.chunked_array([[1704067201000]]), "auto", "f", "t").tolist() == [1704067201.0]
    assert seconds(pa.chunked_array([[1704067201]]), "auto", "f", "t").tolist() == [1704067201.0]
    stamps = pa.chunked_array([pa.array([1704067201000], pa.timestamp("ms"))])
    assert seconds(stamps, "auto", "f", "t").tolist() == [1704067201.0]


def test_min_rating_and_duplicates(tmp_path):
    rows = [*ROWS, ("u1", "a", 500, 5), ("u1", "b", 50, 2)]  # u1 sees a again at the end, b before everything
    path = str(write_delimited(tmp_path / "r.csv", HEADER, rows))
    assert sequences(load(DataConfig(path=path)))["u1"] == ["b", "a", "b", "c", "d", "a"]
    assert sequences(load(DataConfig(path=path, duplicates="first")))["u1"] == ["b", "a", "c", "d"]
    assert sequences(load(DataConfig(path=path, duplicates="last")))["u1"] == ["b", "c", "d", "a"]
    rated = load(DataConfig(path=path, min_rating=4))
    assert sequences(rated) == {"u1": ["a", "c", "d", "a"], "u2": ["b", "a"], "u3": ["c", "d", "b"]}
    assert "u2" not in {rated.user_map.external[u] for u in rated.test.users}  # too short for leave-one-out


def test_ids_keep_leading_zeros_and_numeric_order(tmp_path):
    rows = [("007", 10, 1, 1), ("007", 9, 2, 1), ("007", 100, 3, 1), ("7", 9, 1, 1), ("7", 10, 2, 1),
            ("7", 100, 3, 1)]
    data = load(DataConfig(path=str(write_delimited(tmp_path / "z.csv", HEADER, rows))))
    assert sorted(data.user_map.external) == ["007", "7"]
    assert data.item_map.external == ["9", "10", "100"]


def test_items_file_with_pipe_and_list_attributes(tmp_path):
    path = str(write_delimited(tmp_path / "i.csv", HEADER, ROWS))
    items = tmp_path / "items.csv"
    items.write_text('item_id,title,genres\na,Alpha,Comedy|Drama\nb,"Beta, the",Drama\nc,Gamma,\nzz,Unused,X\n')
    data = load(DataConfig(path=path, items=ItemsConfig(path=str(items), attributes=["genres"])))
    a, b, c, d = data.item_map.to_internal(["a", "b", "c", "d"])
    assert data.catalog.titles[a] == "Alpha" and data.catalog.titles[b] == "Beta, the" and data.catalog.titles[d] == ""
    assert data.catalog.attributes["genres"][a] == ("Comedy", "Drama") and data.catalog.attributes["genres"][c] == ()
    assert data.catalog.attribute_values("genres") == ["Comedy", "Drama"]
    table = pa.table({"iid": ["a", "d"], "name": ["Alpha", "Delta"], "tags": [["x", "y"], []]})
    pq.write_table(table, tmp_path / "items.parquet")
    cfg = ItemsConfig(path=str(tmp_path / "items.parquet"), id="iid", attributes=["tags"])
    data = load(DataConfig(path=path, items=cfg))
    assert data.catalog.attributes["tags"][a] == ("x", "y") and data.catalog.titles[d] == "Delta"


def test_named_datasets_record_their_source_and_take_the_filters():
    tiny = SyntheticConfig(num_users=40, num_items=30, mean_seq_len=8, min_seq_len=5, max_seq_len=15)
    data = load(DataConfig(name="synthetic", synthetic=tiny))
    assert data.source.name == "synthetic" and data.source.path is None and data.source.format is None
    unique = load(DataConfig(name="synthetic", synthetic=tiny, duplicates="first"))
    pairs = {(u, i) for u in range(unique.num_users) for i in unique.full_histories[u].tolist()}
    assert len(pairs) == int(unique.full_histories.lengths.sum()) <= int(data.full_histories.lengths.sum())
    with pytest.raises(DataError, match="dataset 'synthetic': data.min_rating needs ratings"):
        load(DataConfig(name="synthetic", synthetic=tiny, min_rating=4))


# ---------------------------------------------------------------- bad input


def assert_data_error(cfg: DataConfig, *parts: str) -> None:
    with pytest.raises(DataError) as err:
        load(cfg)
    for part in parts:
        assert part in str(err.value), str(err.value)


def test_missing_and_misnamed_columns(tmp_path):
    path = str(write_delimited(tmp_path / "m.csv", ["who", "what"], [("a", "b")]))
    assert_data_error(DataConfig(path=path), "m.csv", "no user column", "data.columns.user", "who, what")
    assert_data_error(DataConfig(path=path, columns={"user": "who", "item": "sku"}),
                      "data.columns.item names column 'sku'", "columns found: who, what")


def test_bad_values_name_the_row(tmp_path):
    rows = [("u1", "a", 100, 5), ("u1", "b", "yesterday", 3)]
    assert_data_error(DataConfig(path=str(write_delimited(tmp_path / "t.csv", HEADER, rows))), "t.csv", "row 2",
                      "'timestamp'", "'yesterday'")
    rows = [("u1", "a", 100, 5), ("u1", "b", 200, "five")]
    assert_data_error(DataConfig(path=str(write_delimited(tmp_path / "r.csv", HEADER, rows))), "row 2", "'five'")
    rows = [("u1", "a", 100, 5), ("", "b", 200, 4)]
    assert_data_error(DataConfig(path=str(write_delimited(tmp_path / "e.csv", HEADER, rows))), "row 2",
                      "'user_id'", "empty")
    rows = [("u1", "a", 100, 5), ("u1", "b", 200, "nan")]
    assert_data_error(DataConfig(path=str(write_delimited(tmp_path / "n.csv", HEADER, rows))), "row 2", "finite")
    rows = [("u1", "a", "2024-01-01", 5), ("u1", "b", "2024-01-01T00:00:00+02:00", 4)]
    assert_data_error(DataConfig(path=str(write_delimited(tmp_path / "z.csv", HEADER, rows))), "row 2", "zone")


def test_mixed_types_in_jsonl(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"user_id": 1, "item_id": "a"}\n{"user_id": "x", "item_id": "b"}\n')
    assert_data_error(DataConfig(path=str(tmp_path / "m.jsonl")), "m.jsonl", "cannot be read as jsonl")
    (tmp_path / "f.jsonl").write_text('{"user_id": 1.5, "item_id": "a"}\n')
    assert_data_error(DataConfig(path=str(tmp_path / "f.jsonl")), "row 1", "not a 64-bit integer")


def test_empty_after_each_filter(tmp_path):
    path = str(write_delimited(tmp_path / "f.csv", HEADER, ROWS))
    assert_data_error(DataConfig(path=path, min_rating=9), "f.csv", "11 rows read", "min_rating removed 11")
    assert_data_error(DataConfig(path=path, min_rating=4, min_user_interactions=9), "f.csv",
                      "min_rating removed 3", "k-core 9/0")
    header_only = str(write_delimited(tmp_path / "h.csv", HEADER, []))
    assert_data_error(DataConfig(path=header_only), "h.csv", "no interactions")
    no_ratings = str(write_delimited(tmp_path / "nr.csv", ["user_id", "item_id"], [("a", "b")]))
    assert_data_error(DataConfig(path=no_ratings, min_rating=3), "min_rating needs ratings")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_text("")
    assert_data_error(DataConfig(path=str(tmp_path / "x.xlsx")), "x.xlsx", "data.format", "csv", "parquet")
    assert_data_error(DataConfig(path=str(tmp_path / "none.csv")), "none.csv", "not found")
    with pytest.raises(ConfigError, match="data.format must be one of .*amazon2023"):
        DataConfig(path="x.csv", format="excel")
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert_data_error(DataConfig(path=str(tmp_path / "bad.parquet")), "bad.parquet", "cannot be read as parquet")


@pytest.mark.parametrize(("settings", "key"), [
    ({"path": ""}, "data.path"),
    ({"path": "x.csv", "columns": {"usr": "a"}}, "data.columns.usr"),
    ({"path": "x.csv", "timestamp": "days"}, "data.timestamp"),
    ({"path": "x.csv", "duplicates": "drop"}, "data.duplicates"),
    ({"items": {"path": "i.csv"}}, "data.items needs data.path"),
    ({"path": "x.csv", "items": {"path": ""}}, "data.items.path"),
    ({"path": "x.csv", "min_rating": float("nan")}, "data.min_rating"),
])
def test_config_checks_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ExperimentConfig.from_dict({"data": settings})


def test_nothing_is_written(tmp_path):
    path = write_delimited(tmp_path / "w.csv", HEADER, ROWS)
    content = path.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    load(DataConfig(path=str(path), min_rating=4))
    with pytest.raises(DataError):
        load(DataConfig(path=str(path), min_rating=99))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert path.read_bytes() == content


def test_only_plainly_written_integers_become_integer_ids():
    import numpy as np
    import pyarrow as pa

    from seqrec.data.tables import ids

    plain = ids(pa.chunked_array([["0", "7", "-12", " 8 "]]), "f", "user")
    assert plain.dtype == np.int64 and plain.tolist() == [0, 7, -12, 8]  # trimmed text still counts
    kept = ids(pa.chunked_array([["0", "-0", "007"]]), "f", "user")
    assert [str(v) for v in kept] == ["0", "-0", "007"]  # "-0" and "007" are other ids than 0 and 7
