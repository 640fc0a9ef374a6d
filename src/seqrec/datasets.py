"""Named datasets: `seqrec.datasets.load("ml-1m-sas")`, `seqrec.datasets.available()`."""

from __future__ import annotations

from typing import Any

from seqrec.config import from_dict
from seqrec.data.config import DataConfig
from seqrec.data.splits import SplitData


def load(name: str = "synthetic", **options: Any) -> SplitData:
    """Load and split a named dataset; options are `DataConfig` fields (split, data_dir, synthetic={...})."""
    from seqrec.data.registry import load as load_config

    return load_config(from_dict(DataConfig, {"name": name, **options}, "data."))


def available(data_dir: str | None = None) -> list[dict[str, Any]]:
    """Every named dataset with its description, location and whether its files are present."""
    from seqrec.data.registry import list_datasets

    return list_datasets(data_dir)
