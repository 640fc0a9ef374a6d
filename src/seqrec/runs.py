"""Run directories of every kind: save and load through the registry of run kinds.

Each kind (`seqrec.run_kinds`) owns its files and registers itself when its module is imported; this module imports
them all, so `load_run` restores any run folder and `save_run` writes any run. Folder handling (names, claims,
atomic writes, records) lives in `seqrec.run_folders`, the trained-model files in `seqrec.model_runs`; their names
are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import seqrec.distill.run_kind
import seqrec.llm.stage_runs
import seqrec.retrieval.run_kind
import seqrec.steering.sae_run
import seqrec.steering.steered_run
import seqrec.steering.tuned_run  # noqa: F401 - every built-in kind registers itself on import
from seqrec.model_runs import (
    CATALOG,
    HISTORIES,
    ID_MAPS,
    REQUIRED,
    WEIGHTS,
    Run,
    read_run_config,
    resume_hint,
)
from seqrec.run_folders import (
    CLAIM_MARK,
    CONFIG,
    HISTORY,
    METRICS,
    check_output_dir,
    check_run_name,
    claim_mark,
    claimed_run_dir,
    clean_leftovers,
    cpu_state,
    is_claimed,
    process_alive,
    read_records,
    release_claim,
    run_status,
    unique_run_dir,
    write_atomically,
    write_records,
)
from seqrec.run_kinds import SavedRun, load_any, load_recommending, write_run

__all__ = [
    "CATALOG", "CLAIM_MARK", "CONFIG", "HISTORIES", "HISTORY", "ID_MAPS", "METRICS", "REQUIRED", "WEIGHTS", "Run",
    "check_output_dir", "check_run_name", "claim_mark", "claimed_run_dir", "clean_leftovers", "cpu_state",
    "is_claimed", "load_recommending", "load_run", "process_alive", "read_records", "read_run_config",
    "release_claim", "resume_hint", "run_status", "save_run", "unique_run_dir", "write_atomically", "write_records",
    "write_run_files",
]


def save_run(run: SavedRun, path: str | Path) -> Path:
    """Write `run`, of any registered kind, to a new directory `path` (or the folder `unique_run_dir` claimed)."""
    run.path = write_atomically(Path(path), lambda tmp: write_run_files(run, tmp))
    return run.path


def write_run_files(run: SavedRun, folder: Path) -> None:
    """Every file of a finished run, each replaced in one step, metrics.json last (it marks the run finished)."""
    write_run(run, folder)


def load_run(path: str | Path, device: str = "cpu", **options: Any) -> Any:
    """Restore the run directory at `path`, of whichever kind its run.json (or, for older runs, its files) says.

    `options` go to the kind's loader, e.g. `rebuild_index=True` re-indexes a retrieval run's stored knowledge
    base when its index file is damaged. Missing, unfinished, unknown or damaged runs are a `RunError`.
    """
    return load_any(path, device=device, **options)
