"""Your own dataset names: `datasets.yaml` maps a name to `DataConfig` settings (a file and how to read it).

```yaml
shop:
  description: web-shop clicks, 2024
  path: shop/clicks.csv           # relative to this file's folder, or absolute
  columns: {user: visitor, item: sku, timestamp: ts}
  split: temporal
```

The file is `--datasets FILE`, else `$SEQREC_DATASETS`, else `datasets.yaml` in the data root. A name that is a
built-in dataset is refused; `resolve` turns a config naming a user dataset into the full config.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import from_dict, parse_yaml_file, to_dict
from seqrec.data.config import DataConfig
from seqrec.errors import ConfigError, DataError, suggest

ENV_VAR = "SEQREC_DATASETS"
FILE_NAME = "datasets.yaml"
RESERVED = ("name", "data_dir")  # an entry names itself; the data root is where the file is found


@dataclass(frozen=True)
class UserDataset:
    """One entry of a datasets file: its name, description and `DataConfig` settings (path made absolute)."""

    name: str
    description: str
    file: Path  # the datasets file that defines it
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        value = self.settings.get("path")
        return None if value is None else Path(value)

    @property
    def present(self) -> bool:
        return self.path is not None and self.path.exists()


def datasets_file(data_dir: str | Path | None = None, file: str | Path | None = None) -> Path | None:
    """Where user datasets are defined: `file`, else $SEQREC_DATASETS, else `datasets.yaml` in the data root
    (None when that default file does not exist). A file named explicitly must exist."""
    from seqrec.data.registry import data_root

    chosen = file or os.environ.get(ENV_VAR)
    if chosen:
        path = Path(chosen).expanduser().absolute()
        if not path.is_file():
            origin = "--datasets" if file else f"${ENV_VAR}"
            raise DataError(f"{path}: datasets file not found ({origin}); create it or point at an existing one")
        return path
    default = data_root(data_dir) / FILE_NAME
    return default if default.is_file() else None


def read_datasets(path: str | Path) -> dict[str, UserDataset]:
    """Read and check a datasets file: a mapping of names to mappings of `DataConfig` keys and `description`."""
    from seqrec.data.registry import DATASETS

    path = Path(path)
    data = parse_yaml_file(path, DataError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of dataset names to settings, e.g. `shop: {{path: shop.csv}}`")
    out = {}
    for name, entry in data.items():
        where = f"{path}: dataset {name!r}"
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
            raise DataError(f"{where}: a dataset name is a non-empty string without / or \\")
        if name in DATASETS:
            raise DataError(f"{where}: the name is a built-in dataset; choose another name "
                            f"(built-in: {suggest(DATASETS)})")
        out[name] = _entry(name, entry, path, where)
    return out


def find(name: str, data_dir: str | Path | None = None, file: str | Path | None = None) -> UserDataset | None:
    """The user dataset called `name`, or None when there is none (or no datasets file)."""
    path = datasets_file(data_dir, file)
    return None if path is None else read_datasets(path).get(name)


def user_datasets(data_dir: str | Path | None = None, file: str | Path | None = None) -> list[UserDataset]:
    """Every user dataset, in file order (none when there is no datasets file)."""
    path = datasets_file(data_dir, file)
    return [] if path is None else list(read_datasets(path).values())


def resolve_dict(data: Mapping[str, Any], file: str | Path | None = None) -> dict[str, Any]:
    """A `data:` section naming a user dataset, completed from its entry (the section's own keys win)."""
    data = dict(data)
    name = data.get("name")
    if not isinstance(name, str) or data.get("path") is not None:
        return data
    entry = _known(name, data.get("data_dir"), file)
    return data if entry is None else {**entry.settings, **data}


def resolve(cfg: DataConfig, file: str | Path | None = None) -> DataConfig:
    """`cfg` completed from the user dataset it names; fields still at their default take the entry's value.

    A config with a `path`, or naming a built-in dataset, is returned unchanged.
    """
    if cfg.path is not None:
        return cfg
    entry = _known(cfg.name, cfg.data_dir, file)
    if entry is None:
        return cfg
    default = DataConfig()
    resolved = from_dict(DataConfig, {**entry.settings, "name": cfg.name}, "data.")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.init and value != getattr(default, f.name):
            setattr(resolved, f.name, value)
    return resolved


def source_config(source: str, data_dir: str | Path | None = None, file: str | Path | None = None) -> DataConfig:
    """A `DataConfig` for a command-line DATA argument: a built-in name, a user dataset (unresolved), or a file or
    folder."""
    from seqrec.data.registry import DATASETS

    if source in DATASETS:
        return DataConfig(name=source, data_dir=None if data_dir is None else str(data_dir))
    if _known(source, data_dir, file) is not None:  # resolved where it is read, with the same `file`
        return DataConfig(name=source, data_dir=None if data_dir is None else str(data_dir))
    path = Path(source).expanduser()
    if path.exists():
        return DataConfig(path=str(path.absolute()), data_dir=None if data_dir is None else str(data_dir))
    names = [*DATASETS, *(e.name for e in user_datasets(data_dir, file))]
    raise DataError(f"{source!r} is neither a dataset name nor an existing file or folder; names: {suggest(names)}")


def describe(entry: UserDataset) -> dict[str, Any]:
    """A `list_datasets` row for a user dataset."""
    return {"name": entry.name, "description": entry.description, "folder": str(entry.path or ""),
            "present": entry.present, "default_split": entry.settings.get("split", DataConfig.split),
            "users": None, "items": None, "interactions": None, "user_dataset": True, "defined_in": str(entry.file)}


# ---------------------------------------------------------------- internals


def _known(name: str, data_dir: str | Path | None, file: str | Path | None) -> UserDataset | None:
    """The entry for `name` with an existing path; None for built-in names and names nobody defined."""
    from seqrec.data.registry import DATASETS

    if name in DATASETS:
        return None
    entry = find(name, data_dir, file)
    if entry is not None and not entry.present:
        raise DataError(f"{entry.file}: dataset {name!r}: path {entry.path} does not exist; fix the path "
                        f"(relative paths start from {entry.file.parent})")
    return entry


def _entry(name: str, entry: object, file: Path, where: str) -> UserDataset:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a mapping of settings (path, format, columns, split, ...), "
                        f"got {entry!r}")
    settings = dict(entry)
    description = settings.pop("description", "")
    if not isinstance(description, str):
        raise DataError(f"{where}: key 'description' must be text, got {description!r}")
    reserved = [k for k in RESERVED if k in settings]
    if reserved:
        raise DataError(f"{where}: key {reserved[0]!r} cannot be set here (the entry's name is its name; the "
                        "data root is where this file is found)")
    if "path" not in settings or not isinstance(settings["path"], str) or not settings["path"].strip():
        raise DataError(f"{where}: key 'path' is required: the data file or folder, relative to {file.parent} "
                        "or absolute")
    settings["path"] = str((file.parent / Path(settings["path"]).expanduser()).absolute())
    items = settings.get("items")
    if isinstance(items, dict) and isinstance(items.get("path"), str):
        settings["items"] = {**items, "path": str((file.parent / Path(items["path"]).expanduser()).absolute())}
    try:
        checked = from_dict(DataConfig, {**settings, "name": name}, "")
    except ConfigError as exc:
        raise DataError(f"{where}: {exc}") from None
    explicit = {k: v for k, v in to_dict(checked).items() if k in settings}
    return UserDataset(name, description, file, explicit)
