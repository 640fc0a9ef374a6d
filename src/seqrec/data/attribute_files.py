"""Item attribute files: a tab-separated table `item_id  title  <attribute>...`, values `|`-separated.

`seqrec data label` writes one; `--attributes-file` adds its attribute columns to a dataset's catalog, so attribute
metrics, latent sweeps and tuning can use them. For a dataset read from `data.path` the same file also serves as
`data.items` (`{path: attributes.tsv, attributes: [<attribute>]}`). Item ids are the dataset's own (external) ids.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.readers import ItemTable, build_catalog
from seqrec.data.splits import SplitData
from seqrec.data.text_files import read_table
from seqrec.errors import DataError
from seqrec.files import write_text_atomically

ID, TITLE = "item_id", "title"
SEP = "|"
_CONTROL = re.compile(r"[\t\r\n]+")


def format_attribute_file(item_ids: Sequence[str], titles: Sequence[str], name: str,
                          labels: Sequence[tuple[str, ...]]) -> str:
    """The file's text: a row per item (an item without a value has an empty field); tabs in titles -> spaces."""
    bad = next((v for vals in labels for v in vals if SEP in v or _CONTROL.search(v)), None)
    if bad is not None or not name or _CONTROL.search(name) or name in (ID, TITLE):
        shown = bad if bad is not None else name
        raise DataError(f"attribute {shown!r}: names and values need text without tabs, newlines or {SEP!r}, and "
                        f"a name other than {ID} or {TITLE}")
    rows = [f"{ID}\t{TITLE}\t{name}"]
    rows += [f"{item}\t{_CONTROL.sub(' ', title)}\t{SEP.join(values)}"
             for item, title, values in zip(item_ids, titles, labels, strict=True)]
    return "\n".join(rows) + "\n"


def write_attribute_file(path: str | Path, item_ids: Sequence[str], titles: Sequence[str], name: str,
                         labels: Sequence[tuple[str, ...]]) -> None:
    """Write `labels` (one tuple of values per item id) as attribute `name`, replacing the file in one step."""
    write_text_atomically(Path(path), format_attribute_file(item_ids, titles, name, labels))


def read_attribute_file(path: str | Path) -> ItemTable:
    """Every column but `item_id` and `title` as a multi-valued attribute, keyed by raw item id."""
    table = read_table(Path(path))
    if ID not in table.header:
        raise DataError(f"{path}:1: an attribute file needs an {ID!r} column (write one with `seqrec data label`)")
    names = [c for c in table.header if c not in (ID, TITLE)]
    if not names:
        raise DataError(f"{path}:1: no attribute columns besides {ID} and {TITLE}")
    attributes = {n: [_values(text) for text in table.column(n)] for n in names}
    return ItemTable(table.ids(ID), attributes=attributes)


def _values(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(SEP) if v.strip())


def add_attributes(catalog: ItemCatalog, item_map: IdMap, path: str | Path) -> ItemCatalog:
    """A copy of `catalog` with the file's attributes (replacing attributes of the same name)."""
    table = read_attribute_file(path)
    try:
        extra = build_catalog(item_map, table)
    except DataError as exc:  # ids that match no item of the dataset
        raise DataError(f"{path}: {exc}") from None
    return ItemCatalog(catalog.num_items, catalog.titles, {**catalog.attributes, **extra.attributes})


def with_attribute_file(data: SplitData, path: str | Path | None) -> SplitData:
    """`data` whose catalog (and its splits') also holds the attributes of the file at `path` (None: `data`)."""
    if path is None:
        return data
    catalog = add_attributes(data.catalog, data.item_map, path)
    valid = dataclasses.replace(data.valid, catalog=catalog)
    test = dataclasses.replace(data.test, catalog=catalog)
    return dataclasses.replace(data, catalog=catalog, valid=valid, test=test)
