"""Which dataset to load and how to filter and split it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqrec.config import check_finite
from seqrec.data.synthetic import SyntheticConfig

SplitName = Literal["loo", "temporal", "temporal_users", "predefined"]


@dataclass
class DataConfig:
    """Dataset selection, filtering and split. `split: predefined` uses a split shipped with the files."""

    name: str = "synthetic"
    data_dir: str | None = None  # data root; default: $SEQREC_DATA, else ./data
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
        from seqrec.errors import ConfigError

        if self.split not in ("loo", "temporal", "temporal_users", "predefined"):
            raise ConfigError(f"data.split must be one of loo, temporal, temporal_users, predefined; "
                              f"got {self.split!r}")
        if not 0 < self.valid_share < 1 or not 0 < self.test_share < 1:
            raise ConfigError("data.valid_share and data.test_share must be in (0, 1)")
