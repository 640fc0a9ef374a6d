"""Profile files: the {user_id: [floats]} format, alignment to internal users, bad files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.idmap import IdMap
from seqrec.distill.store import load_profile_table, read_profile_json, write_profile_json
from seqrec.errors import DataError, SeqrecError

USERS = IdMap(["u1", "u2", "u3"])


def test_round_trip_and_alignment_to_internal_ids(tmp_path: Path) -> None:
    path = write_profile_json(tmp_path / "p.json", {"u3": [1.0, 2.0], "u1": np.array([3.0, 4.0])})
    assert read_profile_json(path)["u3"].tolist() == [1.0, 2.0]
    table = load_profile_table([path], USERS)
    assert table.vectors.shape == (3, 1, 2)
    assert table.vectors[0, 0].tolist() == [3.0, 4.0] and table.vectors[2, 0].tolist() == [1.0, 2.0]
    assert table.present[:, 0].tolist() == [True, False, True]
    assert table.vectors[1].sum() == 0


def test_several_profiles_per_user(tmp_path: Path) -> None:
    a = write_profile_json(tmp_path / "a.json", {"u1": [1.0], "u2": [2.0]})
    b = write_profile_json(tmp_path / "b.json", {"u2": [5.0]})
    table = load_profile_table([a, b], USERS)
    assert table.vectors.shape == (3, 2, 1)
    assert table.present.tolist() == [[True, False], [True, True], [False, False]]
    assert table.has_profile.tolist() == [True, True, False]


def test_unknown_users_are_skipped_with_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_profile_json(tmp_path / "p.json", {"u1": [1.0], "nobody": [2.0], "ghost": [3.0]})
    with caplog.at_level(logging.WARNING):
        table = load_profile_table([path], USERS)
    assert "skipping 2 of 3 profiles" in caplog.text
    assert table.present[:, 0].tolist() == [True, False, False]


def test_existing_file_is_never_overwritten_silently(tmp_path: Path) -> None:
    path = write_profile_json(tmp_path / "p.json", {"u1": [1.0]})
    with pytest.raises(DataError, match="already exists"):
        write_profile_json(path, {"u1": [2.0]})
    write_profile_json(path, {"u1": [2.0]}, overwrite=True)
    assert read_profile_json(path)["u1"].tolist() == [2.0]


@pytest.mark.parametrize(("content", "message"), [
    ('{"u1": [1, 2], "u2": [3]}', "user 'u2' has 1 values"),
    ('{"u1": "text"}', "must map to a list of numbers"),
    ('[1, 2]', "expected a non-empty JSON object"),
    ('{"u1": [1,\n', ":2: not valid JSON"),
])
def test_malformed_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_profile_json(path)


def test_dimension_mismatch_is_an_error(tmp_path: Path) -> None:
    a = write_profile_json(tmp_path / "a.json", {"u1": [1.0, 2.0]})
    b = write_profile_json(tmp_path / "b.json", {"u1": [1.0]})
    with pytest.raises(DataError, match="dimensions do not match"):
        load_profile_table([a, b], USERS)
    with pytest.raises(DataError, match="distill.dim = 3"):
        load_profile_table([a], USERS, dim=3)


def test_a_file_of_another_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"x": [1.0]}))
    with pytest.raises(DataError, match="none of its 1 user ids is in the dataset"):
        load_profile_table([path], USERS)


@pytest.mark.parametrize(("content", "bad"), [
    ('{"u1": [1, 2],\n "u2": [true, 0.5]}', "u2"),
    ('{"u1": [1, 2],\n "u2": [NaN, 0.5]}', "u2"),
    ('{"u1": [Infinity, 2],\n "u2": [1, 0.5]}', "u1"),
    ('{"u1": [1, 2],\n "u2": [-1e400, 0.5]}', "u2"),
    ('{"u1": [1, 2],\n "u2": [1e39, 0.5]}', "u2"),  # finite, but infinite as float32
    ('{"u1": [1, 2],\n "u2": [' + "9" * 400 + ', 0.5]}', "u2"),
    ('{"u1": [1, 2],\n "u2": [null, 0.5]}', "u2"),
])
def test_values_must_be_finite_numbers(tmp_path: Path, content: str, bad: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    line = 1 if bad == "u1" else 2
    with pytest.raises(DataError, match=rf"p\.json: user '{bad}' must map to a list of numbers.*\(line {line}\)"):
        read_profile_json(path)


def test_bom_crlf_and_line_of_a_ragged_user(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'\xef\xbb\xbf{\r\n "u1": [1, 2],\r\n "u\\u00e9": [3, 4]\r\n}\r\n')
    assert {u: v.tolist() for u, v in read_profile_json(path).items()} == {"u1": [1.0, 2.0], "u\u00e9": [3.0, 4.0]}
    path.write_text('{\n "u1": [1, 2],\n\n "u3": [3]\n}')
    with pytest.raises(DataError, match=r"user 'u3' has 1 values, the first user has 2 \(line 4\)"):
        read_profile_json(path)


def test_not_utf8_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'{"u1": [1],\n "caf\xe9": [2]}')
    with pytest.raises(DataError, match=r"p\.json:2: not valid UTF-8"):
        read_profile_json(path)


def test_writing_nan_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SeqrecError, match="refusing to write NaN"):
        write_profile_json(tmp_path / "p.json", {"u1": [1.0, float("nan")]})
    assert not (tmp_path / "p.json").exists()
