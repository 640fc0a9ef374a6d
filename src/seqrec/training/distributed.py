"""Data-parallel context: one process per device under `torchrun` (NCCL on GPU, gloo on CPU).

A single process is the special case world = 1, rank = 0, where every reduction is the identity.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from seqrec.errors import ConfigError


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

    def gather_objects(self, obj: object) -> list[object]:
        """`obj` of every rank, in rank order (a one-item list for one process)."""
        if not self.active:
            return [obj]
        out: list[object] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

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


def init_from_env(device: str = "auto", timeout: float = 120.0) -> Distributed:
    """Join the process group that `torchrun` describes in the environment; pick this rank's GPU.

    Meeting the other processes may take at most `timeout` seconds: a leftover WORLD_SIZE without peers is a
    `ConfigError`, not a silent 30-minute wait. Collectives keep torch's default timeout.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return current()
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    env = {k: os.environ.get(k, "") for k in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")}
    try:
        if env["RANK"] != "0" or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            _wait_for_store(env["MASTER_ADDR"], env["MASTER_PORT"], timeout)  # quietly, before torch retries loudly
        store, rank, world = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))
    except (RuntimeError, ValueError, OSError, TimeoutError) as exc:  # DistStoreError etc. are RuntimeErrors
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        described = ", ".join(f"{k}={v or '(unset)'}" for k, v in env.items())
        raise ConfigError(f"could not meet the other processes within {timeout:g} s ({described}): {reason}. "
                          "Outside torchrun, unset WORLD_SIZE and RANK; in a torchrun job whose processes start "
                          "slowly, raise train.dist_timeout") from None
    store.set_timeout(timedelta(minutes=30))  # torch's default for collectives, e.g. while rank 0 evaluates
    dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world)
    return current()


def _wait_for_store(address: str, port: str, timeout: float) -> None:
    """Return once rank 0's rendezvous store accepts connections; `TimeoutError` after `timeout` seconds."""
    if not address or not port.isdigit():
        raise ValueError("MASTER_ADDR and MASTER_PORT must name rank 0's address and port")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, int(port)), timeout=max(0.1, min(2.0, timeout))).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {address}:{port} ({exc.strerror or exc})") from None
            time.sleep(0.25)


def rank_device(device: torch.device) -> torch.device:
    """Under DDP on GPU, each rank trains on its own local GPU."""
    if device.type == "cuda" and dist.is_initialized() and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
