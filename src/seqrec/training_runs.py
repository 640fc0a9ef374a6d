"""Training runs: a model trained on a dataset and measured in memory (`train`), and a training run directory from
start to finish: claimed and given its config before any data is read, checkpointed while training, finished in
place (metrics.json last), kept for `--resume` when interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from seqrec.data.config import FRAME_FORMAT, DataConfig
from seqrec.data.fingerprint import data_fingerprint, short
from seqrec.data.splits import SplitData
from seqrec.distill import DistillConfig, ProfileGuide, load_profile_table
from seqrec.errors import DataError, Interrupted, NonFiniteError, RunError
from seqrec.evaluation.evaluate import evaluate
from seqrec.evaluation.validation import RankingValidation
from seqrec.experiment import ExperimentConfig
from seqrec.files import current_umask, host_name, write_text_atomically
from seqrec.models.base import ModelConfig, SequentialEncoder, build_model
from seqrec.recommender import Recommender
from seqrec.retrieval.augmented import RetrievalAugmented
from seqrec.retrieval.config import RetrievalConfig
from seqrec.retrieval.setup import from_base_run
from seqrec.run_folders import DATA_FINGERPRINT
from seqrec.run_kinds import with_kind
from seqrec.runs import (
    CONFIG,
    Run,
    check_run_name,
    clean_leftovers,
    cpu_state,
    process_alive,
    read_run_config,
    release_claim,
    resume_hint,
    run_status,
    unique_run_dir,
    write_run_files,
)
from seqrec.training import distributed
from seqrec.training.checkpoint import CHECKPOINT_INFO, Checkpoint, checkpoint_info
from seqrec.training.config import EvalConfig, TrainConfig
from seqrec.training.loop import Callback
from seqrec.training.trainer import EpochCallback, Trainer, seed_everything

log = logging.getLogger(__name__)
LOCK = ".seqrec-lock"  # inside a run folder while a process trains it: "<host> <pid>"
_created: dict[Path, list[Path]] = {}  # run folder -> the parent folders this process made for it, innermost first


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
        encoder = build_model(model, data.num_items, data.catalog)
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


def start_run_dir(config: ExperimentConfig, output_dir: str | Path) -> Path:
    """Claim a new run folder under `output_dir` and write the config into it (fails in the first second)."""
    check_run_name(config.run_name)
    made = _make_parents(Path(output_dir))
    target = unique_run_dir(output_dir, config.run_name)
    _created[target] = made
    config.name = target.name
    write_text_atomically(target / CONFIG, yaml.safe_dump(with_kind(config.kind, config.to_dict()), sort_keys=False))
    release_claim(target)  # from now on config.yaml marks it as a run in progress
    return target


def _make_parents(folder: Path) -> list[Path]:
    """Create the missing folders down to `folder`; the ones this process created, innermost first."""
    made = []
    for parent in reversed([folder, *folder.parents]):
        try:
            parent.mkdir()
            made.append(parent)
        except FileExistsError:
            continue
        except OSError:
            break  # check_output_dir reports it
    return made[::-1]


def resumable_config(path: str | Path) -> ExperimentConfig:
    """The config of an unfinished training run with a checkpoint at `path`; clear errors for anything else."""
    path = Path(path)
    status = run_status(path) if path.is_dir() else "missing"
    if status == "missing":
        raise RunError(f"{path} is not a training run to resume (no {CONFIG}); start one with `seqrec train CONFIG`")
    if status == "finished":
        raise RunError(f"{path} has already finished (metrics.json is written); nothing to resume")
    if checkpoint_info(path) is None:
        raise RunError(f"{path} has no training checkpoint ({CHECKPOINT_INFO}), so there is nothing to resume: it "
                       "is not a seqrec training run, or it stopped before its first checkpoint; start a new run with "
                       "`seqrec train CONFIG`")
    return read_run_config(path)


def check_resumed_data(run_dir: Path, fingerprint: str) -> None:
    """Refuse to resume `run_dir` on other data than its checkpoint was trained on (checkpoints written before
    fingerprints were recorded are resumed unchecked)."""
    recorded = (checkpoint_info(run_dir) or {}).get("data_fingerprint")
    if isinstance(recorded, str) and recorded != fingerprint:
        raise DataError(f"{run_dir} started training on other data than its data source holds now (data "
                        f"fingerprint {short(recorded)} in its checkpoint, {short(fingerprint)} now): the data "
                        "changed since the run started; restore it to resume, or start a new run")


@contextlib.contextmanager
def training_lock(run_dir: Path | None) -> Iterator[None]:
    """Hold the run folder's lock while training it, so two processes never train the same run (a lock left by a
    process of this machine that no longer runs is taken over)."""
    if run_dir is None:
        yield
        return
    mine = f"{host_name()} {os.getpid()}"
    file = run_dir / LOCK
    while True:
        try:
            fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            host, _, pid = file.read_text().partition(" ") if file.exists() else ("", "", "")
            if host == host_name() and pid.strip().isdigit() and not process_alive(int(pid)):
                file.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise RunError(f"{run_dir} is being trained by process {pid.strip() or '?'} on {host or '?'}; wait "
                           f"for it to finish, or delete {file} if no such process is running") from None
    os.write(fd, mine.encode())
    os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if file.read_text() == mine:
                file.unlink()


@contextlib.contextmanager
def guarded(run_dir: Path | None, fresh: bool) -> Iterator[None]:
    """Turn an interruption into a message that says how to continue; drop a fresh run folder that holds
    nothing worth keeping (no checkpoint yet, or training that diverged). A finished run is never dropped."""
    try:
        yield
    except KeyboardInterrupt:
        if run_dir is None:
            raise
        if run_status(run_dir) == "finished":
            raise Interrupted(f"interrupted after the run was written to {run_dir}") from None
        if fresh and checkpoint_info(run_dir) is None:
            discard(run_dir)
            raise Interrupted("interrupted before the first checkpoint; no run directory was written") from None
        raise Interrupted(f"interrupted; {resume_hint(run_dir)}") from None
    except BaseException as exc:
        if run_dir is not None and fresh and run_status(run_dir) != "finished" and (
                checkpoint_info(run_dir) is None or isinstance(exc, NonFiniteError)):
            discard(run_dir)
        raise


def discard(run_dir: Path) -> None:
    """Remove a fresh run folder, and the parent folders this process made for it when they are left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in _created.pop(run_dir, []):
        with contextlib.suppress(OSError):
            parent.rmdir()


def finish_run_dir(run: Run, run_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write the finished run's files into its folder, then drop the checkpoint.

    A failing write (a full disk) keeps the trained weights and says where: the checkpoint when there is one,
    else a rescue file beside the run folder or in the temporary folder.
    """
    clean_leftovers(run_dir)  # e.g. a checkpoint write cut short by SIGKILL
    try:
        write_run_files(run, run_dir)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if checkpoint.every and checkpoint.file.exists():
            raise RunError(f"could not write the finished run into {run_dir} ({reason}); the trained model is kept "
                           f"in {checkpoint.file}: make room, then `seqrec train --resume {run_dir}` writes the run "
                           "without training again") from None
        rescued = rescue_weights(run, run_dir)
        kept = f"the trained weights are kept in {rescued}" if rescued else "the weights could not be saved anywhere"
        raise RunError(f"could not write the finished run into {run_dir} ({reason}); {kept}") from None
    checkpoint.remove()
    run.path = run_dir
    return run_dir


def rescue_weights(run: Run, run_dir: Path) -> Path | None:
    """Save the best weights wherever there is room: beside the run folder (which is not kept), else in the
    temporary folder."""
    for folder in (run_dir.parent, Path(tempfile.gettempdir())):
        target = folder / f"rescued-{run_dir.name}-{os.getpid()}.safetensors"
        try:
            save_file(cpu_state(run.model), str(target))
            os.chmod(target, 0o666 & ~current_umask())  # safetensors creates it as 0600
            return target
        except OSError:
            target.unlink(missing_ok=True)
    return None
