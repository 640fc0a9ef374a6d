"""Atomic training checkpoints: everything needed to continue a run exactly where it stopped.

`checkpoint.pt` (torch.save, loaded with `weights_only=True`) holds the weights, the optimiser, the loss terms'
state, every random-number generator, the epoch, the history and the best epoch so far; `checkpoint.json` beside it
says which epoch it holds, for messages that should not load the whole file.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.errors import RunError
from seqrec.files import write_file_atomically, write_text_atomically

CHECKPOINT, CHECKPOINT_INFO = "checkpoint.pt", "checkpoint.json"
FORMAT = 2  # the layout of the saved state: 2 = loss terms by name and the loop's callbacks


def rng_state(generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
    """Every random stream training reads: torch (CPU and CUDA), the trainer's generators, NumPy and Python."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "numpy_generator": rng.bit_generator.state,
        "numpy_global": _numpy_global_state(),
        "python": _python_state(),
    }


def restore_rng_state(state: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> None:
    """Put every random stream back to where `rng_state` read it."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["generator"])
    rng.bit_generator.state = state["numpy_generator"]
    kind, keys, pos, has_gauss, cached = state["numpy_global"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _numpy_global_state() -> list[Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


class Checkpoint:
    """The checkpoint files of one run directory; `every` epochs (0 = never), always when training stops.

    Only the writing process (rank 0 under torchrun) saves; every process can load.
    """

    def __init__(self, folder: str | Path | None, every: int = 1, writer: bool = True) -> None:
        self.folder = Path(folder) if folder is not None else Path()
        self.readable = folder is not None
        self.every = every
        self.writer = writer and folder is not None
        self.data_fingerprint: str | None = None  # of the data being trained on; recorded in checkpoint.json

    @property
    def file(self) -> Path:
        return self.folder / CHECKPOINT

    def due(self, epoch: int, stopping: bool) -> bool:
        """Whether to save after `epoch` (the same answer on every rank: the state is gathered from all)."""
        return self.every > 0 and (stopping or epoch % self.every == 0)

    def save(self, state: dict[str, Any], epoch: int, epochs: int) -> None:
        """Replace the checkpoint in one step (weights and optimiser first, then the small info file)."""
        if not self.writer:
            return
        state = {"format": FORMAT, **state}
        write_file_atomically(self.file, lambda tmp: torch.save(state, tmp))
        info = {"epoch": epoch, "epochs": epochs, "stopped": bool(state["loop"]["stopped"]),
                **({"data_fingerprint": self.data_fingerprint} if self.data_fingerprint else {})}
        write_text_atomically(self.folder / CHECKPOINT_INFO, json.dumps(info) + "\n")

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; a damaged file is a `RunError` naming it."""
        if not self.readable or not self.file.exists():
            return None
        try:
            state = torch.load(self.file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged pickle or zip
            raise RunError(f"{self.file} is damaged ({type(exc).__name__}: {str(exc)[:120]}); delete it to "
                           "train this run again from the start") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise RunError(f"{self.file} was written by another version of seqrec (checkpoint format "
                           f"{state.get('format', 1) if isinstance(state, dict) else '?'}, this version reads "
                           f"{FORMAT}); delete it to train this run again from the start")
        return state

    def remove(self) -> None:
        for name in (CHECKPOINT, CHECKPOINT_INFO):
            if (self.folder / name).exists():
                os.remove(self.folder / name)


def checkpoint_info(folder: Path) -> dict[str, Any] | None:
    """What `checkpoint.json` says (epoch, epochs, stopped, data_fingerprint), or None when absent or unreadable."""
    try:
        info = json.loads((folder / CHECKPOINT_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
