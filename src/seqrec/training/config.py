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
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    patience: int = 10  # epochs without validation improvement before stopping; 0 = never stop early
    warmup: int = 0  # early stopping never stops before this epoch (waits out an early dip)
    eval_every: int = 1  # validate every N epochs
    time_budget: float = 0.0  # stop after this many seconds of training (best epoch kept); 0 = no limit
    monitor: str = "NDCG@10"
    valid_users: int = 0  # validate on a fixed random subset of this many users; 0 = all
    length_buckets: bool = False  # batch users of similar length (less padding; learns less per epoch on ML-1M)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    threads: int = 0  # torch CPU threads; 0 = torch default
    # softmax CE over all items, exact: "chunked" (bounded memory, faster on CPU) or "full"; or "sampled" (logQ)
    loss: Literal["full", "chunked", "sampled"] = "chunked"
    loss_chunk: int = 1024  # positions per chunk of logits (loss: chunked)
    negatives: int = 1024  # shared negatives per batch (loss: sampled)
    negative_sampler: Literal["popularity", "uniform"] = "popularity"  # with logQ correction (loss: sampled)
    checkpoint_every: int = 1  # save a checkpoint every N epochs (and when training stops); 0 = never
    dist_timeout: float = 120.0  # seconds to meet the other processes under torchrun before giving up
    compile: bool = False  # torch.compile the encoder (dynamic shapes); slower on CPU, unmeasured on GPU
    loggers: list[str] = field(default_factory=list)  # besides history.jsonl: tensorboard, mlflow (extra `track`)

    def __post_init__(self) -> None:
        check_finite(self, "train")
        for key in ("epochs", "batch_size", "eval_every", "loss_chunk", "negatives"):
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
        if self.loss not in ("full", "chunked", "sampled"):
            raise ConfigError(f"train.loss must be full, chunked or sampled, got {self.loss!r}")
        if self.negative_sampler not in ("popularity", "uniform"):
            raise ConfigError(f"train.negative_sampler must be popularity or uniform, got {self.negative_sampler!r}")


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
