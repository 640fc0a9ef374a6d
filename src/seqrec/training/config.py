"""Optimisation and evaluation settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from seqrec.errors import ConfigError


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
    compile: bool = False  # torch.compile the encoder (dynamic shapes); slower on CPU, unmeasured on GPU

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_every", "loss_chunk", "negatives"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if min(self.patience, self.valid_users, self.grad_clip, self.time_budget) < 0:
            raise ConfigError("train.patience, valid_users, grad_clip and time_budget must be >= 0")
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
