"""Datasets for Python users: a named one, your own file, or a DataFrame, loaded and split into a `SplitData`.

```python
data = seqrec.datasets.load("ml-1m-sas")                                   # a named dataset
data = seqrec.datasets.load("clicks.parquet", columns={"item": "sku"})     # your file (csv, tsv, parquet, jsonl, ...)
data = seqrec.datasets.from_frame(df, columns={"user": "visitor"}, split="temporal")   # pandas / polars / pyarrow
print(data)   # name, sizes, split and source
```
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from seqrec.config import from_dict
from seqrec.data.config import FRAME_FORMAT, DataConfig, ItemsConfig
from seqrec.data.splits import SplitData


def load(source: str | Path | DataConfig = "synthetic", **options: Any) -> SplitData:
    """Load and split a dataset: a `DataConfig`, a named dataset, or a path to your own file or folder.

    A string is a path when it names an existing file or folder or contains a path separator or a file
    extension; otherwise it is a dataset name. `options` are `DataConfig` fields (split, columns,
    timestamp, min_rating, duplicates, items={...}, min_user_interactions, data_dir, synthetic={...}).
    """
    from seqrec.data.registry import load as load_config

    if isinstance(source, DataConfig):
        cfg = from_dict(DataConfig, {**_fields(source), **options}, "data.") if options else source
        return load_config(cfg)
    key = "path" if _is_path(source) else "name"
    return load_config(from_dict(DataConfig, {key: str(source), **options}, "data."))


def from_frame(frame: Any, columns: dict[str, str] | None = None, items: Any = None, split: str = "loo",
               name: str = "frame", **options: Any) -> SplitData:
    """Build a dataset from a pandas or polars DataFrame or a pyarrow Table of interactions.

    `frame` has one row per interaction. `columns` maps the roles user, item, timestamp and rating to its
    column names (default: common names such as user_id, item_id, timestamp, rating). `items` is an item
    DataFrame / Table (id, title and `attributes=[...]` columns, set through `item_options`) or an
    `ItemsConfig` naming an item file. `options` are further `DataConfig` fields: timestamp, min_rating,
    duplicates, min_user_interactions, min_item_interactions, valid_share, test_share, item_options={...}.
    """
    from seqrec.data.registry import sources_module
    from seqrec.data.registry import split as split_raw

    item_options = options.pop("item_options", None)
    settings: dict[str, Any] = {"name": name, "split": split, "columns": dict(columns or {}), **options}
    if item_options is not None:
        settings["format"] = FRAME_FORMAT
        settings["items"] = {"path": "<frame>", **item_options}
    cfg = from_dict(DataConfig, settings, "data.")
    source = sources_module().read_frame(frame, cfg, items)
    return split_raw(source.raw, source.config, source.where, source.filtered)


def available(data_dir: str | None = None) -> list[dict[str, Any]]:
    """Every named dataset with its description, location and whether its files are present."""
    from seqrec.data.registry import list_datasets

    return list_datasets(data_dir)


def _is_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    path = Path(source).expanduser()
    return path.exists() or "/" in source or "\\" in source or bool(path.suffix)


def _fields(cfg: DataConfig) -> dict[str, Any]:
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    if isinstance(out["items"], ItemsConfig):
        out["items"] = dataclasses.asdict(out["items"])
    out["synthetic"] = dataclasses.asdict(out["synthetic"])
    return out
