"""Item catalog: titles, multi-valued attributes, popularity counts and head/mid/tail labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqrec.errors import DataError, suggest

HEAD, MID, TAIL = 1, 0, -1


@dataclass
class ItemCatalog:
    """Per-item metadata indexed by internal item id (index 0 is padding and stays empty)."""

    num_items: int
    titles: list[str] | None = None  # [N+1], titles[0] == ""
    attributes: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # name -> [N+1] value tuples

    def title(self, item: int) -> str:
        return self.titles[item] if self.titles else ""

    def attribute_values(self, name: str) -> list[str]:
        """Sorted distinct values of a multi-valued attribute (e.g. all genres)."""
        return sorted({v for vals in self._attribute(name) for v in vals})

    def has_value(self, value: str, name: str | None = None) -> np.ndarray:
        """Boolean mask [N+1] of items carrying `value` (searched in `name`, or in every attribute)."""
        names = [name] if name else list(self.attributes)
        mask = np.zeros(self.num_items + 1, dtype=bool)
        for n in names:
            mask |= np.array([value in vals for vals in self._attribute(n)], dtype=bool)
        if not mask.any():
            known = {v for n in names for v in self.attribute_values(n)}
            raise DataError(f"no item has attribute value {value!r}; available: {suggest(known) or 'none'}")
        return mask

    def _attribute(self, name: str) -> list[tuple[str, ...]]:
        if name not in self.attributes:
            raise DataError(f"unknown item attribute {name!r}; available: {suggest(self.attributes) or 'none'}")
        return self.attributes[name]

    def to_dict(self) -> dict[str, object]:
        return {
            "num_items": self.num_items,
            "titles": self.titles,
            "attributes": {k: [list(v) for v in vals] for k, vals in self.attributes.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ItemCatalog:
        attrs = data.get("attributes") or {}
        return cls(
            num_items=int(data["num_items"]),  # type: ignore[arg-type]
            titles=data.get("titles"),  # type: ignore[arg-type]
            attributes={k: [tuple(v) for v in vals] for k, vals in attrs.items()},  # type: ignore[union-attr]
        )

    @classmethod
    def empty(cls, num_items: int) -> ItemCatalog:
        return cls(num_items=num_items)


def item_counts(items: np.ndarray, num_items: int) -> np.ndarray:
    """Interaction count per internal item id.  # [N+1], counts[0] == 0"""
    counts = np.bincount(items, minlength=num_items + 1)
    counts[0] = 0
    return counts


def popularity_labels(counts: np.ndarray, head_share: float = 0.2, tail_share: float = 0.8) -> np.ndarray:
    """Head (+1) / mid (0) / tail (-1) by cumulative interaction share, most popular first.

    An item is head while the cumulative share up to and including it is <= `head_share`, tail once it is
    >= `tail_share` (PopSteer's rule). Index 0 (padding) is labelled mid.  # [N+1] int8
    """
    if not 0.0 <= head_share < tail_share <= 1.0:
        raise DataError(f"need 0 <= head_share < tail_share <= 1, got {head_share}, {tail_share}")
    real = counts[1:].astype(np.float64)
    order = np.argsort(-real, kind="stable")
    share = np.cumsum(real[order]) / max(real.sum(), 1.0)
    sorted_labels = np.where(share <= head_share, HEAD, np.where(share >= tail_share, TAIL, MID))
    labels = np.zeros(len(counts), dtype=np.int8)
    labels[1 + order] = sorted_labels
    return labels
