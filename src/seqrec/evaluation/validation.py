"""Validation during training: ranking metrics on the valid split, each process scoring its share of users."""

from __future__ import annotations

import numpy as np

from seqrec.data.splits import EvalSplit
from seqrec.errors import ConfigError, suggest
from seqrec.evaluation.evaluate import evaluate
from seqrec.evaluation.metrics import ACCURACY
from seqrec.models.base import SequentialEncoder
from seqrec.training import distributed
from seqrec.training.config import EvalConfig, TrainConfig, resolve_device


def monitor_k(monitor: str) -> int:
    """The cut-off of `train.monitor` (NAME@k with NAME an accuracy metric), or a `ConfigError`."""
    name, _, k = monitor.partition("@")
    if name not in ACCURACY or not k.isdigit() or int(k) < 1:
        raise ConfigError(f"train.monitor must be a validation accuracy metric at a cut-off, one of "
                          f"{suggest([f'{n}@k' for n in ACCURACY])} (e.g. NDCG@10); got {monitor!r}")
    return int(k)


class RankingValidation:
    """`validate(model) -> {metric@k: value}` on the valid split (a fixed random subset when asked), averaged over
    processes; the monitor's cut-off is always computed, even when `eval.ks` lacks it."""

    def __init__(self, valid: EvalSplit, config: TrainConfig, eval_config: EvalConfig | None = None) -> None:
        self.eval_config = eval_config or EvalConfig()
        self.ks = tuple(sorted({*self.eval_config.ks, monitor_k(config.monitor)}))
        self.dist = distributed.current()
        self.device = distributed.rank_device(resolve_device(config.device))
        self.split = self._users(valid, config)

    def _users(self, valid: EvalSplit, config: TrainConfig) -> EvalSplit:
        """The validation users of this process: a fixed random subset when asked, sharded across processes."""
        n = config.valid_users
        rows = np.arange(len(valid))
        if 0 < n < len(valid):
            rows = np.sort(np.random.default_rng(config.seed).choice(len(valid), n, replace=False))
        rows = self.dist.shard(rows)
        if len(rows) == len(valid):
            return valid
        return EvalSplit(valid.name, valid.users[rows], valid.histories.take(rows), valid.targets[rows],
                         valid.num_items, valid.item_stats, valid.catalog)

    def __call__(self, model: SequentialEncoder) -> dict[str, float]:
        ec = self.eval_config
        metrics = evaluate(model, self.split, ks=self.ks, metrics="accuracy", mask_seen=ec.mask_seen,
                           chunk_size=ec.chunk_size)
        return self.dist.weighted_mean(metrics, len(self.split), self.device)
