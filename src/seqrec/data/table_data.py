"""A pyarrow Table of interactions (or of item metadata) as seqrec data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqrec.data.catalog import ItemCatalog
from seqrec.data.config import DataConfig, ItemsConfig
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.data.readers import TITLE_COLUMNS, ItemTable, RawDataset
from seqrec.data.tables import DEFAULT_COLUMNS, check_rating_range, ids, numbers, resolve_columns, seconds
from seqrec.errors import DataError


def table_interactions(table: pa.Table, cfg: DataConfig, where: str, part: np.ndarray | None = None,
                       ) -> tuple[RawDataset, dict[str, str]]:
    """Interactions of `table` (columns by `cfg.columns` or common names) and the columns used.

    Rows are ordered by user, then timestamp, then `part` (0 train / 1 valid / 2 test, marking a shipped split),
    then table order.
    """
    if table.num_rows == 0:
        raise DataError(f"{where}: no interactions found (the table has no rows)")
    columns = resolve_columns([str(n) for n in table.column_names], cfg.columns, where)
    users = ids(table.column(columns["user"]), where, columns["user"], arrow_strings=True)
    items = ids(table.column(columns["item"]), where, columns["item"], arrow_strings=True)
    times = None if "timestamp" not in columns else seconds(table.column(columns["timestamp"]), cfg.timestamp,
                                                              where, columns["timestamp"])
    ratings = None
    if "rating" in columns:
        ratings = numbers(table.column(columns["rating"]), where, columns["rating"])
        check_rating_range(ratings, where, columns["rating"])
    if part is None:
        inter = Interactions.from_raw(users, items, timestamps=times, ratings=ratings)
        return RawDataset(inter, ItemCatalog.empty(inter.num_items)), columns
    user_map, user_ids = IdMap.encode(users, offset=0)
    item_map, item_ids = IdMap.encode(items, offset=1)
    keys = [part, user_ids] if times is None else [part, times, user_ids]
    order = np.lexsort(keys)  # stable: table order breaks the remaining ties
    inter = Interactions(user_ids[order], item_ids[order], user_map, item_map,
                         timestamps=None if times is None else times[order],
                         ratings=None if ratings is None else ratings[order].astype(np.float32))
    return RawDataset(inter, ItemCatalog.empty(len(item_map)), part[order] == 1, part[order] == 2), columns


def table_items(table: pa.Table, cfg: ItemsConfig, where: str) -> ItemTable:
    """Item ids, titles and attributes (list columns, or text split at `cfg.separator`) of an item table."""
    names = [str(n) for n in table.column_names]
    mapping = {"item": cfg.id} if cfg.id else {}
    id_column = resolve_columns(names, mapping, where, {"item": DEFAULT_COLUMNS["item"]})["item"]
    title_column = cfg.title or next((c for c in TITLE_COLUMNS if c in names), None)
    for role, column in [("title", title_column), *(("attributes", a) for a in cfg.attributes)]:
        if column is not None and column not in names:
            raise DataError(f"{where}: data.items.{role} names column {column!r}, which is not there; columns "
                            f"found: {', '.join(names)}")
    titles = None
    if title_column is not None:
        titles = pc.fill_null(pc.cast(table.column(title_column), pa.string()), "").to_pylist()
    attributes = {name: _values(table.column(name), cfg.separator, where, name) for name in cfg.attributes}
    return ItemTable(ids(table.column(id_column), where, id_column), titles, attributes)


def _values(column: pa.ChunkedArray, separator: str, where: str, name: str) -> list[tuple[str, ...]]:
    """One tuple of attribute values per row: a list column as is, a text column split at `separator`."""
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if not _scalar(kind.value_type):
            raise DataError(f"{where}: attribute column {name!r} holds {kind}; expected lists of strings or numbers")
        lists = pc.cast(column, pa.list_(pa.string()))
    elif _scalar(kind):
        lists = pc.split_pattern(pc.cast(column, pa.string()), separator)
    else:
        raise DataError(f"{where}: attribute column {name!r} holds {kind}; expected strings, numbers or lists")
    return [tuple(s for v in (row or ()) if v is not None and (s := v.strip())) for row in lists.to_pylist()]


def _scalar(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_dictionary(kind))
