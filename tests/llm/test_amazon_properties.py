"""Property test: any bytes, or JSON lines with odd values, give the Amazon-2023 reader valid rows or a DataError.

Valid rows have string ids, finite labels and history ratings on the 1–5 scale and integer timestamps.
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqrec.errors import DataError
from seqrec.llm.amazon import read_amazon2023

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD = st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-10**30, 10**400), st.text(max_size=4),
                st.lists(st.integers(), max_size=2), st.sampled_from(["5", "nan", "inf", "-Infinity", "1e400", "4.5"]))
IDS = st.one_of(st.sampled_from(["u1", "u2", "A1", ""]), st.integers(0, 3), ODD)
RATINGS = st.one_of(st.integers(1, 5), st.integers(1, 5), st.sampled_from([0.5, 3.5, 99, -1]), ODD)
TEXTS = st.one_of(st.sampled_from(["Heat, Crime", "Up, Close, Drama|Romance", ""]), st.text(max_size=6))
HISTORY_RATINGS = st.one_of(st.sampled_from(["1", "4.0", "5", "99", "nan", "inf", "x", ""]), st.text(max_size=3))
HISTORY = st.one_of(
    st.lists(st.tuples(TEXTS, HISTORY_RATINGS).map(", ".join), max_size=3).map("\n".join),
    st.lists(st.tuples(TEXTS, st.integers(1, 5).map(str)).map(", ".join), min_size=1, max_size=3).map("\n".join),
    ODD)


CLEAN_ROW = st.fixed_dictionaries({
    "user_id": st.sampled_from(["u1", "u2"]), "parent_asin": st.sampled_from(["A1", "A2"]),
    "label": st.integers(1, 5), "target": TEXTS, "timestamp": st.integers(0, 100),
    "history": st.lists(st.tuples(TEXTS, st.integers(1, 5).map(str)).map(", ".join), max_size=3).map("\n".join)})
ODD_VALUES = {"user_id": IDS, "parent_asin": IDS, "label": RATINGS, "target": TEXTS | ODD, "history": HISTORY,
              "timestamp": ODD}


@st.composite
def row(draw: st.DrawFn) -> dict[str, Any]:
    """A clean row with one key missing or holding an odd value."""
    values = draw(CLEAN_ROW)
    key = draw(st.sampled_from(sorted(values)))
    if draw(st.booleans()):
        del values[key]
    else:
        values[key] = draw(ODD_VALUES[key])
    return values


@st.composite
def jsonl(draw: st.DrawFn, rows: st.SearchStrategy[dict[str, Any]], clean: bool = False) -> bytes:
    """JSON lines of `rows` (LF or CRLF, maybe a BOM); unless `clean`, sometimes arbitrary bytes instead."""
    if not clean and draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=100))
    text = "".join(json.dumps(r) + draw(st.sampled_from(["\n", "\r\n"])) for r in draw(st.lists(rows, max_size=3)))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode()


HISTORY_ROW = st.fixed_dictionaries({"user_id": IDS, "history": HISTORY, "history_asins": st.lists(IDS, max_size=3),
                                     "history_ratings": st.lists(RATINGS, max_size=3)})
CLEAN_HISTORY_ROW = st.fixed_dictionaries({
    "user_id": st.sampled_from(["u1", "u2"]), "history": CLEAN_ROW.map(lambda r: r["history"]),
    "history_asins": st.lists(IDS, max_size=3), "history_ratings": st.lists(RATINGS, max_size=3)})
FEATURE_ROW = st.fixed_dictionaries({"user_id": IDS, "user_profile_prompt": TEXTS | ODD})


def check(data: Any) -> None:
    for r in data.train + data.valid + data.test:
        assert isinstance(r.user, str) and isinstance(r.item, str) and isinstance(r.timestamp, int)
        assert math.isfinite(r.label) and 1 <= r.label <= 5
        assert all(math.isfinite(h.rating) and 1 <= h.rating <= 5 and isinstance(h.item, str) for h in r.history)
    assert all(isinstance(v, str) for v in data.shipped_sketches.values())


@FAST
@given(st.data())
def test_any_folder_gives_rows_or_a_data_error(data: st.DataObject) -> None:
    clean = data.draw(st.booleans())  # clean files are mostly valid, the others mostly not
    rows, history = (CLEAN_ROW, CLEAN_HISTORY_ROW) if clean else (CLEAN_ROW | row(), HISTORY_ROW)
    files = {f"{split}.jsonl": data.draw(jsonl(rows, clean)) for split in ("train", "valid", "test")}
    files["history.jsonl.gz"] = data.draw(st.none() | jsonl(history, clean).map(gzip.compress))
    files["user_feature.jsonl"] = data.draw(st.none() | jsonl(FEATURE_ROW, clean))
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in files.items():
            if raw is not None:
                (Path(tmp) / name).write_bytes(raw)
        try:
            result = read_amazon2023(tmp)
        except DataError:
            event("DataError")
            return
    event("valid" if result.test else "valid, no test rows")
    check(result)
