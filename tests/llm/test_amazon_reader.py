"""Amazon-2023 SIREN folder reader: history parsing, item ids, user subsets, errors that name file:line and key."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from seqrec.errors import ConfigError, DataError
from seqrec.llm.amazon import parse_history, read_amazon2023

REAL_ROOT = Path(os.environ.get("SEQREC_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
MOVIES = REAL_ROOT / "amazon2023-movies-tv"

A, B, C, D, E = (("Up, Close, and Personal, Drama|Romance", "A1"), ("Alien, Sci-Fi|Horror", "A2"),
                 ("Heat, Crime", "A3"), ("Big, Comedy|Family", "A4"), ("Jaws, Thriller", "A5"))


def history(*entries: tuple[tuple[str, str], float], trailing: str = "") -> str:
    return "\n".join(f"{text}, {rating:g}" for (text, _), rating in entries) + trailing


def target(split: str, user: str, item: tuple[str, str], label: float, hist: str, ts: int = 0) -> dict:
    return {"user_id": user, "parent_asin": item[1], "timestamp": ts, "label": label, "target": item[0],
            "history": hist}


def write_jsonl(path: Path, rows: list[dict], gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def write_folder(root: Path) -> Path:
    """u1: A5 B2 C4, then train D3, valid E5, test C4; u0: A4 B1, valid E1, test D2 (its asin list is short)."""
    root.mkdir()
    u1 = [(A, 5.0), (B, 2.0), (C, 4.0)]
    write_jsonl(root / "train.jsonl.gz", [target("train", "u1", D, 3.0, history(*u1), ts=4)], gz=True)
    full = history(*u1, (D, 3.0), trailing="\n")  # valid/test histories end with a newline, like the real files
    write_jsonl(root / "valid.jsonl.gz", [target("valid", "u1", E, 5.0, full, ts=5),
                                          target("valid", "u0", E, 1.0, history((A, 4.0), (B, 1.0)), ts=3)], gz=True)
    write_jsonl(root / "test.jsonl", [target("test", "u0", D, 2.0, history((A, 4.0), (B, 1.0)), ts=4),
                                      target("test", "u1", C, 4.0, full, ts=6)])
    write_jsonl(root / "history.jsonl.gz", [
        {"user_id": "u1", "history": history(*u1, (D, 3.0)), "history_asins": ["A1", "A2", "A3", "A4"],
         "history_ratings": [5, 2, 4, 3]},
        {"user_id": "u0", "history": history((A, 4.0), (B, 1.0)), "history_asins": ["A1"],  # one asin short
         "history_ratings": [4, 1]},
    ], gz=True)
    write_jsonl(root / "user_feature.jsonl", [{"user_id": "u1", "user_profile_prompt": "likes drama"},
                                              {"user_id": "u0", "user_profile_prompt": ""}])
    return root


def test_parse_history_splits_on_the_last_comma() -> None:
    parsed = parse_history("Up, Close, and Personal, Drama|Romance, 4.0\n\nHeat, Crime, 3\n", "f:1")
    assert parsed == [("Up, Close, and Personal, Drama|Romance", 4.0), ("Heat, Crime", 3.0)]


def test_parse_history_bad_line_names_the_place() -> None:
    with pytest.raises(DataError, match=r"f:7: history line 2 .*<rating>"):
        parse_history("Heat, Crime, 3\nno rating here", "f:7")


def test_reader_rows_ids_and_histories(tmp_path: Path) -> None:
    data = read_amazon2023(write_folder(tmp_path / "movies"))
    assert (len(data.train), len(data.valid), len(data.test)) == (1, 2, 2)
    assert [r.sample_id for r in data.valid] == ["valid:0", "valid:1"]
    assert [r.sample_id for r in data.test] == ["test:0", "test:1"]
    train = data.train[0]
    assert (train.user, train.item, train.label, train.target, train.timestamp) == ("u1", "A4", 3.0, D[0], 4)
    assert [(h.text, h.rating, h.item) for h in train.history] == [(A[0], 5.0, "A1"), (B[0], 2.0, "A2"),
                                                                   (C[0], 4.0, "A3")]
    valid = {r.user: r for r in data.valid}
    test = {r.user: r for r in data.test}
    assert valid["u1"].history == test["u1"].history and len(valid["u1"].history) == 4
    assert [h.item for h in valid["u1"].history] == ["A1", "A2", "A3", "A4"]
    assert [h.item for h in valid["u0"].history] == ["", ""]  # asin count disagrees: no ids, texts kept
    assert [h.text for h in valid["u0"].history] == [A[0], B[0]]
    assert data.shipped_sketches == {"u1": "likes drama", "u0": ""}
    assert data.long_histories["u1"] == valid["u1"].history
    assert set(data.items()) == {"A1", "A2", "A3", "A4", "A5", A[0], B[0]}


def test_reader_limit_users_keeps_the_first_users_by_id(tmp_path: Path) -> None:
    data = read_amazon2023(write_folder(tmp_path / "movies"), limit_users=1)
    assert {r.user for r in data.train + data.valid + data.test} == {"u0"}
    assert [r.sample_id for r in data.valid] == ["valid:1"]  # ids of the full files
    assert data.train == [] and set(data.shipped_sketches) == {"u0"}
    with pytest.raises(ConfigError, match="limit_users"):
        read_amazon2023(tmp_path / "movies", limit_users=0)


def test_reader_optional_files(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    (root / "history.jsonl.gz").unlink()
    (root / "user_feature.jsonl").unlink()
    data = read_amazon2023(root)
    assert all(h.item == "" for r in data.train for h in r.history)
    assert data.shipped_sketches == {} and data.long_histories == {}


def test_reader_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found"):
        read_amazon2023(tmp_path / "nope")
    root = write_folder(tmp_path / "movies")
    (root / "test.jsonl").unlink()
    with pytest.raises(DataError, match=r"test\.jsonl\.gz not found"):
        read_amazon2023(root)


def test_reader_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    with (root / "test.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"test\.jsonl:3: not valid JSON"):
        read_amazon2023(root)


def test_reader_missing_key_names_file_line_and_key(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    row = target("test", "u2", A, 4.0, history((B, 3.0)))
    del row["label"]
    write_jsonl(root / "test.jsonl", [row])
    with pytest.raises(DataError, match=r"test\.jsonl:1: missing key 'label'"):
        read_amazon2023(root)


def test_reader_bad_label_and_bad_gzip(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    write_jsonl(root / "test.jsonl", [target("test", "u2", A, "five", history((B, 3.0)))])  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"test\.jsonl:1: key 'label' must be a finite number"):
        read_amazon2023(root)
    (root / "train.jsonl.gz").write_text("plain text, not gzip")
    with pytest.raises(DataError, match=r"cannot read .*train\.jsonl\.gz"):
        read_amazon2023(root)


@pytest.mark.realdata
@pytest.mark.skipif(not MOVIES.is_dir(), reason=f"{MOVIES} not found (set SEQREC_DATA to run this check)")
def test_real_movies_subset() -> None:
    data = read_amazon2023(MOVIES, limit_users=50)
    users = {r.user for r in data.valid}
    assert len(data.valid) == len(data.test) == len(users) == 50
    assert users == {r.user for r in data.test} and {r.user for r in data.train} <= users
    test = {r.user: r for r in data.test}
    assert all(v.history == test[v.user].history for v in data.valid)
    # n_train(u) = n_u − 5, with n_u = |valid history| + 2
    assert len(data.train) == sum(len(v.history) + 2 - 5 for v in data.valid)
    assert min(len(r.history) for r in data.train) == 3
    assert all(h.item for r in data.train + data.valid for h in r.history)
    ids = [r.sample_id for r in data.train + data.valid + data.test]
    assert len(set(ids)) == len(ids)
    assert set(data.shipped_sketches) == users and data.scale == (1.0, 5.0)


def rewrite(path: Path, transform) -> None:
    """Apply `transform` to the file's (gunzipped) bytes and write it back in the same compression."""
    gz = path.suffix == ".gz"
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    out = transform(raw)
    path.write_bytes(gzip.compress(out) if gz else out)


def test_bom_and_crlf_give_the_same_rows(tmp_path: Path) -> None:
    plain = read_amazon2023(write_folder(tmp_path / "movies"))
    root = write_folder(tmp_path / "windows")
    for path in root.iterdir():
        rewrite(path, lambda raw: b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    windows = read_amazon2023(root)
    assert (windows.train, windows.valid, windows.test) == (plain.train, plain.valid, plain.test)
    assert windows.shipped_sketches == plain.shipped_sketches and windows.long_histories == plain.long_histories


@pytest.mark.parametrize(("label", "message"), [
    ("99", "key 'label' is 99, outside the rating scale 1–5"),
    ("0", "key 'label' is 0, outside the rating scale 1–5"),
    ('"99"', "key 'label' is '99', outside the rating scale"),
    ("NaN", "not valid JSON (NaN is not allowed in JSON"),
    ("-Infinity", "not valid JSON (-Infinity is not allowed"),
    ("1e400", "not valid JSON (1e400 is beyond the range of a float)"),
    ("1" + "0" * 400, "key 'label' must be a finite number"),
    ('"nan"', "key 'label' must be a finite number (found 'nan')"),
    ("true", "key 'label' must be a finite number (found True)"),
    ("null", "key 'label' must be a finite number (found None)"),
])
def test_label_must_be_a_finite_star_rating(tmp_path: Path, label: str, message: str) -> None:
    root = write_folder(tmp_path / "movies")
    line = json.dumps(target("test", "u2", A, 4.0, history((B, 3.0)))).replace('"label": 4.0', f'"label": {label}')
    (root / "test.jsonl").write_text(line + "\n")
    with pytest.raises(DataError) as err:
        read_amazon2023(root)
    assert f"test.jsonl:1: {message}" in str(err.value)


@pytest.mark.parametrize("stamp", ['"inf"', '"NaN"', "Infinity", "true", '"soon"'])
def test_timestamp_must_be_finite(tmp_path: Path, stamp: str) -> None:
    root = write_folder(tmp_path / "movies")
    line = json.dumps(target("test", "u2", A, 4.0, history((B, 3.0)), ts=7)).replace('"timestamp": 7',
                                                                                       f'"timestamp": {stamp}')
    (root / "test.jsonl").write_text(line + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:1: "):
        read_amazon2023(root)


@pytest.mark.parametrize(("rating", "message"), [
    ("99", "history line 2 has rating 99, outside the rating scale 1–5"),
    ("nan", "history line 2 'Alien, Sci-Fi|Horror, nan' is not '<title>, <categories>, <rating>'"),
    ("inf", "history line 2 'Alien, Sci-Fi|Horror, inf' is not '<title>, <categories>, <rating>' with a finite"),
])
def test_history_ratings_must_be_finite_stars(tmp_path: Path, rating: str, message: str) -> None:
    root = write_folder(tmp_path / "movies")
    hist = f"{A[0]}, 4\n{B[0]}, {rating}"
    write_jsonl(root / "test.jsonl", [target("test", "u2", C, 4.0, hist)])
    with pytest.raises(DataError) as err:
        read_amazon2023(root)
    assert f"test.jsonl:1: {message}" in str(err.value)


@pytest.mark.parametrize("user", [["u1"], True, None, 1.5, {"id": 1}])
def test_ids_must_be_strings_or_integers(tmp_path: Path, user: object) -> None:
    root = write_folder(tmp_path / "movies")
    write_jsonl(root / "test.jsonl", [target("test", "u2", C, 4.0, history((B, 3.0))), {
        **target("test", "u2", C, 4.0, history((B, 3.0))), "user_id": user}])
    with pytest.raises(DataError, match=r"test\.jsonl:2: key 'user_id' must be a string or integer id"):
        read_amazon2023(root)


def test_integer_ids_are_read_as_strings(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    write_jsonl(root / "test.jsonl", [{**target("test", "u2", C, 4.0, history((B, 3.0))), "user_id": 7}])
    assert {r.user for r in read_amazon2023(root).test} == {"7"}


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    rewrite(root / "test.jsonl", lambda raw: raw + b'{"user_id": "\xff"}\n')
    with pytest.raises(DataError, match=r"test\.jsonl:3: not valid UTF-8"):
        read_amazon2023(root)


def test_history_asins_that_are_not_ids_give_no_ids(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "movies")
    rows = [json.loads(line) for line in gzip.decompress((root / "history.jsonl.gz").read_bytes()).splitlines()]
    rows[0]["history_asins"] = [None, "A2", "A3", "A4"]
    write_jsonl(root / "history.jsonl.gz", rows, gz=True)
    data = read_amazon2023(root)
    assert [h.item for h in data.long_histories["u1"]] == ["", "", "", ""]  # not "None"


@pytest.mark.parametrize("bad", [10**400, True, "x", None])
def test_history_ratings_that_are_not_numbers_give_no_ids(tmp_path: Path, bad: object) -> None:
    root = write_folder(tmp_path / "movies")
    rows = [json.loads(line) for line in gzip.decompress((root / "history.jsonl.gz").read_bytes()).splitlines()]
    rows[0]["history_ratings"] = [5, 2, 4, bad]  # found by hypothesis: 10**400 crashed float()
    write_jsonl(root / "history.jsonl.gz", rows, gz=True)
    assert [h.item for h in read_amazon2023(root).long_histories["u1"]] == ["", "", "", ""]
