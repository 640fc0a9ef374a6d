"""Data-parallel context: one process per device under `torchrun` (NCCL on GPU, gloo on CPU).

A single process is the special case world = 1, rank = 0, where every reduction is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's share of one global batch (every rank sees the same `rows`)."""
        return rows[self.rank :: self.world]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a copy; the identity for one process)."""
        tensor = tensor.clone()
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def weighted_mean(self, values: dict[str, float], count: int, device: torch.device) -> dict[str, float]:
        """Mean over ranks of per-rank means, weighted by each rank's `count`."""
        if not self.active:
            return values
        keys = sorted(values)
        packed = torch.tensor([values[k] * count for k in keys] + [count], dtype=torch.float64, device=device)
        packed = self.sum(packed)
        return {k: (packed[i] / packed[-1]).item() for i, k in enumerate(keys)}

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is True on any rank (keeps stopping decisions in step)."""
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0) if self.active else flag

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def current() -> Distributed:
    """The running process group, or the single-process context."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size())
    return Distributed()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Distributed:
    """Join the process group that `torchrun` describes in the environment; pick this rank's GPU."""
    if not launched_by_torchrun() or dist.is_initialized():
        return current()
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return current()


def rank_device(device: torch.device) -> torch.device:
    """Under DDP on GPU, each rank trains on its own local GPU."""
    if device.type == "cuda" and dist.is_initialized() and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
