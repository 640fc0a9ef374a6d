"""IdMap: numpy-backed storage with the meaning of the original string-list map (ids compare as `str(id)`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqrec.data.idmap import IdMap
from seqrec.errors import DataError


class ListIdMap:
    """The reference: external ids kept as a list of strings and a dict (the original implementation)."""

    def __init__(self, external: list, offset: int = 0) -> None:
        self.external = [str(e) for e in external]
        self.offset = offset
        self.index = {e: i + offset for i, e in enumerate(self.external)}

    @classmethod
    def encode(cls, values: np.ndarray, offset: int = 0) -> tuple[ListIdMap, np.ndarray]:
        uniques, codes = np.unique(np.asarray(values), return_inverse=True)
        return cls([str(u) for u in uniques], offset), codes.astype(np.int64) + offset

    def lookup(self, values: object) -> np.ndarray:
        return np.array([self.index.get(str(v), -1) for v in values], dtype=np.int64)


RAW = [
    np.array([30, 7, 7, 1000, -2, 30]),  # integers: numeric order
    np.array(["b", "a", "10", "9", "b", "é", "A"]),  # strings: code-point order
    np.array(["7", "007", "+7", "x"]),  # integers written in other ways stay strings
    np.array([2.5, 1.0, 2.5]),  # floats read as str(float)
    np.array([True, False, True]),
    np.array(["u1", "u2", "u1"] * 700),  # large enough for the Arrow encoder
    np.array([10**12 + 3, 5, 10**12 + 3] * 400),  # sparse integers
]
QUERIES = np.array([7, "7", "007", "30", 30, "a", "b", "10", 10, "nope", 1.0, "1.0", 2.5, "2.5", True, "True",
                    "u2", -2, "-2", 10**12 + 3, "é", None], dtype=object)


@pytest.mark.parametrize("raw", RAW, ids=lambda r: str(r.dtype))
@pytest.mark.parametrize("offset", [0, 1])
def test_encode_and_lookup_match_the_string_list_map(raw: np.ndarray, offset: int) -> None:
    new, codes = IdMap.encode(raw, offset)
    old, old_codes = ListIdMap.encode(raw, offset)
    assert new.external == old.external
    np.testing.assert_array_equal(codes, old_codes)
    assert new == IdMap(old.external, offset) and len(new) == len(old.external)
    np.testing.assert_array_equal(new.lookup(QUERIES), old.lookup(QUERIES))
    np.testing.assert_array_equal(new.lookup(raw), old.lookup(raw))
    np.testing.assert_array_equal(new.lookup(np.array(old.external)), np.arange(len(old.external)) + offset)
    assert [q in new for q in QUERIES] == [str(q) in old.index for q in QUERIES]
    internal = np.arange(len(new)) + offset
    assert new.to_external(internal[::-1]) == old.external[::-1]


def test_mixed_int_and_str_ids_in_one_map() -> None:
    ids = [3, "x", "04", 10]
    new, old = IdMap(ids, offset=1), ListIdMap(ids, offset=1)
    assert new.external == ["3", "x", "04", "10"]
    assert new.values.dtype.kind == "U"  # not every id is an integer
    np.testing.assert_array_equal(new.lookup(QUERIES), old.lookup(QUERIES))
    assert list(new.to_internal([10, "3", "04"])) == [4, 1, 3]


def test_integer_ids_are_stored_as_integers_and_read_as_strings() -> None:
    ids = IdMap(["5", "3", "12"], offset=1)
    assert ids.values.dtype == np.int64
    assert ids.external == ["5", "3", "12"] and ids.to_external([1, 3]) == ["5", "12"]
    assert ids == IdMap([5, 3, 12], offset=1) != IdMap([5, 3, 12], offset=0)
    assert ids != IdMap(["5", "3", "13"], offset=1)
    assert list(ids.lookup(np.array([12, 5, 4]))) == [3, 1, -1]


def test_round_trip_through_to_dict_and_json() -> None:
    for ids in (IdMap([9, 2, 40]), IdMap(["u9", "u2"], offset=1), IdMap([])):
        saved = json.loads(json.dumps(ids.to_dict()))
        assert saved == {"offset": ids.offset, "external": ids.external}
        assert all(isinstance(e, str) for e in saved["external"])
        back = IdMap.from_dict(saved)
        assert back == ids and back.external == ids.external


def test_maps_saved_by_the_list_implementation_still_load() -> None:
    saved = {"offset": 1, "external": ["10", "9", "100", "a b"]}  # written by the string-list map
    ids = IdMap.from_dict(saved)
    assert ids.to_dict() == saved
    assert list(ids.to_internal(["9", "a b", 100])) == [2, 4, 3]


def test_unknown_ids() -> None:
    ids = IdMap([1, 2, 3], offset=1)
    assert list(ids.lookup(np.array([4, 0, 2, -1]))) == [-1, -1, 2, -1]
    assert list(ids.lookup(np.array(["2", "02", "x", ""]))) == [2, -1, -1, -1]
    assert 7 not in ids and "3" in ids
    with pytest.raises(DataError, match=r"unknown user id\(s\): 7, x \(2 not"):
        ids.to_internal([1, 7, "x"], kind="user id")
    assert list(IdMap([]).lookup(np.array([1, 2]))) == [-1, -1]


def test_duplicate_ids_are_an_error() -> None:
    with pytest.raises(DataError, match="unique"):
        IdMap(["a", "b", "a"])
    with pytest.raises(DataError, match="unique"):
        IdMap([3, 1, 3])


def test_arrow_input_encodes_like_numpy() -> None:
    for raw in (["b", "a", "c", "a"] * 300, [5, 1, 5, 9] * 300):
        arrow_map, arrow_codes = IdMap.encode(pa.chunked_array([pa.array(raw[:500]), pa.array(raw[500:])]), 1)
        numpy_map, numpy_codes = IdMap.encode(np.array(raw), 1)
        assert arrow_map == numpy_map
        np.testing.assert_array_equal(arrow_codes, numpy_codes)
    with pytest.raises(DataError, match="null"):
        IdMap.encode(pa.array(["a", None]))


def test_take_renumbers_the_chosen_ids() -> None:
    ids = IdMap(["d", "b", "c", "a"], offset=1)
    sub = ids.take(np.array([2, 4]))
    assert sub.external == ["b", "a"] and sub.offset == 1
    assert list(sub.lookup(np.array(["a", "b", "d"]))) == [2, 1, -1]
    assert ids.take(np.array([1, 3]), offset=0) == IdMap(["d", "c"])


@given(st.lists(st.one_of(st.integers(-5, 50), st.sampled_from(["a", "b", "07", "x y"])), unique_by=str, min_size=1),
       st.lists(st.one_of(st.integers(-5, 60), st.sampled_from(["a", "c", "07", "z"]))))
def test_extended_keeps_every_id_and_appends_the_unknown_in_first_occurrence_order(old: list, more: list) -> None:
    base = IdMap(old, offset=1)
    grown = base.extended(np.array(more, dtype=object))
    known = {str(v) for v in old}
    appended = list(dict.fromkeys(str(v) for v in more if str(v) not in known))
    assert grown.external == base.external + appended
    np.testing.assert_array_equal(grown.lookup(np.array(old, dtype=object)), base.lookup(np.array(old, dtype=object)))
    assert grown.offset == 1


def test_extended_with_nothing_new_is_the_same_map() -> None:
    base = IdMap([3, 1, 2], offset=1)
    assert base.extended([1, "2", 3]) is base
