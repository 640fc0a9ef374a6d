"""The row filters of `DataConfig` before k-core: `min_rating`, then the duplicate policy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqrec.data.catalog import ItemCatalog
from seqrec.data.config import DataConfig
from seqrec.data.interactions import Interactions
from seqrec.data.readers import RawDataset
from seqrec.errors import DataError


@dataclass
class Filtered:
    """Rows read and rows each filter removed, to explain an empty result."""

    rows: int
    removed: dict[str, int] = field(default_factory=dict)  # filter -> rows removed

    def describe(self) -> str:
        steps = ", ".join(f"{name} removed {n}" for name, n in self.removed.items())
        return f"{self.rows} rows read" + (f"; {steps}" if steps else "")


def apply_filters(raw: RawDataset, cfg: DataConfig, where: str) -> tuple[RawDataset, Filtered]:
    """Keep rows with rating >= `cfg.min_rating`, then apply the duplicate policy; say what each removed."""
    inter = raw.interactions
    report = Filtered(len(inter))
    keep = np.ones(len(inter), dtype=bool)
    if cfg.min_rating is not None:
        if inter.ratings is None:
            raise DataError(f"{where}: data.min_rating needs ratings, and this data has no rating column; set "
                            "data.columns.rating or remove data.min_rating")
        keep &= inter.ratings >= cfg.min_rating
        report.removed["min_rating"] = int((~keep).sum())
    if cfg.duplicates != "keep":
        before = int(keep.sum())
        keep &= _unique_pairs(inter, keep, last=cfg.duplicates == "last")
        report.removed["duplicates"] = before - int(keep.sum())
    if not keep.any():
        raise DataError(f"{where}: no interactions left after filtering ({report.describe()}); relax "
                        f"data.min_rating or data.duplicates")
    if keep.all():
        return raw, report
    return _subset(raw, keep), report


def _unique_pairs(inter: Interactions, rows: np.ndarray, last: bool) -> np.ndarray:
    """Mask of the first (or last) of `rows` for each (user, item) pair; rows are in time order per user."""
    index = np.flatnonzero(rows)
    if last:
        index = index[::-1]
    pairs = inter.users[index] * (inter.num_items + 1) + inter.items[index]
    _, first = np.unique(pairs, return_index=True)
    out = np.zeros(len(inter), dtype=bool)
    out[index[first]] = True
    return out


def _subset(raw: RawDataset, keep: np.ndarray) -> RawDataset:
    kept_items = np.unique(raw.interactions.items[keep])
    index = np.concatenate([[0], kept_items])
    catalog = raw.catalog
    titles = None if catalog.titles is None else [catalog.titles[i] for i in index]
    attributes = {k: [values[i] for i in index] for k, values in catalog.attributes.items()}
    masks = [None if m is None else m[keep] for m in (raw.valid_rows, raw.test_rows)]
    return RawDataset(raw.interactions.subset(keep), ItemCatalog(len(kept_items), titles, attributes), *masks)
