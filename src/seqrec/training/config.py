"""Optimisation and evaluation settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from seqrec.config import check_finite
from seqrec.errors import ConfigError
from seqrec.training.loggers import LOGGERS

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


@dataclass
class TrainConfig:
    """How to train: optimiser, batches, early stopping on validation NDCG@10, device."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    grad_clip: float = 0.0  # max gradient norm; 0 = off (SASRec+ on ml-1m-sas learns faster without)
    patience: int = 10  # epochs without validation improvement before stopping; 0 = never stop early
    warmup: int = 20  # early stopping never stops before this epoch (waits out an early dip)
    eval_every: int = 1  # validate every N epochs
    time_budget: float = 0.0  # stop after this many seconds of training (best epoch kept); 0 = no limit
    monitor: str = "NDCG@10"
    valid_users: int = 0  # validate on a fixed random subset of this many users; 0 = all
    length_buckets: bool = False  # batch users of similar length (less padding; learns less per epoch on ML-1M)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    threads: int = 0  # torch CPU threads; 0 = torch default
    # softmax CE over all items, exact: "chunked" (bounded memory, faster on CPU) or "full"; or "sampled" (logQ);
    # or a binary loss over sampled negatives: "bce" (original SASRec), "bpr" (one negative), "gbce" (gSASRec)
    loss: Literal["full", "chunked", "sampled", "bce", "bpr", "gbce"] = "chunked"
    loss_chunk: int = 1024  # positions per chunk of logits (loss: chunked)
    # negatives per batch (sampled: 1024) or per position (bce: 1, bpr: 1, gbce: 256); 0 = the loss's default
    negatives: int = 0
    # auto = popularity with logQ correction for sampled, uniform for bce/bpr/gbce
    negative_sampler: Literal["auto", "popularity", "uniform"] = "auto"
    gbce_t: float = 0.75  # gBCE calibration t in [0, 1]: 0 = plain BCE, 1 = fully calibrated (loss: gbce)
    checkpoint_every: int = 1  # save a checkpoint every N epochs (and when training stops); 0 = never
    dist_timeout: float = 120.0  # seconds to meet the other processes under torchrun before giving up
    compile: bool = False  # torch.compile the encoder (dynamic shapes); slower on CPU, unmeasured on GPU
    loggers: list[str] = field(default_factory=list)  # besides history.jsonl: tensorboard, mlflow (extra `track`)

    def __post_init__(self) -> None:
        check_finite(self, "train")
        for key in ("epochs", "batch_size", "eval_every", "loss_chunk"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if min(self.patience, self.warmup, self.valid_users, self.grad_clip, self.time_budget, self.threads,
               self.checkpoint_every) < 0:
            raise ConfigError("train.patience, warmup, valid_users, grad_clip, time_budget, threads and "
                              "checkpoint_every must be >= 0")
        if self.dist_timeout <= 0:
            raise ConfigError(f"train.dist_timeout must be > 0 seconds, got {self.dist_timeout}")
        check_device_name(self.device)
        unknown = [name for name in self.loggers if name not in LOGGERS]
        if unknown or len(set(self.loggers)) < len(self.loggers):
            raise ConfigError(f"train.loggers must be distinct names among {', '.join(LOGGERS)}; got {self.loggers}")
        check_loss(self)

    @property
    def negatives_used(self) -> int:
        """`negatives`, or the loss's default when it is 0."""
        return self.negatives or DEFAULT_NEGATIVES.get(self.loss, 0)

    @property
    def sampler_used(self) -> str:
        """`negative_sampler`, with auto resolved: popularity for sampled softmax, uniform otherwise."""
        if self.negative_sampler != "auto":
            return self.negative_sampler
        return "popularity" if self.loss == "sampled" else "uniform"


LOSSES = ("full", "chunked", "sampled", "bce", "bpr", "gbce")
DEFAULT_NEGATIVES = {"sampled": 1024, "bce": 1, "bpr": 1, "gbce": 256}


def check_loss(cfg: TrainConfig) -> None:
    """The loss and its negative-sampling settings agree."""
    if cfg.loss not in LOSSES:
        raise ConfigError(f"train.loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    if cfg.negative_sampler not in ("auto", "popularity", "uniform"):
        raise ConfigError(f"train.negative_sampler must be auto, popularity or uniform, got {cfg.negative_sampler!r}")
    if cfg.negatives < 0:
        raise ConfigError(f"train.negatives must be >= 0 (0 = the loss's default), got {cfg.negatives}")
    if cfg.loss == "bpr" and cfg.negatives not in (0, 1):
        raise ConfigError(f"train.loss bpr compares each target with one negative; train.negatives is "
                          f"{cfg.negatives} (set it to 1, or use train.loss: bce or gbce for several)")
    if not 0.0 <= cfg.gbce_t <= 1.0:
        raise ConfigError(f"train.gbce_t must be in [0, 1], got {cfg.gbce_t}")
    if cfg.loss == "gbce" and cfg.negative_sampler == "popularity":
        raise ConfigError("train.loss gbce calibrates for uniformly sampled negatives; set train.negative_sampler "
                          "to uniform (or auto)")
    if cfg.loss == "gbce" and cfg.negatives_used < 1:
        raise ConfigError("train.loss gbce needs train.negatives >= 1")


@dataclass
class EvalConfig:
    """How to evaluate: cut-offs, seen-item masking, user chunk size."""

    ks: tuple[int, ...] = (5, 10, 20, 50)
    mask_seen: bool = True
    chunk_size: int = 1024

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"eval.ks must be positive cut-offs, got {self.ks}")
        if self.chunk_size < 1:
            raise ConfigError("eval.chunk_size must be >= 1")


def check_device_name(name: str) -> None:
    """`auto` or a device string torch understands (cpu, cuda, cuda:1, mps, ...); availability is checked later."""
    if name == "auto":
        return
    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in DEVICE_TYPES:
        raise ConfigError(f"train.device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps")


def resolve_device(name: str) -> torch.device:
    """The torch device of `train.device`; a device this machine lacks is a `ConfigError`, not a torch crash."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"train.device {name!r} is not available: this machine has {count} CUDA device(s); "
                              "use auto or cpu")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device {name!r} is not available on this machine; use auto or cpu")
    elif device.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ConfigError(f"train.device {name!r} is not available on this machine; use auto or cpu")
    return device
