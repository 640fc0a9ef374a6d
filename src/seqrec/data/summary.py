"""A short text summary of a `SplitData`: its name, sizes, split and source (never the arrays)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqrec.data.splits import SplitData


def summary(data: SplitData) -> str:
    """`SplitData('shop': 120 users, 40 items, 980 interactions; train 740, valid 118 users, test 118 users; ...)`."""
    interactions = int(data.full_histories.lengths.sum())
    parts = [f"{data.num_users} users, {data.num_items} items, {interactions} interactions",
             f"train {int(data.train.lengths.sum())} interactions, valid {len(data.valid)} users, "
             f"test {len(data.test)} users"]
    source = data.source
    if source is not None:
        origin = source.path or source.name
        where = f"{source.format} {origin}" if source.format else f"named dataset {origin}"
        parts.append(f"split {source.split}; source: {where}")
    return f"SplitData({data.name!r}: " + "; ".join(parts) + ")"
