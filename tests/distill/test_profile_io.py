"""Profile text files (JSONL): round trip, appending, resume sets, file:line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqrec.distill.profile_io import ProfileRow, append_profile_texts, read_profile_texts, written_users
from seqrec.errors import DataError


def test_round_trip_keeps_text_and_aspects(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "profiles.jsonl"
    rows = [ProfileRow("7", "needs", "Likes \"quiet\" films\n- Drama 40%"), ProfileRow("8", "needs", "Café fan"),
            ProfileRow("7", "patterns", "loyal")]
    assert append_profile_texts(path, rows[:2]) == 2
    assert append_profile_texts(path, rows[2:]) == 1
    assert append_profile_texts(path, []) == 0
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    assert read_profile_texts(path) == {"needs": {"7": rows[0].text, "8": "Café fan"}, "patterns": {"7": "loyal"}}
    assert written_users(path, "needs") == {"7", "8"} and written_users(path, "short") == set()
    assert written_users(tmp_path / "absent.jsonl", "short") == set()


def test_a_later_line_replaces_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    append_profile_texts(path, [ProfileRow("1", "short", "old"), ProfileRow("1", "short", "new")])
    assert read_profile_texts(path) == {"short": {"1": "new"}}


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ('["a", "b"]', "expected an object"),
    ('{"user": 1, "aspect": "short", "text": "x"}', "'user' must be a string"),
    ('{"user": "1", "aspect": "short"}', "'text' must be a string"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    append_profile_texts(path, [ProfileRow("1", "short", "ok")])
    with path.open("a") as f:
        f.write("\n" + line + "\n")  # an empty line (2) is allowed; the bad one is line 3
    with pytest.raises(DataError, match=f"{path}:3: .*{message}"):
        read_profile_texts(path)
    with pytest.raises(DataError, match=r"p\.jsonl:3"):
        written_users(path, "short")


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="seqrec profiles write"):
        read_profile_texts(tmp_path / "none.jsonl")


def test_bom_and_crlf_give_the_same_profiles(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    append_profile_texts(path, [ProfileRow("1", "short", "Café fan"), ProfileRow("2", "short", "two\nlines")])
    windows = tmp_path / "w.jsonl"
    windows.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_profile_texts(windows) == read_profile_texts(path) == {"short": {"1": "Café fan", "2": "two\nlines"}}


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"user": "1", "aspect": "short", "text": NaN}', "not valid JSON (NaN is not allowed"),
    (b'{"user": "1", "aspect": "short", "text": "caf\xe9"}', "not valid UTF-8"),
    (b'{"user": "1", "aspect": "short", "text": 1e999}', "beyond the range of a float"),
    (b"[" * 5000, "not valid JSON"),
])
def test_odd_lines_name_file_and_line(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"user": "1", "aspect": "short", "text": "ok"}\n' + raw + b"\n")
    with pytest.raises(DataError, match=rf"p\.jsonl:2: .*{re.escape(message)}"):
        read_profile_texts(path)
