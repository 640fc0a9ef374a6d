"""File-format readers on tiny hand-written files."""

from __future__ import annotations

import json
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
    with pytest.raises(DataError, match=re.escape(f"{bad}:3: invalid JSON")):
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
