"""The RecFTT workflow on run directories: sweep the SAE's latents for attributes, choose the regulating latents,
tune a controller toward (or away from) attributes, and report base vs tuned."""

from __future__ import annotations

import json
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqrec.data.splits import SplitData
from seqrec.errors import RunError, SeqrecError
from seqrec.model_runs import run_data
from seqrec.run_folders import unique_run_dir
from seqrec.steering.activations import training_instances
from seqrec.steering.attributes import attribute_matrix
from seqrec.steering.latent_sweep import (
    DEFAULT_SCALES,
    LatentSweep,
    choose_latents,
    controller_path,
    file_stem,
    latent_sweep,
    load_sweep,
    save_sweep,
)
from seqrec.steering.sae_run import SAERun, load_sae_run
from seqrec.steering.tuned_run import TunedRun, save_tuned_run
from seqrec.steering.tuning import Instances, LatentController, SplitVectors, TuneConfig, TuningTask, fit_controller

REPORT_KS = (5, 10, 20, 50)


def _sae_run(sae_run: SAERun | str | Path) -> SAERun:
    return load_sae_run(sae_run) if isinstance(sae_run, str | Path) else sae_run


def sweep_latents(sae_run: SAERun | str | Path, attributes: list[str], data: SplitData | None = None,
                  split: str = "valid", scales: tuple[float, ...] = DEFAULT_SCALES, top: int = 100,
                  save: bool = True) -> LatentSweep:
    """Latent × attribute contribution scores on `split`'s users (no targets are read), saved in the SAE run."""
    sae_run = _sae_run(sae_run)
    if split not in ("valid", "test"):
        raise SeqrecError(f"the sweep runs on the valid or test users; got {split!r}")
    data = run_data(sae_run.base, data=data)
    eval_split = getattr(data, split)
    membership = attribute_matrix(eval_split.catalog, attributes)
    model = sae_run.base.model.eval()
    sweep = latent_sweep(model, sae_run.sae.to(model.device), eval_split, list(attributes), membership, scales, top,
                         mask_seen=sae_run.base.config.eval.mask_seen)
    if save and sae_run.path is not None:
        counts = {a: int(membership[:, i].sum()) for i, a in enumerate(attributes)}
        save_sweep(sweep, unique_run_dir(sae_run.path, f"latent-sweep-{split}"), counts)
    return sweep


def find_sweep(sae_run: SAERun, attributes: list[str], use_choose: bool = True) -> LatentSweep | None:
    """The saved sweep of this SAE run to tune `attributes` from: the newest one where `sae choose` wrote a
    controller file for every attribute (when `use_choose`), else the newest that measured every one of them."""
    if sae_run.path is None:
        return None
    folders = sorted(sae_run.path.glob("latent-sweep-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    covering = []
    for folder in folders:
        try:
            sweep = load_sweep(folder, sae_run.sae.latents)
        except RunError:
            continue
        if set(attributes) <= set(sweep.attributes):
            covering.append(sweep)
    chosen = [s for s in covering if use_choose and all(controller_file(s, a) is not None for a in attributes)]
    return (chosen or covering or [None])[0]


def controller_file(sweep: LatentSweep, attribute: str) -> Path | None:
    """`sae choose`'s controller_<attribute>.json in the sweep's folder, if it wrote one."""
    if sweep.path is None:
        return None
    file = controller_path(sweep.path, attribute)
    return file if file.is_file() else None


def read_controller_file(file: Path, latents: int) -> list[int]:
    """The latent ids of a controller file ({"comment", "ablations": [ids]}); damaged files raise RunError."""
    try:
        ids = json.loads(file.read_text())["ablations"]
        if not isinstance(ids, list) or not ids or not all(isinstance(j, int) and not isinstance(j, bool)
                                                           for j in ids):
            raise ValueError(f"ablations must be a non-empty list of latent ids, got {ids!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{file} is damaged ({type(exc).__name__}: {exc}); write it again with `seqrec sae choose` "
                       "or delete it") from None
    if any(not 0 <= j < latents for j in ids):
        raise RunError(f"{file} names latents outside the SAE's 0..{latents - 1}; it belongs to another SAE run")
    return ids


def select_latents(sweep: LatentSweep, attributes: list[str], x: int, use_choose: bool = True,
                   latents: int | None = None, suppressed: Collection[str] = (),
                   x_given: bool = False) -> tuple[list[int], dict[str, str]]:
    """Union over attributes of their regulating latents, and where each attribute's came from.

    Per attribute: the ids in `sae choose`'s controller_<attribute>.json when the sweep folder has one (and
    `use_choose`), else the top-x raising and top-x lowering latents of the sweep. Warns when the sweep found no
    latent that moves an attribute the way it is tuned (raising a target, lowering a `suppressed` one): tuning
    then has nothing of its own to act on; when fewer than x exist; and when a file wins over an `x_given`.
    """
    chosen: set[int] = set()
    sources: dict[str, str] = {}
    for attribute in attributes:
        file = controller_file(sweep, attribute) if use_choose else None
        positive, negative = choose_latents(sweep, attribute, x)
        lowering = attribute in suppressed
        if not (negative if lowering else positive):
            warnings.warn(f"{attribute}: the latent sweep found no latent that {'lowers' if lowering else 'raises'} "
                          f"it; tuning {'away from' if lowering else 'toward'} it is unlikely to help", stacklevel=2)
        if file is not None:
            ids = read_controller_file(file, latents or sweep.scores.shape[0])
            chosen |= set(ids)
            sources[attribute] = f"{len(ids)} latents from {file}"
            if x_given:
                warnings.warn(f"{attribute}: using the {len(ids)} latents `sae choose` wrote to {file}, not x={x}; "
                              "pass --set use_choose=false to choose x from the sweep", stacklevel=2)
            continue
        if positive and (len(positive) < x or len(negative) < x):
            warnings.warn(f"{attribute}: asked for {x} latents per direction, the sweep has {len(positive)} that "
                          f"raise it and {len(negative)} that lower it; using those", stacklevel=2)
        chosen |= set(positive) | set(negative)
        sources[attribute] = f"top {len(positive)} raising + {len(negative)} lowering latents of the sweep (x={x})"
    if not chosen:
        raise SeqrecError(f"no latent moves {', '.join(attributes)} in the sweep; check the attribute has items "
                          "that users are recommended")
    return sorted(chosen), sources


def tuned_run_name(config: TuneConfig) -> str:
    """tune-Comedy+Horror, tune-Comedy-minus-Drama, tune-minus-Drama."""
    parts = ["+".join(file_stem(a) for a in config.targets)] if config.targets else []
    parts += [f"minus-{file_stem(a)}" for a in config.suppress]
    return "tune-" + "-".join(parts)


@dataclass
class TuningInputs:
    """Frozen outputs a controller trains and is evaluated on: computed once, reusable for many targets."""

    items: torch.Tensor  # [N+1, D] output item embeddings
    train: Instances
    valid: SplitVectors
    test: SplitVectors

    @classmethod
    def compute(cls, sae_run: SAERun, data: SplitData, max_instances: int = 0, seed: int = 42) -> TuningInputs:
        model, sae = sae_run.base.model.eval(), sae_run.sae
        sae.to(model.device).eval()
        x, targets, rows = training_instances(model, data.train, max_instances, np.random.default_rng(seed))
        return cls(model.item_embeddings().detach().float(), Instances.encode(sae, x.to(model.device), targets, rows),
                   SplitVectors.encode(model, sae, data.valid), SplitVectors.encode(model, sae, data.test))


def tune(sae_run: SAERun | str | Path, config: TuneConfig, data: SplitData | None = None,
         sweep: LatentSweep | None = None, inputs: TuningInputs | None = None, output_dir: str | Path | None = None,
         progress: bool = True) -> TunedRun:
    """Train a latent controller toward `config.targets` (and away from `config.suppress`); report base vs tuned.

    Uses the newest saved sweep covering the attributes, else sweeps the validation users first; `inputs` (from
    `TuningInputs.compute`) skips re-encoding when tuning several targets. Saved to `output_dir` (default: a new
    `tune-<targets>` folder inside the SAE run); never overwrites a run.
    """
    sae_run = _sae_run(sae_run)
    data = run_data(sae_run.base, data=data)
    membership = attribute_matrix(data.catalog, config.attributes)  # [N+1, A]; unknown attributes fail here
    sweep = (sweep or find_sweep(sae_run, config.attributes, config.use_choose)
             or sweep_latents(sae_run, config.attributes, data))
    x_given = config.latents != TuneConfig.__dataclass_fields__["latents"].default
    latents, sources = select_latents(sweep, config.attributes, config.latents, config.use_choose,
                                      sae_run.sae.latents, config.suppress, x_given)
    inputs = inputs or TuningInputs.compute(sae_run, data, config.max_instances, config.seed)
    model, sae = sae_run.base.model, sae_run.sae
    controller = LatentController(latents, sae.latents).to(model.device)
    mask_seen = sae_run.base.config.eval.mask_seen
    task = TuningTask(sae, inputs.items, inputs.train, inputs.valid, membership, data.train, model.max_len, mask_seen)
    fit = fit_controller(controller, task, config, progress=progress)
    metrics: dict = {"latents": len(latents), "best_epoch": fit.best_epoch, "seconds": round(fit.seconds, 2),
                     "instances": len(inputs.train.x), "sweep": str(sweep.path) if sweep.path else None,
                     "latent_sources": sources, "latent_ids": latents}
    for name, vectors in (("valid", inputs.valid), ("test", inputs.test)):
        metrics[name] = {
            label: vectors.metrics(ctrl, sae, inputs.items, model.max_len, config.attributes, REPORT_KS, mask_seen)
            for label, ctrl in (("base", None), ("tuned", controller))
        }
    run = TunedRun(config, controller, sae_run, metrics, fit.history)
    if sae_run.path is not None:
        save_tuned_run(run, Path(output_dir) if output_dir else unique_run_dir(sae_run.path, tuned_run_name(config)))
    return run
