"""A small generated CSV to try seqrec on your own data: `user_id,item_id,timestamp` (+ an item file)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from seqrec.data.synthetic import SyntheticConfig, generate
from seqrec.errors import DataError
from seqrec.files import write_text_atomically


def example_tables(users: int = 200, items: int = 60, seed: int = 0) -> tuple[str, str]:
    """Interactions (`user_id,item_id,timestamp`, unix seconds) and items (`item_id,title,genres`, genres
    `|`-separated) of a synthetic catalogue, as CSV text. User ids are `u1…`, item ids `i1…`."""
    if users < 2 or items < 10:
        raise DataError(f"an example needs at least 2 users and 10 items; got {users} users, {items} items")
    longest = min(40, items)
    inter, catalog = generate(SyntheticConfig(num_users=users, num_items=items, seed=seed, mean_seq_len=12,
                                              max_seq_len=longest))
    user_ids, item_ids = inter.user_map.to_external(range(len(inter.user_map))), inter.item_map.to_external(
        range(1, len(inter.item_map) + 1))
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["user_id", "item_id", "timestamp"])
    for u, i, t in zip(inter.users.tolist(), inter.items.tolist(), inter.timestamps.tolist(), strict=True):
        writer.writerow([f"u{user_ids[u]}", f"i{item_ids[i - 1]}", int(t)])
    meta = io.StringIO()
    writer = csv.writer(meta, lineterminator="\n")
    writer.writerow(["item_id", "title", "genres"])
    for item in range(1, catalog.num_items + 1):
        writer.writerow([f"i{item_ids[item - 1]}", catalog.title(item), "|".join(catalog.attributes["genre"][item])])
    return rows.getvalue(), meta.getvalue()


def write_example(out: str | Path, items_out: str | Path | None = None, users: int = 200, items: int = 60,
                  seed: int = 0) -> None:
    """Write the example interactions to `out` (and the item file to `items_out`); existing files are refused."""
    targets = [Path(p) for p in (out, items_out) if p is not None]
    for path in targets:
        if path.exists():
            raise DataError(f"{path} exists; choose another file (nothing is overwritten)")
    interactions, metadata = example_tables(users, items, seed)
    write_text_atomically(Path(out), interactions)
    if items_out is not None:
        write_text_atomically(Path(items_out), metadata)
