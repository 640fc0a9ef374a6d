"""File-format readers on tiny hand-written files."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.idmap import IdMap
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
from seqrec.data.splits import predefined_split
from seqrec.errors import DataError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def rows(seqs) -> list[list[int]]:
    return [seqs[u].tolist() for u in range(len(seqs))]


# ---------------------------------------------------------------- SASRec / S3-Rec


def test_sasrec_keeps_file_order_and_contiguous_ids(tmp_path):
    path = write(tmp_path / "d.txt", "1 3\n1 1\n2 2\n\n2 3\n1 2\n")
    inter, catalog = read_sasrec(path)
    assert (inter.num_users, inter.num_items, len(inter)) == (2, 3, 5)
    assert inter.item_map.external == ["1", "2", "3"]  # ids 1..N are kept
    assert rows(inter.sequences()) == [[3, 1, 2], [2, 3]]  # per-user file order
    assert inter.timestamps is None
    assert catalog.num_items == 3 and catalog.titles is None


def test_sasrec_remaps_sparse_ids_in_numeric_order(tmp_path):
    inter, _ = read_sasrec(write(tmp_path / "d.txt", "10 100\n10 20\n9 3\n"))
    assert inter.user_map.external == ["9", "10"]
    assert inter.item_map.external == ["3", "20", "100"]
    assert rows(inter.sequences()) == [[1], [3, 2]]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("1 2\n1 2 3\n", 2, "expected 2 fields (user, item), found 3"),
    ("1 2\n\n1\n", 3, "found 1"),
    ("1 2\n1 x\n", 2, "item must be an integer, got 'x'"),
    ("1 2\n1.5 2\n", 2, "user must be an integer, got '1.5'"),
])
def test_sasrec_malformed_lines_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError) as err:
        read_sasrec(path)
    assert f"{path}:{line}:" in str(err.value)
    assert message in str(err.value)


def test_sasrec_empty_or_missing_file(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_sasrec(write(tmp_path / "empty.txt", "\n\n"))
    with pytest.raises(DataError, match="not found"):
        read_sasrec(tmp_path / "nope.txt")


def test_s3rec_one_line_per_user(tmp_path):
    path = write(tmp_path / "Beauty.txt", "1 4 2 3\n2 2 5\n3 1 2 4 5\n")
    inter, _ = read_s3rec(path)
    assert (inter.num_users, inter.num_items, len(inter)) == (3, 5, 9)
    assert rows(inter.sequences()) == [[4, 2, 3], [2, 5], [1, 2, 4, 5]]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("1 4 2\n2\n", 2, "expected a user id followed by its items"),
    ("1 4 2\n2 5 b6\n", 2, "must be an integer, got 'b6'"),
])
def test_s3rec_malformed_lines(tmp_path, text, line, message):
    path = write(tmp_path / "s.txt", text)
    with pytest.raises(DataError) as err:
        read_s3rec(path)
    assert f"{path}:{line}:" in str(err.value) and message in str(err.value)


# ---------------------------------------------------------------- item metadata


def test_item_table_titles_and_genres_align_to_internal_ids(tmp_path):
    items = write(tmp_path / "items.tsv", "item_id\tmovie_id\ttitle\tgenres\n"
                  "30\t7\tHeat (1995)\tAction|Crime\n"
                  "10\t8\tToy Story (1995)\tAnimation|Comedy\n"
                  "99\t9\tNot Rated (2000)\tDrama\n")  # 99 is not in the interactions
    inter, catalog = read_sasrec(write(tmp_path / "d.txt", "1 10\n1 20\n1 30\n"), [read_item_table(items)])
    assert inter.item_map.external == ["10", "20", "30"]
    assert catalog.titles == ["", "Toy Story (1995)", "", "Heat (1995)"]
    assert catalog.attributes["genre"] == [(), ("Animation", "Comedy"), (), ("Action", "Crime")]
    assert catalog.attribute_values("genre") == ["Action", "Animation", "Comedy", "Crime"]


def test_item_table_first_column_is_the_id(tmp_path):
    path = write(tmp_path / "items_derived.tsv", "s3rec_item_id\tasin\ttitle\n2\tB01\tLipstick\n1\tB02\t\n")
    table = read_item_table(path)
    assert table.ids.tolist() == [2, 1] and table.titles == ["Lipstick", ""]
    catalog = build_catalog(IdMap(["1", "2"], offset=1), table)
    assert catalog.titles == ["", "", "Lipstick"]


def test_item_table_errors(tmp_path):
    path = write(tmp_path / "items.tsv", "item_id\ttitle\n1\tA\n2\tB\textra\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: expected 2 tab-separated fields")):
        read_item_table(path)
    with pytest.raises(DataError, match="no 'name' column; the header has: item_id, title"):
        read_item_table(write(tmp_path / "ok.tsv", "item_id\ttitle\n1\tA\n"), title_column="name")
    foreign = ItemTable(np.array(["x", "y"]), titles=["X", "Y"])
    with pytest.raises(DataError, match="match none of the dataset's item ids"):
        build_catalog(IdMap(["1", "2"], offset=1), foreign)


def test_item_attributes_json(tmp_path):
    path = write(tmp_path / "attrs.json", json.dumps({"2": [5, 7], "1": [5]}))
    catalog = build_catalog(IdMap(["1", "2", "3"], offset=1), read_item_attributes_json(path))
    assert catalog.attributes["attribute"] == [(), ("5",), ("5", "7"), ()]
    bad = write(tmp_path / "bad.json", '{"1": [1],\n "2": [2,\n}')
    with pytest.raises(DataError, match=re.escape(f"{bad}:3: not valid JSON")):
        read_item_attributes_json(bad)
    with pytest.raises(DataError, match="item '1': expected a list"):
        read_item_attributes_json(write(tmp_path / "x.json", '{"1": 3}'))


# ---------------------------------------------------------------- ReChorus


@pytest.fixture
def rechorus(tmp_path) -> Path:
    header = "user_id\titem_id\ttime\n"
    write(tmp_path / "train.csv", header + "1\t10\t100\n2\t20\t100\n1\t30\t50\n2\t10\t300\n3\t30\t10\n")
    dev_header = header.replace("\n", "\tneg_items\n")
    write(tmp_path / "dev.csv", dev_header + "1\t20\t100\t[1, 2]\n2\t30\t400\t[3]\n")
    write(tmp_path / "test.csv", header + "1\t40\t500\n2\t40\t500\n3\t10\t20\n")
    write(tmp_path / "item_meta.csv", "item_id\ti_category\tr_complement\n10\t3\t[20]\n40\t1\t[]\n")
    return tmp_path


def test_rechorus_rows_and_split_masks(rechorus):
    raw = read_rechorus(rechorus)
    inter = raw.interactions
    assert inter.item_map.external == ["10", "20", "30", "40"]
    # user 1: train 30@50, 10@100, then dev 20@100 (tie: train first), then test 40@500
    assert rows(inter.sequences()) == [[3, 1, 2, 4], [2, 1, 3, 4], [3, 1]]
    assert inter.timestamps.tolist() == [50, 100, 100, 500, 100, 300, 400, 500, 10, 20]
    assert raw.valid_rows.tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert raw.test_rows.tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0, 1]
    assert raw.catalog.attributes["category"] == [(), ("3",), (), (), ("1",)]


def test_predefined_split_histories_and_targets(rechorus):
    raw = read_rechorus(rechorus)
    data = predefined_split(raw.interactions, raw.catalog, raw.valid_rows, raw.test_rows, "grocery")
    assert rows(data.train) == [[3, 1], [2, 1], [3]]
    assert data.valid.users.tolist() == [0, 1]  # user 3 has no dev row
    assert rows(data.valid.histories) == [[3, 1], [2, 1]]
    assert data.valid.targets.tolist() == [2, 3]
    assert data.test.users.tolist() == [0, 1, 2]
    assert rows(data.test.histories) == [[3, 1, 2], [2, 1, 3], [3]]
    assert data.test.targets.tolist() == [4, 4, 1]
    assert data.item_stats.counts.tolist() == [0, 2, 1, 2, 0]  # training rows only


def test_predefined_split_rejects_two_targets_per_user(rechorus):
    write(rechorus / "test.csv", "user_id\titem_id\ttime\n1\t40\t500\n1\t10\t600\n")
    raw = read_rechorus(rechorus)
    with pytest.raises(DataError, match="user 1 has 2 test rows"):
        predefined_split(raw.interactions, raw.catalog, raw.valid_rows, raw.test_rows)


def test_rechorus_errors(rechorus):
    write(rechorus / "dev.csv", "user\titem_id\ttime\n1\t20\t100\n")
    with pytest.raises(DataError, match=r"dev.csv:1: no 'user_id' column"):
        read_rechorus(rechorus)
    write(rechorus / "dev.csv", "user_id\titem_id\ttime\n1\t20\t100\n1\t20\tlater\n")
    with pytest.raises(DataError, match=r"dev.csv:3: time must be a finite number, got 'later'"):
        read_rechorus(rechorus)


# ---------------------------------------------------------------- RecBole


def test_recbole_orders_by_timestamp_and_reads_items(tmp_path):
    inter_path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\tweight:float\ttimestamp:float\n"
                       "u2\t52\t13\t300\nu1\t7\t1\t200\nu2\t7\t2\t100\nu2\t52\t3\t300\n")
    item_path = write(tmp_path / "x.item", "item_id:token\tname:token\tgenre:token_seq\n"
                      "7\tThe Cure\trock new_wave\n52\tDiary of Dreams\tdarkwave\n")
    inter, catalog = read_recbole(inter_path, item_path)
    assert inter.user_map.external == ["u1", "u2"] and inter.item_map.external == ["7", "52"]
    assert rows(inter.sequences()) == [[1], [1, 2, 2]]
    assert inter.timestamps.tolist() == [200, 100, 300, 300]
    assert inter.ratings is None
    assert catalog.titles == ["", "The Cure", "Diary of Dreams"]
    assert catalog.attributes["genre"] == [(), ("rock", "new_wave"), ("darkwave",)]


def test_recbole_ratings_and_header_errors(tmp_path):
    rated = write(tmp_path / "r.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t4.5\n")
    inter, _ = read_recbole(rated)
    assert inter.ratings.tolist() == [4.5]
    bad_type = write(tmp_path / "t.inter", "user_id:token\titem_id:token\tweight:int\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"t.inter:1: column 'weight:int' has type 'int'"):
        read_recbole(bad_type)
    untyped = write(tmp_path / "u.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match="column 'user_id' has type 'none'"):
        read_recbole(untyped)


# ---------------------------------------------------------------- MovieLens


def test_movielens_ratings_and_movies(tmp_path):
    write(tmp_path / "ratings.dat", "1::20::5::978300760\n1::10::3::978300700\n2::20::4::978300000\n")
    write(tmp_path / "movies.dat", "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n", "latin-1")
    inter, catalog = read_movielens(tmp_path)
    assert rows(inter.sequences()) == [[1, 2], [2]]  # user 1 sorted by time
    assert inter.ratings.tolist() == [3, 5, 4]
    assert catalog.titles == ["", "Amélie (2001)", "Heat (1995)"]
    assert catalog.attributes["genre"][1] == ("Comedy", "Romance")


def test_movielens_errors(tmp_path):
    with pytest.raises(DataError) as err:
        read_movielens(tmp_path)
    assert str(tmp_path / "ratings.dat") in str(err.value) and "grouplens.org" in str(err.value)
    path = write(tmp_path / "ratings.dat", "1::20::5::978300760\n1::10::3\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: expected 4 fields")):
        read_movielens(tmp_path)


# ---------------------------------------------------------------- byte-order mark, CRLF, encodings


def bom_crlf(text: str) -> bytes:
    """The UTF-8 bytes of `text` as Windows tools save it: a byte-order mark and CRLF line endings."""
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")


def same_table(a, b) -> None:
    (ia, ca), (ib, cb) = a, b
    assert ia.user_map == ib.user_map and ia.item_map == ib.item_map
    assert ia.users.tolist() == ib.users.tolist() and ia.items.tolist() == ib.items.tolist()
    for x, y in ((ia.timestamps, ib.timestamps), (ia.ratings, ib.ratings)):
        assert (x is None and y is None) or x.tolist() == y.tolist()
    assert (ca.titles, ca.attributes) == (cb.titles, cb.attributes)


def twice(tmp_path: Path, files: dict[str, str], read) -> tuple:
    """`read(folder)` on the files written plainly and with a BOM and CRLF endings."""
    out = []
    for name, encode in (("plain", str.encode), ("windows", bom_crlf)):
        folder = tmp_path / name
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_bytes(encode(text))
        out.append(read(folder))
    return tuple(out)


ITEMS_TSV = "item_id\ttitle\tgenres\n1\tAmélie (2001)\tComedy|Romance\n3\tHeat (1995)\tAction\n"


@pytest.mark.parametrize(("files", "read"), [
    ({"d.txt": "1 3\n1 1\n2 2\n\n2 3\n", "i.tsv": ITEMS_TSV},
     lambda f: read_sasrec(f / "d.txt", [read_item_table(f / "i.tsv")])),
    ({"d.txt": "1 3 1\n2 2 3\n", "a.json": '{\n "1": [5],\n "3": [5, 7]\n}\n'},
     lambda f: read_s3rec(f / "d.txt", [read_item_attributes_json(f / "a.json")])),
    ({"ratings.dat": "1::20::5::978300760\n1::10::3::978300700\n2::20::4::978300000\n",
      "movies.dat": "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n"}, read_movielens),
    ({"x.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu2\t7\t4\t300\nu1\t7\t1\t200\n",
      "x.item": "item_id:token\tname:token\tgenre:token_seq\n7\tThe Cure\trock new_wave\n"},
     lambda f: read_recbole(f / "x.inter", f / "x.item")),
], ids=["sasrec+item-table", "s3rec+item2attributes", "movielens", "recbole"])
def test_bom_and_crlf_give_the_same_table(tmp_path, files, read):
    plain, windows = twice(tmp_path, files, read)
    same_table(plain, windows)
    assert len(plain[0]) > 0


def test_rechorus_bom_and_crlf_give_the_same_table_and_split(tmp_path, rechorus):
    files = {p.name: p.read_text(encoding="utf-8") for p in rechorus.iterdir() if p.suffix == ".csv"}
    (tmp_path / "copies").mkdir()
    plain, windows = twice(tmp_path / "copies", files, read_rechorus)
    same_table((plain.interactions, plain.catalog), (windows.interactions, windows.catalog))
    assert plain.valid_rows.tolist() == windows.valid_rows.tolist()
    assert plain.test_rows.tolist() == windows.test_rows.tolist()


def test_utf16_file_is_refused_with_advice(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes("1 2\n".encode("utf-16"))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: the file is UTF-16")):
        read_sasrec(path)


def test_nul_character_in_a_text_file_names_the_line(tmp_path):
    path = tmp_path / "items.tsv"
    path.write_bytes(b"item_id\ttitle\n1\tA\n2\tB\x00\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: NUL character")):
        read_item_table(path)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_movielens_titles_in_utf8_or_latin1(tmp_path, encoding):
    write(tmp_path / "ratings.dat", "1::10::5::978300760\n1::20::3::978300700\n")
    write(tmp_path / "movies.dat", "10::Amélie (2001)::Comedy|Romance\n20::Café au lait (1993)::Comedy\n", encoding)
    _, catalog = read_movielens(tmp_path)
    assert catalog.titles == ["", "Amélie (2001)", "Café au lait (1993)"]


def test_item_table_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "items.tsv"
    path.write_bytes("item_id\ttitle\n1\tAmélie\n".encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not valid UTF-8")):
        read_item_table(path)


# ---------------------------------------------------------------- numbers: finite, in range


@pytest.mark.parametrize(("line", "message"), [
    ("1::10::99::978300760", "rating 99 is outside the scale 0.5 to 5"),
    ("1::10::0::978300760", "rating 0 is outside the scale"),
    ("1::10::nan::978300760", "rating must be a finite number, got 'nan'"),
    ("1::10::inf::978300760", "rating must be a finite number, got 'inf'"),
    ("1::10::true::978300760", "rating must be a finite number, got 'true'"),
    ("1::10::4::soon", "timestamp must be an integer, got 'soon'"),
])
def test_movielens_ratings_must_be_finite_stars(tmp_path, line, message):
    path = write(tmp_path / "ratings.dat", f"1::20::5::978300000\n{line}\n")
    with pytest.raises(DataError) as err:
        read_movielens(tmp_path)
    assert f"{path}:2: {message}" in str(err.value)


@pytest.mark.parametrize(("value", "column"), [
    ("nan", "rating"), ("inf", "rating"), ("-Infinity", "rating"), ("five", "rating"), ("NaN", "timestamp"),
])
def test_recbole_numbers_must_be_finite(tmp_path, value, column):
    other = "3" if column == "timestamp" else "100"
    fields = {"rating": value, "timestamp": other} if column == "rating" else {"rating": other, "timestamp": value}
    path = write(tmp_path / "r.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                 f"1\t2\t4\t50\n1\t3\t{fields['rating']}\t{fields['timestamp']}\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: {column} must be a finite number")):
        read_recbole(path)


def test_recbole_rating_beyond_float32_is_an_error(tmp_path):
    path = write(tmp_path / "r.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t4\n1\t3\t1e300\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: rating 1e+300 is outside the scale")):
        read_recbole(path)  # stored as float32, it would be inf


def test_rechorus_time_must_be_finite(rechorus):
    write(rechorus / "test.csv", "user_id\titem_id\ttime\n1\t40\tinf\n")
    with pytest.raises(DataError, match=r"test.csv:2: time must be a finite number, got 'inf'"):
        read_rechorus(rechorus)


@pytest.mark.parametrize(("content", "message"), [
    ('{"1": [NaN]}', "not valid JSON (NaN is not allowed"),
    ('{"1": [true]}', "item '1': expected a list of attribute ids (strings or integers)"),
    ('{"1": [1.5]}', "item '1'"),
    ('{"": [1]}', "item ''"),
    ('{"1": [1e400]}', "beyond the range of a float"),
])
def test_item_attributes_json_refuses_odd_values(tmp_path, content, message):
    path = write(tmp_path / "a.json", content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_item_attributes_json(path)


def test_header_only_files_have_no_interactions(tmp_path, rechorus):
    with pytest.raises(DataError, match="no interactions found"):
        read_recbole(write(tmp_path / "e.inter", "user_id:token\titem_id:token\n"))
    for name in ("train.csv", "dev.csv", "test.csv"):
        write(rechorus / name, "user_id\titem_id\ttime\n")
    with pytest.raises(DataError, match="no interactions found"):
        read_rechorus(rechorus)


# ---------------------------------------------------------------- predefined split order


def test_predefined_split_warns_when_targets_are_older_than_training(rechorus, caplog):
    raw = read_rechorus(rechorus)
    with caplog.at_level(logging.WARNING, logger="seqrec.data.splits"):
        predefined_split(raw.interactions, raw.catalog, raw.valid_rows, raw.test_rows, "grocery")
    assert "not chronological" not in caplog.text  # the fixture's split is time-ordered (ties allowed)
    # user 1: dev row at 60 is older than its training row at 100; user 3: test row older than training
    write(rechorus / "dev.csv", "user_id\titem_id\ttime\n1\t20\t60\n2\t30\t400\n")
    write(rechorus / "test.csv", "user_id\titem_id\ttime\n1\t40\t500\n2\t40\t500\n3\t10\t5\n")
    raw = read_rechorus(rechorus)
    with caplog.at_level(logging.WARNING, logger="seqrec.data.splits"):
        predefined_split(raw.interactions, raw.catalog, raw.valid_rows, raw.test_rows, "grocery")
    assert "grocery: the predefined split is not chronological for 2 of 3 users" in caplog.text


def test_predefined_split_warns_when_test_is_older_than_valid(rechorus, caplog):
    write(rechorus / "test.csv", "user_id\titem_id\ttime\n1\t40\t500\n2\t40\t350\n3\t10\t20\n")
    raw = read_rechorus(rechorus)
    with caplog.at_level(logging.WARNING, logger="seqrec.data.splits"):
        predefined_split(raw.interactions, raw.catalog, raw.valid_rows, raw.test_rows, "grocery")
    assert "not chronological for 1 of 3 users" in caplog.text
