"""A search over SAE settings on a trained run: every trial an SAE run in the study folder, scored on validation
FVU (lower is better) or on the validation NDCG@10 / HR@10 of the recommender that scores through the SAE's
reconstruction. SAE fits are short and report no per-epoch value to the search, so SAE trials are not pruned."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.config import from_dict, to_dict
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.model_runs import Run, load_model_run, run_data
from seqrec.run_folders import check_output_dir, check_run_name, claimed_run_dir, recorded_fingerprint
from seqrec.search.backend import default_storage, shown_url
from seqrec.search.model_search import LOCAL_KEYS, process_name
from seqrec.search.run import SearchOutcome, check_counts, read_space, run_study, space_name
from seqrec.search.space import SearchSpace, check_space, known_keys, with_values
from seqrec.search.study import StudySpec
from seqrec.search.trials import trial_name
from seqrec.search.workers import Job
from seqrec.steering.pipeline import train_sae
from seqrec.steering.sae import SAEConfig

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

SAE_METRICS = {"fvu": ("valid_fvu", "minimize"), "NDCG@10": ("valid_sae_NDCG@10", "maximize"),
               "HR@10": ("valid_sae_HR@10", "maximize")}  # objective -> (key of the SAE run's metrics, direction)


def sae_config(raw: Mapping[str, Any]) -> SAEConfig:
    return from_dict(SAEConfig, dict(raw), "sae.")


class SAETrials:
    """`run(trial, values)`: fit an SAE with the trial's values on the base run's user vectors."""

    def __init__(self, run_dir: Path, raw: Mapping[str, Any], folder: Path, metric: str, progress: bool = False,
                 data_dir: str | None = None) -> None:
        self.run_dir, self.raw, self.folder, self.metric = run_dir, dict(raw), folder, metric
        self.progress, self.data_dir = progress, data_dir
        self._base: tuple[Run, SplitData] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_base": None}  # other processes load the run and its data themselves

    def base(self) -> tuple[Run, SplitData]:
        """The base run and its data, read once per process."""
        if self._base is None:
            run = load_model_run(self.run_dir)
            self._base = (run, run_data(run, self.data_dir))
        return self._base

    def run(self, trial: Trial, values: dict[str, Any]) -> float:
        trial.set_user_attr("process", process_name())
        config = sae_config(with_values(self.raw, values))
        run, data = self.base()
        with claimed_run_dir(self.folder, trial_name(trial.number)) as target:
            sae_run = train_sae(run, config, data=data, output_dir=target, progress=self.progress)
        m = sae_run.metrics
        split = {s: {"fvu" if k == f"{s}_fvu" else k.removeprefix(f"{s}_").replace("sae_", ""): v
                     for k, v in m.items() if k.startswith(f"{s}_")} for s in ("valid", "test")}
        attrs = {"run": os.path.relpath(target, self.folder), "epochs": len(sae_run.history),
                 "best_epoch": m["best_epoch"], "seconds": m["seconds"], "dead_ratio": m["dead_ratio"], **split}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return float(m[SAE_METRICS[self.metric][0]])


def run_sae_search(run_dir: str | Path, space: SearchSpace | Mapping[str, Any] | str | Path, trials: int = 20, *,
                   preset: str = "popsteer", overrides: Mapping[str, Any] | None = None, metric: str = "fvu",
                   storage: str | None = None, study: str | None = None, output_dir: str | Path | None = None,
                   jobs: int = 1, timeout: float | None = None, seed: int | None = None,
                   enqueue: Sequence[Mapping[str, Any]] = (), progress: bool = True, data_dir: str | None = None,
                   on_trial: Callable[[FrozenTrial], None] | None = None) -> SearchOutcome:
    """Search SAE settings (the keys `seqrec sae train --set` takes, e.g. k, scale, lr, aux_coef) for the trained
    run at `run_dir`, starting from `preset` with `overrides`; `metric` is fvu, NDCG@10 or HR@10 (validation).

    Trials are SAE runs in `output_dir/STUDY/` (default: inside the base run; STUDY: `sae-<preset>-search`); the
    other options are `run_search`'s."""
    check_counts(trials, jobs, timeout)
    if metric not in SAE_METRICS:
        raise ConfigError(f"SAE search metric must be one of {', '.join(SAE_METRICS)}; got {metric!r}")
    run_dir = Path(run_dir)
    run = load_model_run(run_dir)
    raw = {"preset": preset, **dict(overrides or {})}
    sae_config(raw)
    known = known_keys(to_dict(sae_config(raw)), ())
    where = space_name(space)
    space = read_space(space, known)
    check_space(space, raw, sae_config, where)
    name = check_run_name(study or f"sae-{preset}-search")
    folder = check_output_dir(Path(output_dir if output_dir is not None else run_dir) / name)
    trial_runs = SAETrials(run_dir, raw, folder, metric, progress, data_dir)
    trial_runs.base()  # a run whose data cannot be read fails now, not in the first trial
    base = {k: v for k, v in known_keys(run.config.to_dict(), ()).items() if k not in LOCAL_KEYS}
    identity = {"base_run": base, "data_fingerprint": recorded_fingerprint(run.metrics),
                "sae": {k: v for k, v in raw.items() if k not in space.keys}}
    spec = StudySpec("sae", identity, space.spec(), metric, SAE_METRICS[metric][1])
    job = Job(name, storage or default_storage(folder), spec, trials, trial_runs.run, timeout, "none", seed=seed,
              on_trial=on_trial)
    description = {"study": name, "storage": storage and shown_url(storage), "kind": "sae", "metric": metric,
                   "run": str(run_dir), "config": raw, "space": space.spec()}
    return run_study(job, jobs, folder, description, raw, lambda best: train_command(run_dir, raw, best), enqueue)


def train_command(run_dir: Path, raw: Mapping[str, Any], best: FrozenTrial) -> str:
    """The `seqrec sae train` command for the best settings."""
    settings = with_values(raw, best.params)
    sets = " ".join(f"--set {k}={v}" for k, v in settings.items() if k != "preset")
    return f"seqrec sae train {run_dir} --preset {settings['preset']} {sets}".strip()
