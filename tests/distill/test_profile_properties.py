"""Property tests: any bytes, or JSON with odd values, give the profile readers valid data or a DataError.

Valid means: profile texts are strings keyed by strings; profile vectors are finite float32 of one length.
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

from seqrec.distill.profile_io import read_profile_texts
from seqrec.distill.store import read_profile_json
from seqrec.errors import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD = st.one_of(st.none(), st.booleans(), st.floats(), st.integers(-10**30, 10**400), st.text(max_size=4),
                st.lists(st.integers(), max_size=2))
KEYS = st.sampled_from(["u1", "u2", "é", "", "a\"b"])
TEXT_ROW = st.fixed_dictionaries({"user": KEYS | ODD, "aspect": st.sampled_from(["short", "long"]) | ODD,
                                  "text": st.text(max_size=8) | ODD})
CLEAN_ROW = st.fixed_dictionaries({"user": KEYS, "aspect": st.sampled_from(["short", "long"]),
                                   "text": st.text(max_size=8)})
NUMBERS = st.one_of(st.floats(-10.0, 10.0), st.integers(-5, 5))
VECTOR = st.one_of(st.lists(NUMBERS, min_size=2, max_size=2), st.lists(NUMBERS | ODD, max_size=3), ODD)


def read(path: Path, raw: bytes, reader: Callable[[Path], Any]) -> Any:
    path.write_bytes(raw)
    try:
        result = reader(path)
    except DataError:
        event("DataError")
        return None
    event("valid")
    return result


@FAST
@given(st.one_of(
    st.binary(max_size=100),
    st.lists(st.one_of(CLEAN_ROW, TEXT_ROW), max_size=4).map(lambda rows: "".join(json.dumps(r) + "\n" for r in rows)
                                                              .encode()),
    st.lists(CLEAN_ROW, min_size=1, max_size=4).map(
        lambda rows: b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows).encode()),
))
def test_profile_texts(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        texts = read(Path(tmp) / "p.jsonl", raw, read_profile_texts)
    if texts is not None:
        assert all(isinstance(a, str) and isinstance(u, str) and isinstance(t, str)
                   for a, by_user in texts.items() for u, t in by_user.items())


@FAST
@given(st.one_of(
    st.binary(max_size=100),
    st.dictionaries(KEYS, VECTOR, max_size=3).map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.dictionaries(KEYS, st.lists(NUMBERS, min_size=3, max_size=3), min_size=1, max_size=3).map(
        lambda d: b"\xef\xbb\xbf" + json.dumps(d, indent=1).replace("\n", "\r\n").encode()),
    ODD.map(lambda v: json.dumps(v).encode()),
))
def test_profile_vectors(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vectors = read(Path(tmp) / "p.json", raw, read_profile_json)
    if vectors is not None:
        assert vectors and len({len(v) for v in vectors.values()}) == 1
        assert all(v.dtype == np.float32 and len(v) > 0 and np.isfinite(v).all() for v in vectors.values())
