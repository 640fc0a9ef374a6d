"""External <-> internal id maps (items are 1..N with 0 = padding, users are 0..U-1)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from seqrec.errors import DataError


class IdMap:
    """Bijection between external ids (strings) and contiguous internal ids starting at `offset`."""

    def __init__(self, external: Sequence[str], offset: int = 0) -> None:
        self.external: list[str] = [str(e) for e in external]
        self.offset = offset
        self._index = {e: i + offset for i, e in enumerate(self.external)}
        if len(self._index) != len(self.external):
            raise DataError("IdMap: external ids must be unique")

    @classmethod
    def encode(cls, values: np.ndarray, offset: int = 0) -> tuple[IdMap, np.ndarray]:
        """Map raw ids (ints or strings) to internal ids; numeric ids keep numeric order."""
        uniques, codes = np.unique(np.asarray(values), return_inverse=True)
        return cls([str(u) for u in uniques], offset), codes.astype(np.int64) + offset

    def __len__(self) -> int:
        return len(self.external)

    def __contains__(self, external_id: object) -> bool:
        return str(external_id) in self._index

    def to_internal(self, external_ids: Iterable[object], kind: str = "id") -> np.ndarray:
        """Internal ids for external ids; unknown ids raise a `DataError` naming them."""
        ids = [str(e) for e in external_ids]
        missing = [e for e in ids if e not in self._index]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise DataError(f"unknown {kind}(s): {shown} ({len(missing)} not in this dataset)")
        return np.array([self._index[e] for e in ids], dtype=np.int64)

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Vectorised internal ids for raw values; -1 where unknown."""
        return np.array([self._index.get(str(v), -1) for v in values], dtype=np.int64)

    def to_external(self, internal_ids: Iterable[int]) -> list[str]:
        return [self.external[int(i) - self.offset] for i in internal_ids]

    def to_dict(self) -> dict[str, object]:
        return {"offset": self.offset, "external": self.external}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IdMap:
        return cls(list(data["external"]), int(data["offset"]))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and (self.offset, self.external) == (other.offset, other.external)
