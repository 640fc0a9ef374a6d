"""The user's own data: a file or folder (`data.path`) or an in-memory frame, read into a `RawDataset`.

`read_path` detects the format, reads it (pyarrow for csv / tsv / parquet / jsonl, the layout readers for
sasrec / s3rec / recbole / movielens / rechorus / amazon2023), applies `min_rating` and `duplicates`, attaches the
item file, and records the resolved source: absolute path, format and the columns used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from seqrec.data.config import FORMATS, FRAME_FORMAT, TABLE_FORMATS, DataConfig, ItemsConfig
from seqrec.data.filters import Filtered, apply_filters
from seqrec.data.formats import AMAZON_PARTS, detect_format, read_arrow
from seqrec.data.readers import (
    ItemTable,
    RawDataset,
    build_catalog,
    read_movielens,
    read_recbole,
    read_rechorus,
    read_s3rec,
    read_sasrec,
)
from seqrec.data.table_data import table_interactions, table_items
from seqrec.errors import DataError, suggest

AMAZON_COLUMNS = {"user": "user_id", "item": "parent_asin", "timestamp": "timestamp"}  # rating: rating or label


@dataclass
class Source:
    """Data read from the user's source, the resolved config that re-reads it, and what the filters removed."""

    raw: RawDataset
    config: DataConfig  # path absolute, format detected, columns resolved
    where: str  # the file or "DataFrame", for messages
    filtered: Filtered


def read_path(cfg: DataConfig) -> Source:
    """Read `cfg.path` in `cfg.format` (detected when None) and apply the row filters."""
    path = Path(str(cfg.path)).expanduser().absolute()
    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path (relative paths start at {Path.cwd()})")
    fmt = cfg.format or detect_format(path)
    columns: dict[str, str] = {}
    if fmt in TABLE_FORMATS:
        raw, columns = table_interactions(read_arrow(path, fmt), cfg, str(path))
    elif fmt == "amazon2023":
        raw, columns = _amazon2023(path, cfg)
    else:
        if cfg.columns:
            raise DataError(f"{path}: data.columns applies to csv, tsv, parquet, jsonl and amazon2023 data; {fmt} "
                            "files have fixed columns, so remove data.columns (or set data.format)")
        raw = _layout(path, fmt)
    raw, filtered = apply_filters(raw, cfg, str(path))
    if cfg.items is not None:
        raw = _with_items(raw, cfg.items)
    items = None if cfg.items is None else dataclasses.replace(
        cfg.items, path=str(Path(cfg.items.path).expanduser().absolute()))
    resolved = dataclasses.replace(cfg, path=str(path), format=fmt, columns=columns, items=items)
    return Source(raw, resolved, str(path), filtered)


def read_frame(frame: Any, cfg: DataConfig, items: Any = None) -> Source:
    """Interactions from a pandas / polars DataFrame or a pyarrow Table; `items` a frame or an `ItemsConfig`."""
    where = "DataFrame"
    raw, columns = table_interactions(to_arrow(frame, where), cfg, where)
    raw, filtered = apply_filters(raw, cfg, where)
    items_cfg = items if isinstance(items, ItemsConfig) else cfg.items
    if isinstance(items, ItemsConfig):
        raw = _with_items(raw, items)
    elif items is not None:
        items_cfg = items_cfg or ItemsConfig(path="<frame>")
        table = table_items(to_arrow(items, "items DataFrame"), items_cfg, "items DataFrame")
        raw = with_item_table(raw, table, items_cfg.new_items)
    resolved = dataclasses.replace(cfg, format=FRAME_FORMAT, columns=columns, items=items_cfg)
    return Source(raw, resolved, where, filtered)


def to_arrow(frame: Any, where: str) -> pa.Table:
    """A pyarrow Table from a pyarrow Table, a pandas or polars DataFrame, or anything with the Arrow C stream."""
    if isinstance(frame, pa.Table):
        return frame
    try:
        module = type(frame).__module__
        if module.startswith("polars"):
            return frame.to_arrow()
        if module.startswith("pandas"):
            return pa.Table.from_pandas(frame, preserve_index=False)
        return pa.table(frame)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{where}: cannot be converted to a table ({message}); give each column one type "
                        "(all integers or all strings for ids, numbers for ratings and timestamps)") from None


def _with_items(raw: RawDataset, items: ItemsConfig) -> RawDataset:
    path = Path(items.path).expanduser().absolute()
    fmt = items.format or detect_format(path)
    if fmt not in TABLE_FORMATS:
        raise DataError(f"{path}: an item file must be one of {suggest(TABLE_FORMATS)}, not {fmt}; set "
                        "data.items.format")
    table = table_items(read_arrow(path, fmt), items, str(path))
    return with_item_table(raw, table, items.new_items)


def with_item_table(raw: RawDataset, table: ItemTable, new_items: bool) -> RawDataset:
    """`raw` with the table's titles and attributes; with `new_items`, its items without interactions are added
    to the item map after the others (internal ids N+1, ...), so they can be scored and recommended."""
    inter = raw.interactions
    if new_items:
        inter = dataclasses.replace(inter, item_map=inter.item_map.extended(table.ids))
    return RawDataset(inter, build_catalog(inter.item_map, table), raw.valid_rows, raw.test_rows)


def _layout(path: Path, fmt: str) -> RawDataset:
    """Formats with a fixed layout, read by the readers of the named datasets."""
    if fmt in ("sasrec", "s3rec"):
        return RawDataset(*(read_sasrec if fmt == "sasrec" else read_s3rec)(_file(path, fmt)))
    if fmt == "recbole":
        inter = path if path.is_file() else next(iter(sorted(path.glob("*.inter"))), path / "data.inter")
        item = inter.with_suffix(".item")
        return RawDataset(*read_recbole(inter, item if item.is_file() else None))
    if fmt == "movielens":
        return RawDataset(*read_movielens(path if path.is_dir() else path.parent))
    if fmt == "rechorus":
        return read_rechorus(path if path.is_dir() else path.parent)
    raise DataError(f"unknown data.format {fmt!r}; valid formats: {suggest(FORMATS)}")



def _file(path: Path, fmt: str) -> Path:
    if path.is_dir():
        raise DataError(f"{path}: is a folder; format {fmt} reads one file, so point data.path at it")
    return path


def _amazon2023(path: Path, cfg: DataConfig) -> tuple[RawDataset, dict[str, str]]:
    """Amazon-2023 JSONL: one file of reviews, or a folder with train/valid/test (a shipped split)."""
    files = [path] if path.is_file() else [_part(path, name) for name in AMAZON_PARTS]
    tables = [read_arrow(f, "jsonl") for f in files]
    rating = "rating" if "rating" in tables[0].column_names else "label"
    columns = {**AMAZON_COLUMNS, "rating": rating, **cfg.columns}
    timestamp = "milliseconds" if cfg.timestamp == "auto" else cfg.timestamp
    amazon = dataclasses.replace(cfg, columns=columns, timestamp=timestamp)
    if len(tables) == 1:
        return table_interactions(tables[0], amazon, str(path))
    for file, table in zip(files, tables, strict=True):
        absent = [c for c in columns.values() if c not in table.column_names]
        if absent:
            raise DataError(f"{file}: no {absent[0]!r} column; columns found: {', '.join(table.column_names)}; "
                            "set data.columns")
    table = pa.concat_tables([t.select(list(columns.values())) for t in tables], promote_options="permissive")
    part = np.repeat(np.arange(3), [t.num_rows for t in tables])
    return table_interactions(table, amazon, str(path), part)


def _part(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}.jsonl", folder / f"{name}.jsonl.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: no {name}.jsonl or {name}.jsonl.gz; an Amazon-2023 folder holds train, valid and "
                    "test files")
