"""External <-> internal id maps (items are 1..N with 0 = padding, users are 0..U-1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from seqrec.data.encoding import as_int_keys, encode_values, is_canonical_int, strictly_increasing
from seqrec.errors import DataError, UnknownIdError


class IdMap:
    """Bijection between external ids and contiguous internal ids starting at `offset`.

    External ids are held in one numpy array: int64 when every id is an integer (or an integer written the
    canonical way, e.g. "42" but not "042"), else strings. They read, compare and save as strings either way.
    """

    def __init__(self, external: Sequence[object] | np.ndarray, offset: int = 0) -> None:
        self.offset = offset
        self.values = _normalise(external)  # [K] int64 or str
        self._order: np.ndarray | None = None  # [K] positions in ascending value order (None: already sorted)
        self._strings: list[str] | None = None
        if not strictly_increasing(self.values):
            order = np.argsort(self.values, kind="stable")
            ordered = self.values[order]
            if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
                raise DataError("IdMap: external ids must be unique")
            self._order = order

    @classmethod
    def encode(cls, values: Any, offset: int = 0) -> tuple[IdMap, np.ndarray]:
        """Map raw ids (ints or strings; numpy, list or Arrow array) to internal ids; numeric ids keep numeric
        order, strings sort by code point.  Returns the map and the ids.  # [n] int64"""
        uniques, codes = encode_values(values)
        if offset:
            codes += offset
        return cls(uniques, offset), codes

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, external_id: object) -> bool:
        return bool(self.lookup(_one(external_id))[0] >= 0)

    @property
    def external(self) -> list[str]:
        """External ids as strings, in internal-id order (built on first use)."""
        if self._strings is None:
            self._strings = [str(v) for v in self.values.tolist()]
        return self._strings

    def to_internal(self, external_ids: Iterable[object], kind: str = "id") -> np.ndarray:
        """Internal ids for external ids; unknown ids raise an `UnknownIdError` (a `DataError`) naming them."""
        ids = list(external_ids)
        internal = self.lookup(_objects(ids))
        if (internal < 0).any():
            missing = [str(ids[k]) for k in np.flatnonzero(internal < 0)]
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise UnknownIdError(f"unknown {kind}(s): {shown} ({len(missing)} not in this dataset)", kind, missing)
        return internal

    def lookup(self, values: Any) -> np.ndarray:
        """Vectorised internal ids for raw values (matched as strings, like `str(value)`); -1 where unknown."""
        queries = np.asarray(values)
        if queries.ndim != 1:
            queries = queries.reshape(-1)
        if self.values.dtype.kind == "i":
            keys, valid = as_int_keys(queries)
        else:
            keys, valid = queries.astype(str), np.ones(len(queries), dtype=bool)
        out = np.full(len(queries), -1, dtype=np.int64)
        if not len(self.values) or not len(queries):
            return out
        ordered = self.values if self._order is None else self.values[self._order]
        pos = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
        hit = valid & (ordered[pos] == keys)
        found = pos[hit] if self._order is None else self._order[pos[hit]]
        out[hit] = found + self.offset
        return out

    def to_external(self, internal_ids: Iterable[int]) -> list[str]:
        """External ids (as strings) of internal ids."""
        index = np.fromiter((int(i) for i in internal_ids), dtype=np.int64) - self.offset
        return [str(v) for v in self.values[index].tolist()]

    def extended(self, values: Any) -> IdMap:
        """This map with the ids of `values` it lacks appended (first occurrence order); known ids keep theirs."""
        queries = np.asarray(values)
        unknown = queries[self.lookup(queries) < 0] if len(queries) else queries
        _, first = np.unique(unknown.astype(str), return_index=True)
        new = unknown[np.sort(first)]
        if not len(new):
            return self
        merged = np.concatenate([self.values.astype(str), new.astype(str)]) \
            if self.values.dtype.kind != new.dtype.kind else np.concatenate([self.values, new])
        return IdMap(merged, self.offset)

    def take(self, internal_ids: np.ndarray, offset: int | None = None) -> IdMap:
        """Map of the given internal ids (in that order), renumbered from `offset` (default: this map's)."""
        index = np.asarray(internal_ids, dtype=np.int64) - self.offset
        return IdMap(self.values[index], self.offset if offset is None else offset)

    def to_dict(self) -> dict[str, object]:
        return {"offset": self.offset, "external": self.external}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IdMap:
        return cls(list(data["external"]), int(data["offset"]))  # type: ignore[call-overload]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap) or self.offset != other.offset or len(self) != len(other):
            return False
        if self.values.dtype.kind == other.values.dtype.kind:
            return bool(np.array_equal(self.values, other.values))
        return self.external == other.external

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids, offset={self.offset}, dtype={self.values.dtype})"


def _normalise(external: Sequence[object] | np.ndarray) -> np.ndarray:
    """int64 array when every id is an integer or a canonical integer string, else a str array.  # [K]"""
    values = np.asarray(external) if not isinstance(external, np.ndarray) else external
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind == "b" or (values.dtype == object and any(isinstance(v, bool) for v in values)):
        return values.astype(str)
    strings = values.astype(str) if values.dtype.kind != "U" else values
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64) if values.dtype.kind != "U" else strings
    ints = is_canonical_int(strings)
    return strings if ints is None else ints


def _objects(ids: list[object]) -> np.ndarray:
    """A 1-d object array of arbitrary ids (np.asarray would coerce mixed ints and strings to strings)."""
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out


def _one(external_id: object) -> np.ndarray:
    return _objects([external_id])
