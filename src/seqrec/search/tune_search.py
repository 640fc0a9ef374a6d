"""A search over RecFTT's controller settings (λ, latents per attribute, learning rate ...) on an SAE run, with
`seqrec sae tune`'s target-vs-overall rule as a constrained objective: maximise the validation NDCG@10 on the
targets' users (minus that on the suppressed attributes' users), subject to the overall validation NDCG@10 falling
at most `max_drop` below the base. A trial that breaks the constraint is kept but never chosen as the best."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqrec.config import from_dict, to_dict
from seqrec.data.attribute_files import with_attribute_file
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.model_runs import run_data
from seqrec.run_folders import check_output_dir, check_run_name, claimed_run_dir, recorded_fingerprint
from seqrec.search.backend import default_storage, shown_url
from seqrec.search.model_search import LOCAL_KEYS, process_name
from seqrec.search.run import SearchOutcome, check_counts, read_space, run_study, space_name
from seqrec.search.space import SearchSpace, check_space, known_keys, with_values
from seqrec.search.study import StudySpec
from seqrec.search.trials import trial_name
from seqrec.search.workers import Job
from seqrec.steering.recftt import TuningInputs, find_sweep, sweep_latents, tune, tuned_run_name
from seqrec.steering.sae_run import SAERun, load_sae_run
from seqrec.steering.tuning import TuneConfig

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

METRIC = "target_NDCG@10"  # mean target NDCG@10 minus mean suppressed NDCG@10 (validation, tuned)
DROP = "overall_drop"  # the constraint: overall NDCG@10's fall below the base, minus max_drop (feasible <= 0)
FIXED_KEYS = ("targets", "suppress", "select")  # what a tuning search is about, not a setting it varies


def tune_config(raw: Mapping[str, Any]) -> TuneConfig:
    return from_dict(TuneConfig, dict(raw), "tune.")


def target_score(metrics: Mapping[str, float], config: TuneConfig) -> float:
    """Mean NDCG@10 over the targets' users minus the mean over the suppressed attributes' users."""
    up = [metrics.get(f"{a}_NDCG@10", 0.0) for a in config.targets]
    down = [metrics.get(f"{a}_NDCG@10", 0.0) for a in config.suppress]
    return float(np.mean(up) if up else 0.0) - float(np.mean(down) if down else 0.0)


class TuneTrials:
    """`run(trial, values)`: tune a controller with the trial's settings; the SAE run, its data, the latent sweep
    and the encoded users are prepared once per process."""

    def __init__(self, sae_dir: Path, raw: Mapping[str, Any], folder: Path, progress: bool = False,
                 data_dir: str | None = None, attributes_file: str | None = None) -> None:
        self.sae_dir, self.raw, self.folder, self.progress = sae_dir, dict(raw), folder, progress
        self.data_dir, self.attributes_file = data_dir, attributes_file
        self._base: tuple[SAERun, SplitData] | None = None
        self._inputs: dict[tuple[int, int], TuningInputs] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_base": None, "_inputs": {}}  # other processes prepare their own

    def base(self) -> tuple[SAERun, SplitData]:
        if self._base is None:
            sae_run = load_sae_run(self.sae_dir)
            data = with_attribute_file(run_data(sae_run.base, self.data_dir), self.attributes_file)
            attributes = tune_config(self.raw).attributes
            if find_sweep(sae_run, attributes) is None:  # one sweep for every trial, saved in the SAE run
                sweep_latents(sae_run, attributes, data)
            self._base = (sae_run, data)
        return self._base

    def run(self, trial: Trial, values: dict[str, Any]) -> float:
        trial.set_user_attr("process", process_name())
        config = tune_config(with_values(self.raw, values))
        sae_run, data = self.base()
        key = (config.max_instances, config.seed)
        if key not in self._inputs:
            self._inputs[key] = TuningInputs.compute(sae_run, data, config.max_instances, config.seed)
        with claimed_run_dir(self.folder, trial_name(trial.number)) as target:
            run = tune(sae_run, config, data=data, inputs=self._inputs[key], output_dir=target,
                       progress=self.progress)
        m = run.metrics
        base, tuned = m["valid"]["base"], m["valid"]["tuned"]
        drop = 1.0 - tuned["NDCG@10"] / base["NDCG@10"] if base["NDCG@10"] else 0.0
        trial.set_constraint(DROP, drop - config.max_drop)
        attrs = {"run": os.path.relpath(target, self.folder), "epochs": len(run.history),
                 "best_epoch": m["best_epoch"], "seconds": m["seconds"], "overall_drop": drop,
                 "feasible": drop <= config.max_drop, "valid": tuned, "test": m["test"]["tuned"],
                 "base_valid": base}
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        return target_score(tuned, config)


def run_tune_search(sae_dir: str | Path, space: SearchSpace | Mapping[str, Any] | str | Path, trials: int = 20, *,
                    targets: Sequence[str] = (), suppress: Sequence[str] = (),
                    overrides: Mapping[str, Any] | None = None, storage: str | None = None, study: str | None = None,
                    output_dir: str | Path | None = None, jobs: int = 1, timeout: float | None = None,
                    seed: int | None = None, enqueue: Sequence[Mapping[str, Any]] = (), progress: bool = True,
                    data_dir: str | None = None, attributes_file: str | None = None,
                    on_trial: Callable[[FrozenTrial], None] | None = None) -> SearchOutcome:
    """Search the keys `seqrec sae tune --set` takes (weight = λ, latents, lr, weight_decay, epochs, max_drop ...)
    for the SAE run at `sae_dir`, toward `targets` and away from `suppress`.

    Trials are tuned runs in `output_dir/STUDY/` (default: inside the SAE run; STUDY: `tune-<targets>-search`); the
    other options are `run_search`'s."""
    check_counts(trials, jobs, timeout)
    sae_dir = Path(sae_dir)
    sae_run = load_sae_run(sae_dir)
    raw = {"targets": list(targets), "suppress": list(suppress), **dict(overrides or {})}
    config = tune_config(raw)
    known = known_keys(to_dict(config), FIXED_KEYS)
    where = space_name(space)
    space = read_space(space, known)
    check_space(space, raw, tune_config, where)
    name = check_run_name(study or f"{tuned_run_name(config)}-search")
    folder = check_output_dir(Path(output_dir if output_dir is not None else sae_dir) / name)
    trial_runs = TuneTrials(sae_dir, raw, folder, progress, data_dir, attributes_file)
    trial_runs.base()  # unknown attributes and unreadable data fail now, not in the first trial
    base = {k: v for k, v in known_keys(sae_run.base.config.to_dict(), ()).items() if k not in LOCAL_KEYS}
    identity = {"base_run": base, "data_fingerprint": recorded_fingerprint(sae_run.base.metrics),
                "sae": to_dict(sae_run.config), "tune": {k: v for k, v in raw.items() if k not in space.keys}}
    job = Job(name, storage or default_storage(folder), StudySpec("tune", identity, space.spec(), METRIC, "maximize"),
              trials, trial_runs.run, timeout, "none", seed=seed, on_trial=on_trial)
    description = {"study": name, "storage": storage and shown_url(storage), "kind": "tune", "metric": METRIC,
                   "run": str(sae_dir), "config": raw, "space": space.spec()}
    return run_study(job, jobs, folder, description, raw, lambda best: train_command(sae_dir, raw, best), enqueue)


AUTO_GRID: dict[str, tuple[Any, ...]] = {"weight": (0.1, 0.3, 1.0, 3.0, 10.0), "latents": (50, 100)}  # λ × x


def auto_tune(sae_dir: str | Path, targets: Sequence[str] = (), suppress: Sequence[str] = (),
              grid: Mapping[str, Sequence[Any]] | None = None, **options: Any) -> SearchOutcome:
    """Every combination of `grid` (default: λ in 0.1, 0.3, 1, 3, 10 and 50 or 100 latents per direction) as one
    tuning search, so the choice follows the search's rule: the best validation target NDCG@10 among the
    settings whose overall validation NDCG@10 falls at most `max_drop` below the base. The latents come from the
    sweep (top-x) in every trial, so x is what varies. Other options are `run_tune_search`'s; rerunning resumes."""
    grid = {k: tuple(v) for k, v in (grid or AUTO_GRID).items()}
    if not grid or any(not v for v in grid.values()):
        raise ConfigError(f"the grid needs at least one value per key; got {grid}")
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    overrides = dict(options.pop("overrides", None) or {})
    if clash := sorted((set(grid) | {"use_choose"}) & set(overrides)):
        raise ConfigError(f"{', '.join(clash)}: chosen by the grid (use_choose is off so that x varies); leave "
                          "them out of the fixed settings")
    config = tune_config({"targets": list(targets), "suppress": list(suppress)})
    outcome = run_tune_search(sae_dir, {key: list(values) for key, values in grid.items()}, trials=len(points),
                              targets=targets, suppress=suppress, overrides={**overrides, "use_choose": False},
                              enqueue=points, seed=options.pop("seed", 0),
                              study=options.pop("study", None) or f"{tuned_run_name(config)}-auto", **options)
    finished = [t.params for t in outcome.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if missing := [p for p in points if p not in finished]:
        warnings.warn(f"{len(missing)} grid points have no finished trial (e.g. {missing[0]}: interrupted or "
                      f"failed earlier); delete {outcome.folder} and run again to try them", stacklevel=2)
    return outcome


def train_command(sae_dir: Path, raw: Mapping[str, Any], best: FrozenTrial) -> str:
    """The `seqrec sae tune` command for the best settings."""
    settings = with_values(raw, best.params)
    flags = [f"--target {a}" for a in settings["targets"]] + [f"--suppress {a}" for a in settings["suppress"]]
    flags += [f"--set {k}={v}" for k, v in settings.items() if k not in FIXED_KEYS]
    return f"seqrec sae tune {sae_dir} " + " ".join(flags)
