"""The Python API: train a model on a dataset, run an experiment to a run directory, load a run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqrec.data.config import FRAME_FORMAT, DataConfig
from seqrec.data.fingerprint import data_fingerprint
from seqrec.data.splits import SplitData
from seqrec.distill import DistillConfig, ProfileGuide, load_profile_table
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.evaluation.validation import RankingValidation
from seqrec.experiment import ExperimentConfig
from seqrec.model_runs import load_model_run, run_data
from seqrec.models.base import ModelConfig, SequentialEncoder, build_model
from seqrec.recommender import Recommender
from seqrec.retrieval.augmented import RetrievalAugmented
from seqrec.retrieval.config import RetrievalConfig
from seqrec.retrieval.setup import from_base_run
from seqrec.run_folders import DATA_FINGERPRINT
from seqrec.runs import Run, clean_leftovers
from seqrec.training import distributed
from seqrec.training.checkpoint import Checkpoint
from seqrec.training.config import EvalConfig, TrainConfig, resolve_device
from seqrec.training.loggers import build_loggers
from seqrec.training.loop import Callback
from seqrec.training.trainer import EpochCallback, Trainer, seed_everything
from seqrec.training_runs import (
    check_resumed_data,
    finish_run_dir,
    guarded,
    resumable_config,
    start_run_dir,
    training_lock,
)

log = logging.getLogger(__name__)


def train(model: ModelConfig, data: SplitData, train_config: TrainConfig | None = None,
          eval_config: EvalConfig | None = None, data_config: DataConfig | None = None,
          progress: bool = True, distill: DistillConfig | None = None,
          retrieval: RetrievalConfig | None = None, checkpoint: Checkpoint | None = None,
          callbacks: Sequence[EpochCallback | Callback] = ()) -> Run:
    """Train `model` on `data`, restore the best validation epoch and report valid + test metrics.

    With `distill.profiles`, the first phase adds the profile-reconstruction loss (the served model is the
    plain encoder). With `retrieval.base_run`, the base run's encoder is fine-tuned with retrieval augmentation
    (its model config replaces `model`). Inside a process group every rank trains its share; only rank 0
    computes the final metrics. With `checkpoint`, training resumes from it when it holds a state and saves to it.
    The run records its data's resolved source (`config.data`: `data.source`, else `data_config`, else a
    `format: dataframe` config for data built in memory) and fingerprint (`protocol.data_fingerprint`).
    """
    train = train_config or TrainConfig()
    ec = eval_config or EvalConfig()
    distill = distill or DistillConfig()
    retrieval = retrieval or RetrievalConfig()
    if train.threads:
        torch.set_num_threads(train.threads)
    seed_everything(train.seed)
    if retrieval.enabled:
        encoder: SequentialEncoder = from_base_run(retrieval, model, data)
        model = encoder.config
    else:
        encoder = build_model(model, data.num_items)
    guide = profile_guide(distill, encoder, data)
    validate = RankingValidation(data.valid, train, ec)
    result = Trainer(encoder, data, train, validate=validate, terms=[guide] if guide is not None else [],
                     callbacks=callbacks, progress=progress).fit(checkpoint)
    recommender = Recommender(result.model, data.user_map, data.item_map, data.full_histories, data.catalog,
                              mask_seen=ec.mask_seen)
    source = data_source(data, data_config)
    config = ExperimentConfig(data=source, model=model, train=train, eval=ec, distill=distill, retrieval=retrieval)
    if not distributed.current().is_main:
        return Run(config, recommender, {}, result.history)
    metrics = {
        "valid": evaluate(recommender, data.valid, ks=ec.ks, mask_seen=ec.mask_seen, chunk_size=ec.chunk_size),
        "test": evaluate(recommender, data.test, ks=ec.ks, mask_seen=ec.mask_seen, chunk_size=ec.chunk_size),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 2),
        "protocol": protocol(data, model, ec, source),
    }
    if retrieval.enabled:
        metrics["retrieval"] = retrieval_summary(encoder)  # type: ignore[arg-type]
    if guide is not None:
        trained = torch.from_numpy(data.train.lengths >= 2)
        metrics["distill"] = {"train_users": int(trained.sum()), "profile_dim": int(guide.profiles.shape[2]),
                              "profiled_train_users": int(guide.present.any(dim=1).cpu()[trained].sum())}
    return Run(config, recommender, metrics, result.history)


def data_source(data: SplitData, given: DataConfig | None) -> DataConfig:
    """Where `data` can be read again: the source its loader recorded, else the config it was loaded from, else
    a `format: dataframe` config that says it was built in memory."""
    return getattr(data, "source", None) or given or DataConfig(name=data.name, format=FRAME_FORMAT)


def retrieval_summary(model: RetrievalAugmented) -> dict:
    """Knowledge base size and trainable parameters of a retrieval-augmented run."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"knowledge_base": len(model.knowledge) if model.knowledge is not None else 0,
            "trainable_parameters": trainable, "base_run": model.retrieval.base_run}


def profile_guide(config: DistillConfig, model: SequentialEncoder, data: SplitData) -> ProfileGuide | None:
    """The profile head of `config` for `model`, with the profile files aligned to the dataset's users."""
    if not config.enabled:
        return None
    table = load_profile_table(config.profiles, data.user_map, config.dim)
    trained = data.train.lengths >= 2
    missing = int((trained & ~table.has_profile).sum())
    if missing:
        log.warning("%d of %d training users have no profile; the profile loss skips them", missing, trained.sum())
    return ProfileGuide(config, model, table)


def protocol(data: SplitData, model: ModelConfig, eval_config: EvalConfig, data_config: DataConfig | None) -> dict:
    """What the numbers mean: dataset, split, ranking, masking (reported next to every metric), and the data's
    fingerprint, which every later stage checks."""
    return {
        "dataset": data.name,
        "split": data_config.split if data_config else "loo",
        "users": data.num_users,
        "items": data.num_items,
        "valid_users": len(data.valid),
        "test_users": len(data.test),
        "ranking": "full catalogue",
        "seen_items_masked": eval_config.mask_seen,
        "ks": list(eval_config.ks),
        "max_len": model.max_len,
        "processes": distributed.current().world,
        DATA_FINGERPRINT: data_fingerprint(data),
    }


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


def load(path: str | Path, device: str = "cpu") -> Run:
    """Restore a trained model's run directory; `load(path).recommender.recommend(["42"], k=10)`.

    Runs of other kinds (SAE, tuned, LLM stages) load with `seqrec.runs.load_run`.
    """
    return load_model_run(path, device=device)


@dataclass
class RunEvaluation:
    """Metrics of a run on one split, and the protocol they were measured with."""

    metrics: dict[str, float]
    protocol: dict[str, Any]


def evaluate_run(run: Run | str | Path, split: str = "test", mask_seen: bool | None = None,
                 ks: Sequence[int] | None = None, max_len: int | None = None, attributes: list[str] | None = None,
                 data_dir: str | None = None, data: SplitData | None = None) -> RunEvaluation:
    """Evaluate a run on its dataset's valid or test split with the protocol it recorded (`eval.mask_seen`,
    `eval.ks`, the model's `max_len`); arguments that are not None override it. The data is re-read from the
    run's source, or `data` (needed for a run whose data was built in memory); either must be the data the run
    was trained on."""
    if split not in ("valid", "test"):
        raise SeqrecError(f"split must be valid or test, got {split!r}")
    run = run if isinstance(run, Run) else load_model_run(run)
    ec = run.config.eval
    chosen = EvalConfig(ks=tuple(ks) if ks else ec.ks, mask_seen=ec.mask_seen if mask_seen is None else mask_seen,
                        chunk_size=ec.chunk_size)
    max_len = run.model.max_len if max_len is None else max_len
    data = run_data(run, data_dir, data)
    target = getattr(data, split)
    metrics = evaluate(run.recommender, target, ks=chosen.ks, attributes=attributes, mask_seen=chosen.mask_seen,
                       chunk_size=chosen.chunk_size, max_len=max_len)
    used = {"dataset": data.name, "split": split, "users": len(target), "ranking": "full catalogue",
            "seen_items_masked": chosen.mask_seen, "ks": list(chosen.ks), "max_len": max_len}
    return RunEvaluation(metrics, used)
