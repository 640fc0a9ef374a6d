"""Named datasets under a data root, and `load`, which turns a `DataConfig` into a `SplitData`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqrec.data.catalog import HEAD, MID, TAIL, ItemCatalog, item_counts, popularity_labels
from seqrec.data.config import FRAME_FORMAT, DataConfig, SplitName
from seqrec.data.filters import Filtered, apply_filters
from seqrec.data.interactions import Interactions
from seqrec.data.readers import (
    RawDataset,
    read_item_attributes_json,
    read_item_table,
    read_movielens,
    read_recbole,
    read_rechorus,
    read_s3rec,
    read_sasrec,
)
from seqrec.data.splits import (
    SplitData,
    kcore,
    leave_one_out,
    predefined_split,
    temporal_split,
    temporal_users_split,
)
from seqrec.errors import DataError, suggest

if TYPE_CHECKING:
    from seqrec.data.synthetic import SyntheticConfig

ENV_VAR = "SEQREC_DATA"
DEFAULT_ROOT = "data"
COUNT_KEYS = ("users", "items", "interactions")

Loader = Callable[[Path, "SyntheticConfig | None"], RawDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """Where a named dataset lives under the data root and how to read it."""

    name: str
    description: str
    folder: str | None  # relative to the data root; None for generated data
    files: tuple[str, ...]  # required files inside `folder`
    loader: Loader
    default_split: SplitName = "loo"
    counts: tuple[int, int, int] | None = None  # published users, items, interactions
    hint: str = ""  # where to get the files


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data root: `data_dir` if given, else $SEQREC_DATA, else ./data (as an absolute path)."""
    root = data_dir or os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root).expanduser().absolute()


# ---------------------------------------------------------------- loaders


def _ml1m_sas(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    return RawDataset(*read_sasrec(folder / "ml-1m.txt", [read_item_table(folder / "items.tsv")]))


def _beauty(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    metadata = [read_item_attributes_json(folder / "Beauty_item2attributes.json")]
    titles = folder.parent / "amazon-beauty-p5" / "items_derived.tsv"
    if titles.is_file():
        metadata.append(read_item_table(titles))
    return RawDataset(*read_s3rec(folder / "Beauty.txt", metadata))


def _beauty_bert4rec(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    return RawDataset(*read_sasrec(folder / "beauty.txt"))


def _grocery(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    return read_rechorus(folder)


def _lastfm(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    return RawDataset(*read_recbole(folder / "lastfm.inter", folder / "lastfm.item"))


def _movielens(folder: Path, _: SyntheticConfig | None) -> RawDataset:
    return RawDataset(*read_movielens(folder))


def _synthetic(_: Path, cfg: SyntheticConfig | None) -> RawDataset:
    from seqrec.data import synthetic

    return RawDataset(*synthetic.generate(cfg if cfg is not None else synthetic.SyntheticConfig()))


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("ml-1m-sas", "MovieLens-1M in SASRec ids, each user's last two interactions removed; "
                "titles and genres", "ml-1m-sas", ("ml-1m.txt", "items.tsv"), _ml1m_sas,
                counts=(6040, 3416, 987531)),
    DatasetSpec("beauty", "Amazon Beauty 5-core (S3-Rec benchmark); category/brand attribute ids, titles "
                "when amazon-beauty-p5/items_derived.tsv is present", "s3rec-seq",
                ("Beauty.txt", "Beauty_item2attributes.json"), _beauty, counts=(22363, 12101, 198502)),
    DatasetSpec("beauty-bert4rec", "Amazon Beauty, BERT4Rec preprocessing (not the S3-Rec Beauty)",
                "bert4rec-classic", ("beauty.txt",), _beauty_bert4rec, counts=(40226, 54542, 353962)),
    DatasetSpec("grocery", "Amazon Grocery and Gourmet Food (ReChorus): shipped train/dev/test split, "
                "timestamps, item categories", "rechorus-grocery", ("train.csv", "dev.csv", "test.csv"),
                _grocery, default_split="predefined", counts=(14681, 8713, 151254)),
    DatasetSpec("lastfm", "Last.fm hetrec2011 tag assignments (RecBole), timestamps in ms, artist names",
                "lastfm-recbole-tagged", ("lastfm.inter", "lastfm.item"), _lastfm,
                counts=(1362, 2975, 64286)),
    DatasetSpec("ml-1m", "MovieLens-1M ratings (.dat files), timestamps, titles and genres", "ml-1m",
                ("ratings.dat",), _movielens, counts=(6040, 3706, 1000209),
                hint="ratings.dat and movies.dat come in ml-1m.zip from https://grouplens.org/datasets/movielens/1m/"),
    DatasetSpec("synthetic", "generated data with planted structure (data.synthetic settings)", None, (),
                _synthetic),
)}


# ---------------------------------------------------------------- public API


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`; an unknown name raises `DataError` listing the valid ones."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid names: {suggest(DATASETS)}; for your own data set "
                        f"data.path, or name it in datasets.yaml in the data root (seqrec data list shows yours)")
    return DATASETS[name]


def load_raw(name: str, data_dir: str | Path | None = None, synthetic: SyntheticConfig | None = None
             ) -> tuple[Interactions, ItemCatalog]:
    """All interactions and the item catalog of a named dataset, before filtering and splitting."""
    raw = _read(get_spec(name), data_dir, synthetic)
    return raw.interactions, raw.catalog


def load(cfg: DataConfig) -> SplitData:
    """Load `cfg.path` (the user's file or folder) or the named dataset `cfg.name`, apply the filters, split.

    The result's `source` is the resolved config: for a path, absolute, with the format and columns found.
    """
    cfg = resolve_name(cfg)  # a user dataset name (datasets.yaml) -> its path and settings
    if cfg.format == FRAME_FORMAT:
        raise DataError(f"dataset {cfg.name!r} was built from a DataFrame and cannot be read again from its "
                        "config; pass the frame to seqrec.datasets.from_frame, or save it and set data.path")
    if cfg.path is not None:
        source = sources_module().read_path(cfg)
        return split(source.raw, source.config, source.where, source.filtered)
    spec = get_spec(cfg.name)
    raw, filtered = apply_filters(_read(spec, cfg.data_dir, cfg.synthetic), cfg, f"dataset {cfg.name!r}")
    resolved = dataclasses.replace(cfg, data_dir=None if spec.folder is None else str(data_root(cfg.data_dir)))
    return split(raw, resolved, filtered=filtered)


def split(raw: RawDataset, cfg: DataConfig, where: str | None = None, filtered: Filtered | None = None
          ) -> SplitData:
    """Apply the k-core filter if asked and split `raw` by `cfg.split`; `cfg` becomes the result's `source`."""
    what = where or f"dataset {cfg.name!r}"
    shares = dict(head_share=cfg.head_share, tail_share=cfg.tail_share)
    kcore_on = cfg.min_user_interactions > 0 or cfg.min_item_interactions > 0
    if cfg.split == "predefined":
        if not raw.has_predefined_split:
            shipped = [s.name for s in DATASETS.values() if s.default_split == "predefined"]
            raise DataError(f"{what} ships no predefined split; use split: loo or temporal "
                            f"(datasets with one: {suggest(shipped)}; formats with one: rechorus, amazon2023)")
        if kcore_on:
            raise DataError(f"{what}: k-core filtering would change the shipped split; set "
                            "min_user_interactions and min_item_interactions to 0, or use split: loo")
        masks = (raw.valid_rows, raw.test_rows)
        data = predefined_split(raw.interactions, raw.catalog, *masks, cfg.name, **shares)
    else:
        inter, catalog = raw.interactions, raw.catalog
        if kcore_on:
            inter, catalog = _kcore(inter, catalog, cfg, what, filtered)
        if cfg.split == "temporal":
            data = temporal_split(inter, catalog, cfg.name, cfg.valid_share, cfg.test_share, **shares)
        elif cfg.split == "temporal_users":
            data = temporal_users_split(inter, catalog, cfg.name, cfg.valid_share, cfg.test_share, **shares)
        else:
            data = leave_one_out(inter, catalog, cfg.name, **shares)
    data.source = cfg
    return data


def _kcore(inter: Interactions, catalog: ItemCatalog, cfg: DataConfig, what: str, filtered: Filtered | None
           ) -> tuple[Interactions, ItemCatalog]:
    try:
        inter_k, catalog_k = kcore(inter, cfg.min_user_interactions, cfg.min_item_interactions, catalog)
    except DataError:
        before = f"{filtered.describe()}; " if filtered is not None else ""
        raise DataError(f"{what}: no interactions left after filtering ({before}k-core "
                        f"{cfg.min_user_interactions}/{cfg.min_item_interactions} removed the remaining "
                        f"{len(inter)}); lower data.min_user_interactions / data.min_item_interactions") from None
    return inter_k, catalog_k if catalog_k is not None else catalog


def list_datasets(data_dir: str | Path | None = None, datasets: str | Path | None = None) -> list[dict[str, Any]]:
    """Every named dataset with its folder, whether its files are present and its published counts; then the
    user datasets of `datasets` (default: $SEQREC_DATASETS, else datasets.yaml in the data root)."""
    root = data_root(data_dir)
    out = []
    for spec in DATASETS.values():
        out.append({
            "name": spec.name,
            "description": spec.description,
            "folder": None if spec.folder is None else str(root / spec.folder),
            "present": not _missing(spec, root),
            "default_split": spec.default_split,
            **dict(zip(COUNT_KEYS, spec.counts or (None, None, None), strict=True)),
        })
    return out + user_dataset_rows(data_dir, datasets)


def dataset_info(source: str | DataConfig, data_dir: str | Path | None = None,
                 synthetic: SyntheticConfig | None = None, head_share: float = 0.2, tail_share: float = 0.8,
                 datasets: str | Path | None = None) -> dict[str, Any]:
    """Load a dataset and describe it: sizes, sequence lengths, metadata, head/mid/tail items (all rows).

    `source`: a built-in or user dataset name, or a `DataConfig` (e.g. `DataConfig(path="clicks.csv")`).
    """
    if isinstance(source, str):
        extra = {} if synthetic is None else {"synthetic": synthetic}
        source = DataConfig(name=source, data_dir=None if data_dir is None else str(data_dir), **extra)
    cfg = resolve_name(source, datasets)
    raw, description, where = _read_source(cfg)
    if source.path is None and cfg.path is not None:  # a user dataset: its own description first
        from seqrec.data.user_datasets import find

        entry = find(cfg.name, cfg.data_dir, datasets)
        description = f"{entry.description} ({description})" if entry and entry.description else description
    inter, catalog = raw.interactions, raw.catalog
    lengths = inter.sequences().lengths
    labels = popularity_labels(item_counts(inter.items, inter.num_items), head_share, tail_share)[1:]
    titled = sum(1 for t in catalog.titles[1:] if t) if catalog.titles else 0
    spec = DATASETS.get(cfg.name) if cfg.path is None else None
    return {
        "name": cfg.name,
        "description": description,
        "folder": where,
        "users": inter.num_users,
        "items": inter.num_items,
        "interactions": len(inter),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "has_timestamps": inter.timestamps is not None,
        "has_titles": titled > 0,
        "titled_items": titled,
        "attributes": {a: len(catalog.attribute_values(a)) for a in catalog.attributes},  # distinct values
        "predefined_split": raw.has_predefined_split,
        "head_items": int((labels == HEAD).sum()),
        "mid_items": int((labels == MID).sum()),
        "tail_items": int((labels == TAIL).sum()),
        "published": None if spec is None or spec.counts is None else dict(zip(COUNT_KEYS, spec.counts, strict=True)),
    }


# ---------------------------------------------------------------- your own dataset names (datasets.yaml)


def resolve_name(cfg: DataConfig, datasets: str | Path | None = None) -> DataConfig:
    """`cfg` completed from its entry when `cfg.name` is a user dataset (`seqrec.data.user_datasets`)."""
    from seqrec.data.user_datasets import resolve

    return resolve(cfg, datasets)


def user_dataset_rows(data_dir: str | Path | None = None, datasets: str | Path | None = None
                      ) -> list[dict[str, Any]]:
    """`list_datasets` rows of the user datasets, marked `user_dataset: True`."""
    from seqrec.data.user_datasets import describe, user_datasets

    return [describe(entry) for entry in user_datasets(data_dir, datasets)]


def load_raw_source(cfg: DataConfig, datasets: str | Path | None = None) -> tuple[Interactions, ItemCatalog]:
    """All interactions and the item catalog of any source (a name, a user dataset, a path), before k-core
    filtering and splitting (a path's `min_rating` and `duplicates` filters apply)."""
    raw, _, _ = _read_source(resolve_name(cfg, datasets))
    return raw.interactions, raw.catalog


def _read_source(cfg: DataConfig) -> tuple[RawDataset, str, str | None]:
    """The raw dataset of a resolved config, a description of it and where it was read from."""
    if cfg.path is not None:
        source = sources_module().read_path(cfg)
        return source.raw, f"{source.config.format} data read from {cfg.path}", str(cfg.path)
    spec = get_spec(cfg.name)
    where = None if spec.folder is None else str(data_root(cfg.data_dir) / spec.folder)
    return _read(spec, cfg.data_dir, cfg.synthetic), spec.description, where


# ---------------------------------------------------------------- internals


def sources_module() -> Any:
    """The reader of users' own files; it needs pyarrow (the `data` extra)."""
    try:
        from seqrec.data import sources
    except ImportError as exc:
        if "pyarrow" not in str(exc):
            raise
        raise DataError("reading data.path needs pyarrow: pip install 'seqrec[data]' (or pip install pyarrow)"
                        ) from None
    return sources


def _missing(spec: DatasetSpec, root: Path) -> list[Path]:
    if spec.folder is None:
        return []
    return [root / spec.folder / f for f in spec.files if not (root / spec.folder / f).is_file()]


def _read(spec: DatasetSpec, data_dir: str | Path | None, synthetic: SyntheticConfig | None) -> RawDataset:
    root = data_root(data_dir)
    missing = _missing(spec, root)
    if missing:
        paths = "\n  ".join(str(p) for p in missing)
        hint = f"\n{spec.hint}" if spec.hint else ""
        raise DataError(f"dataset {spec.name!r} needs files that are missing:\n  {paths}\n"
                        f"Put the file there, or pass --data-dir / set {ENV_VAR} to the folder that holds "
                        f"{spec.folder}/ (data root now: {root}).{hint}")
    folder = root if spec.folder is None else root / spec.folder
    return spec.loader(folder, synthetic)
