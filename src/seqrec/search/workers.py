"""Processes that work on one study: this one, and with `jobs > 1` more on this machine (other machines join by
running the same command with the same storage)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from seqrec.errors import ConfigError, SeqrecError
from seqrec.search.backend import build_pruner, build_sampler
from seqrec.search.space import parse_space
from seqrec.search.study import Objective, StudySpec, open_study, run_trials

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass
class Job:
    """Everything a process needs to work on a study (sent to the other processes, so it holds plain data and a
    picklable `run`)."""

    study: str
    url: str
    spec: StudySpec
    trials: int
    run: Callable[..., float]  # run(trial, values) -> the trial's value
    timeout: float | None = None
    pruner: str = "median"
    startup_trials: int = 5
    warmup_epochs: int = 0
    seed: int | None = None
    threads: int = 0  # torch threads per process (0: leave torch's default)
    on_trial: Callable[[FrozenTrial], None] | None = field(default=None)

    def open(self, worker: int = 0) -> Any:
        """The study, with this process's sampler (its own seed) and the pruner."""
        seed = None if self.seed is None else self.seed + worker
        sampler = build_sampler(seed, min(10, max(1, self.trials // 2)))
        pruner = build_pruner(self.pruner, self.startup_trials, self.warmup_epochs)
        return open_study(self.study, self.url, self.spec, sampler, pruner)


def work(job: Job, worker: int = 0) -> None:
    """Run trials of the study until it holds `job.trials` or the timeout has passed."""
    if job.threads:
        torch.set_num_threads(job.threads)
    study = job.open(worker)
    space = parse_space(job.spec.space)
    run_trials(study, Objective(job.trials, space.suggest, job.run), job.timeout, job.on_trial)


def check_sendable(job: Job, jobs: int) -> None:
    """With more than one process, the job must pickle (each process gets a copy)."""
    if jobs <= 1:
        return
    try:
        pickle.dumps(job)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ConfigError(f"with jobs > 1 every process gets a copy of the search, so on_trial must be a function "
                          f"defined at module level (not a lambda or a local function): {exc}") from None


def work_in_processes(job: Job, jobs: int) -> None:
    """`work` in this process and in `jobs - 1` more; an interruption stops them all (each fails its running
    trial, which the next run redoes)."""
    if jobs <= 1:
        work(job)
        return
    check_sendable(job, jobs)
    job.threads = job.threads or max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    others = [context.Process(target=_worker, args=(job, worker), daemon=False) for worker in range(1, jobs)]
    for process in others:
        process.start()
    try:
        work(job)
    except BaseException:
        for process in others:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)  # type: ignore[arg-type]
        raise
    finally:
        for process in others:
            process.join()
    failed = [process.exitcode for process in others if process.exitcode]
    if failed:
        raise SeqrecError(f"{len(failed)} of the {jobs - 1} other search processes stopped with an error (shown "
                          "above); the trials they finished are kept, rerun the same command to continue")


def _worker(job: Job, worker: int) -> None:
    """A spawned process: one line for a user error (exit 2), 130 when interrupted."""
    try:
        work(job, worker)
    except SeqrecError as exc:
        print(f"error (search process {worker}): {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
