"""The Python API: train a model on a dataset, run an experiment to a run directory, load a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqrec.data.fingerprint import data_fingerprint
from seqrec.data.splits import SplitData
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.experiment import ExperimentConfig
from seqrec.model_runs import run_data
from seqrec.runs import Run, clean_leftovers, load_recommending
from seqrec.steering.controls import RecommendingRun
from seqrec.training import distributed
from seqrec.training.checkpoint import Checkpoint
from seqrec.training.config import EvalConfig, resolve_device
from seqrec.training.loggers import build_loggers
from seqrec.training.loop import Callback
from seqrec.training.trainer import EpochCallback
from seqrec.training_runs import (
    check_resumed_data,
    finish_run_dir,
    guarded,
    resumable_config,
    start_run_dir,
    training_lock,
)
from seqrec.training_runs import data_source as data_source
from seqrec.training_runs import profile_guide as profile_guide
from seqrec.training_runs import protocol as protocol
from seqrec.training_runs import retrieval_summary as retrieval_summary
from seqrec.training_runs import train as train


def run_experiment(config: ExperimentConfig, output_dir: str | Path = "runs", progress: bool = True,
                   callbacks: Sequence[EpochCallback | Callback] = ()) -> Run:
    """Load data, train, evaluate and write a new run directory under `output_dir`.

    The run folder is claimed (and checked to be writable) before the data is read; training checkpoints into it
    every `train.checkpoint_every` epochs, so an interrupted run continues with `resume(path)`. Under `torchrun`
    this joins the process group, trains data-parallel, and only rank 0 writes (other ranks return a run without
    `path`).
    """
    resolve_device(config.train.device)  # a device this machine lacks fails before anything else
    world = distributed.init_from_env(config.train.device, config.train.dist_timeout)
    try:
        run_dir = start_run_dir(config, output_dir) if world.is_main else None
        return _train_in(config, run_dir, fresh=True, progress=progress, callbacks=callbacks)
    finally:
        if world.active:
            torch.distributed.destroy_process_group()


def resume(path: str | Path, progress: bool = True, callbacks: Sequence[EpochCallback | Callback] = ()) -> Run:
    """Continue the unfinished training run at `path` from its last checkpoint, to the result an uninterrupted
    run with the same config and seed would have reached."""
    path = Path(path)
    config = resumable_config(path)
    resolve_device(config.train.device)
    world = distributed.init_from_env(config.train.device, config.train.dist_timeout)
    try:
        return _train_in(config, path, fresh=False, progress=progress, callbacks=callbacks)
    finally:
        if world.active:
            torch.distributed.destroy_process_group()


def _train_in(config: ExperimentConfig, run_dir: Path | None, fresh: bool, progress: bool,
              callbacks: Sequence[EpochCallback | Callback]) -> Run:
    """Train `config` with checkpoints in `run_dir` (None on ranks that do not write) and finish the run there."""
    from seqrec.data.registry import load as load_data

    world = distributed.current()
    checkpoint = Checkpoint(run_dir, config.train.checkpoint_every, writer=world.is_main)
    writing = run_dir if world.is_main else None
    with training_lock(writing), guarded(writing, fresh):
        if writing is not None:
            clean_leftovers(writing)
            callbacks = [*callbacks, *build_loggers(config.train.loggers, writing, config.to_dict())]
        data = load_data(config.data)
        checkpoint.data_fingerprint = data_fingerprint(data)
        if not fresh and run_dir is not None:
            check_resumed_data(run_dir, checkpoint.data_fingerprint)
        run = train(config.model, data, config.train, config.eval, data_config=config.data, progress=progress,
                    distill=config.distill, retrieval=config.retrieval, checkpoint=checkpoint, callbacks=callbacks)
        run.config.name = config.name
        if writing is not None:
            finish_run_dir(run, writing, checkpoint)
    world.barrier()  # outside the guard: a finished run is never dropped
    return run


def load(path: str | Path, device: str = "cpu") -> RecommendingRun:
    """Restore a run of any kind that recommends: a trained model (base, DuoRec, distilled, retrieval), an SAE,
    steered or tuned run; `load(path).recommender.recommend(["42"], k=10)`, `load(path).steering` for the
    per-request steering it offers, `load(path).model_run` for the trained model underneath.

    Runs that do not recommend (LLM stages) are a `RunError`; read those with `seqrec.runs.load_run`.
    """
    return load_recommending(path, device=device)


@dataclass
class RunEvaluation:
    """Metrics of a run on one split, and the protocol they were measured with."""

    metrics: dict[str, float]
    protocol: dict[str, Any]


def evaluate_run(run: RecommendingRun | str | Path, split: str = "test", mask_seen: bool | None = None,
                 ks: Sequence[int] | None = None, max_len: int | None = None, attributes: list[str] | None = None,
                 data_dir: str | None = None, data: SplitData | None = None) -> RunEvaluation:
    """Evaluate a run of any kind that recommends on its dataset's valid or test split, with the protocol it
    recorded (its recommender's `mask_seen`, the trained model's `eval.ks` and `max_len`); arguments that are not
    None override it. The data is the trained model's (`run.model_run`): re-read from its source, or `data`
    (needed for a run whose data was built in memory); either must be the data that model was trained on."""
    if split not in ("valid", "test"):
        raise SeqrecError(f"split must be valid or test, got {split!r}")
    run = load(run) if isinstance(run, str | Path) else run
    recommender, model_run = run.recommender, run.model_run
    ec = model_run.config.eval
    chosen = EvalConfig(ks=tuple(ks) if ks else ec.ks,
                        mask_seen=recommender.mask_seen if mask_seen is None else mask_seen, chunk_size=ec.chunk_size)
    max_len = recommender.max_len if max_len is None else max_len
    data = run_data(model_run, data_dir, data)
    target = getattr(data, split)
    metrics = evaluate(recommender, target, ks=chosen.ks, attributes=attributes, mask_seen=chosen.mask_seen,
                       chunk_size=chosen.chunk_size, max_len=max_len)
    used = {"dataset": data.name, "split": split, "users": len(target), "ranking": "full catalogue",
            "seen_items_masked": chosen.mask_seen, "ks": list(chosen.ks), "max_len": max_len}
    return RunEvaluation(metrics, used)
