"""Named datasets under a data root, and `load`, which turns a `DataConfig` into a `SplitData`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqrec.data.catalog import HEAD, MID, TAIL, ItemCatalog, item_counts, popularity_labels
from seqrec.data.config import DataConfig, SplitName
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
        raise DataError(f"unknown dataset {name!r}; valid names: {suggest(DATASETS)}")
    return DATASETS[name]


def load_raw(name: str, data_dir: str | Path | None = None, synthetic: SyntheticConfig | None = None
             ) -> tuple[Interactions, ItemCatalog]:
    """All interactions and the item catalog of a named dataset, before filtering and splitting."""
    raw = _read(get_spec(name), data_dir, synthetic)
    return raw.interactions, raw.catalog


def load(cfg: DataConfig) -> SplitData:
    """Load `cfg.name`, apply the k-core filter if asked, and split by `cfg.split`."""
    spec = get_spec(cfg.name)
    raw = _read(spec, cfg.data_dir, cfg.synthetic)
    shares = dict(head_share=cfg.head_share, tail_share=cfg.tail_share)
    filtered = cfg.min_user_interactions > 0 or cfg.min_item_interactions > 0
    if cfg.split == "predefined":
        if not raw.has_predefined_split:
            shipped = [s.name for s in DATASETS.values() if s.default_split == "predefined"]
            raise DataError(f"dataset {cfg.name!r} ships no predefined split; use split: loo or temporal "
                            f"(datasets with one: {suggest(shipped)})")
        if filtered:
            raise DataError(f"dataset {cfg.name!r}: k-core filtering would change the shipped split; set "
                            "min_user_interactions and min_item_interactions to 0, or use split: loo")
        masks = (raw.valid_rows, raw.test_rows)
        return predefined_split(raw.interactions, raw.catalog, *masks, cfg.name, **shares)
    inter, catalog = raw.interactions, raw.catalog
    if filtered:
        inter, catalog = kcore(inter, cfg.min_user_interactions, cfg.min_item_interactions, catalog)
    if cfg.split == "temporal":
        return temporal_split(inter, catalog, cfg.name, cfg.valid_share, cfg.test_share, **shares)
    if cfg.split == "temporal_users":
        return temporal_users_split(inter, catalog, cfg.name, cfg.valid_share, cfg.test_share, **shares)
    return leave_one_out(inter, catalog, cfg.name, **shares)


def list_datasets(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every named dataset with its folder, whether its files are present and its published counts."""
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
    return out


def dataset_info(name: str, data_dir: str | Path | None = None, synthetic: SyntheticConfig | None = None,
                 head_share: float = 0.2, tail_share: float = 0.8) -> dict[str, Any]:
    """Load a dataset and describe it: sizes, sequence lengths, metadata, head/mid/tail items (all rows)."""
    spec = get_spec(name)
    raw = _read(spec, data_dir, synthetic)
    inter, catalog = raw.interactions, raw.catalog
    lengths = inter.sequences().lengths
    labels = popularity_labels(item_counts(inter.items, inter.num_items), head_share, tail_share)[1:]
    titled = sum(1 for t in catalog.titles[1:] if t) if catalog.titles else 0
    return {
        "name": name,
        "folder": None if spec.folder is None else str(data_root(data_dir) / spec.folder),
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
        "published": None if spec.counts is None else dict(zip(COUNT_KEYS, spec.counts, strict=True)),
    }


# ---------------------------------------------------------------- internals


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
