"""Which dataset to load (a named one, or the user's own file or folder) and how to filter and split it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from seqrec.config import check_finite
from seqrec.data.synthetic import SyntheticConfig
from seqrec.errors import ConfigError, suggest

SplitName = Literal["loo", "temporal", "temporal_users", "predefined"]
TimestampKind = Literal["auto", "seconds", "milliseconds", "iso"]
DuplicatePolicy = Literal["keep", "first", "last"]
TABLE_FORMATS = ("csv", "tsv", "parquet", "jsonl")  # read with pyarrow, columns chosen by `columns`
FILE_FORMATS = ("sasrec", "s3rec", "recbole", "movielens", "rechorus", "amazon2023")  # fixed layouts
FORMATS = TABLE_FORMATS + FILE_FORMATS
FRAME_FORMAT = "dataframe"  # recorded for data built in memory (`seqrec.datasets.from_frame`)
COLUMN_ROLES = ("user", "item", "timestamp", "rating")


@dataclass
class ItemsConfig:
    """An item metadata file: ids, titles and attribute columns (multi-valued: lists or `separator`-joined)."""

    path: str = ""
    format: str | None = None  # None: from the extension (csv, tsv, parquet, jsonl)
    id: str | None = None  # default: the first of item_id/itemId/item/iid/product_id/movieId/parent_asin present
    title: str | None = None  # default: title/name/movie_title when present
    attributes: list[str] = field(default_factory=list)  # columns that become item attributes (e.g. genres)
    separator: str = "|"  # splits string attribute values: "Comedy|Drama"
    new_items: bool = False  # items of the file without interactions join the catalogue (cold start)

    def __post_init__(self) -> None:
        if not str(self.path).strip():
            raise ConfigError("data.items.path must name the item file (csv, tsv, parquet or jsonl)")
        if self.format is not None and self.format not in TABLE_FORMATS:
            raise ConfigError(f"data.items.format must be one of {suggest(TABLE_FORMATS)}; got {self.format!r}")
        if not self.separator:
            raise ConfigError("data.items.separator must not be empty")
        if not isinstance(self.attributes, list) or not all(isinstance(a, str) and a for a in self.attributes):
            raise ConfigError(f"data.items.attributes must be a list of column names; got {self.attributes!r}")


@dataclass
class DataConfig:
    """Dataset selection, filtering and split. `split: predefined` uses a split shipped with the files.

    `name` picks a named dataset; `path` reads the user's own file or folder instead (then `name` is only a
    label, by default the file's stem). `format` None detects it from the extension or the folder's files.
    """

    name: str | None = None  # default: "synthetic", or the stem of `path`
    data_dir: str | None = None  # data root; default: $SEQREC_DATA, else ./data
    path: str | None = None  # the user's interaction file or folder
    format: str | None = None  # csv, tsv, parquet, jsonl, sasrec, s3rec, recbole, movielens, rechorus, amazon2023
    columns: dict[str, str] = field(default_factory=dict)  # user/item/timestamp/rating -> the file's column names
    timestamp: TimestampKind = "auto"  # numbers: unix seconds or milliseconds; strings: ISO 8601
    min_rating: float | None = None  # keep rows with rating >= this
    duplicates: DuplicatePolicy = "keep"  # repeated (user, item) pairs: keep all, or the first / last in time
    items: ItemsConfig | None = None  # item metadata file for `path`
    split: SplitName = "loo"
    min_user_interactions: int = 0  # k-core filter (0 = off)
    min_item_interactions: int = 0
    valid_share: float = 0.1  # temporal: share of time; temporal_users: share of training users
    test_share: float = 0.1
    head_share: float = 0.2  # popularity labels: cumulative interaction share of the head
    tail_share: float = 0.8
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        check_finite(self, "data")
        if self.split not in ("loo", "temporal", "temporal_users", "predefined"):
            raise ConfigError(f"data.split must be one of loo, temporal, temporal_users, predefined; "
                              f"got {self.split!r}")
        if not 0 < self.valid_share < 1 or not 0 < self.test_share < 1:
            raise ConfigError("data.valid_share and data.test_share must be in (0, 1)")
        if self.path is not None and not str(self.path).strip():
            raise ConfigError("data.path must name a file or folder; leave it out to use a named dataset")
        if self.name is None or not str(self.name).strip():
            self.name = Path(self.path).name.split(".")[0] or "data" if self.path else "synthetic"
        self._check_source_options()

    def _check_source_options(self) -> None:
        if self.columns is None:
            self.columns = {}
        if self.format is not None and self.format not in (*FORMATS, FRAME_FORMAT):
            raise ConfigError(f"data.format must be one of {suggest(FORMATS)} (or leave it out to detect it); "
                              f"got {self.format!r}")
        if not isinstance(self.columns, dict) or not all(isinstance(v, str) and v for v in self.columns.values()):
            raise ConfigError(f"data.columns must map roles to column names, e.g. {{user: uid, item: sku}}; "
                              f"got {self.columns!r}")
        unknown = set(self.columns) - set(COLUMN_ROLES)
        if unknown:
            raise ConfigError(f"unknown key data.columns.{sorted(unknown)[0]}; valid keys: {suggest(COLUMN_ROLES)}")
        if self.timestamp not in ("auto", "seconds", "milliseconds", "iso"):
            raise ConfigError(f"data.timestamp must be one of auto, iso, milliseconds, seconds; got {self.timestamp!r}")
        if self.duplicates not in ("keep", "first", "last"):
            raise ConfigError(f"data.duplicates must be one of first, keep, last; got {self.duplicates!r}")
        if self.items is not None and self.path is None and self.format != FRAME_FORMAT:
            raise ConfigError("data.items needs data.path (the interaction file the items belong to)")
