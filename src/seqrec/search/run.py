"""`search(config, space, trials)`: a model search from a config and a space to a study, its trial runs and the
best config, in the study's folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.config import parse_yaml_file, read_yaml
from seqrec.errors import ConfigError, Interrupted
from seqrec.experiment import ExperimentConfig
from seqrec.run_folders import check_output_dir, check_run_name
from seqrec.search.backend import PRUNERS, default_storage, optuna_module, quiet_optuna, shown_url
from seqrec.search.model_search import ModelTrials, check_metric, experiment_keys, model_spec
from seqrec.search.results import BEST_CONFIG, check_folder_study, write_best, write_description
from seqrec.search.show import StudyView, write_plots
from seqrec.search.space import SearchSpace, check_space, parse_space
from seqrec.search.study import fail_stale_trials, tally
from seqrec.search.trials import remove_unfinished
from seqrec.search.workers import Job, check_sendable, work_in_processes
from seqrec.training.loggers import check_loggers

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@dataclass
class SearchSettings:
    """How a search scores and prunes trials. `metric` None: the config's `train.monitor` (NDCG@10 by default);
    `warmup_epochs` None: the config's `train.warmup` (no trial is pruned before it); `seed` makes the sampler
    reproducible in one process."""

    metric: str | None = None
    pruner: str = "median"  # median | halving | none
    startup_trials: int = 5  # trials that finish before the median pruner stops any
    warmup_epochs: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.pruner not in PRUNERS:
            raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)}; got {self.pruner!r}")
        if self.startup_trials < 0 or (self.warmup_epochs is not None and self.warmup_epochs < 0):
            raise ConfigError("startup trials and warm-up epochs must be >= 0")


@dataclass
class SearchOutcome:
    """A search that has run: its study, folder, objective and best trial (None if no trial has finished)."""

    study: optuna.Study
    folder: Path
    metric: str
    best: FrozenTrial | None


def search(config: ExperimentConfig | Mapping[str, Any] | str | Path, space: SearchSpace | Mapping[str, Any] | str
           | Path, trials: int = 20, **options: Any) -> optuna.Study:
    """Search `space` around `config` with Optuna and return the study (see `run_search` for the options).

    `seqrec.search("configs/sasrec-beauty.yaml", {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}, trials=20)`
    """
    return run_search(config, space, trials, **options).study


def run_search(config: ExperimentConfig | Mapping[str, Any] | str | Path,
               space: SearchSpace | Mapping[str, Any] | str | Path, trials: int = 20, *,
               storage: str | None = None, study: str | None = None, output_dir: str | Path = "runs", jobs: int = 1,
               timeout: float | None = None, settings: SearchSettings | None = None,
               enqueue: Sequence[Mapping[str, Any]] = (), progress: bool = True,
               on_trial: Callable[[FrozenTrial], None] | None = None) -> SearchOutcome:
    """Run trials of `config` with values from `space` until the study holds `trials` (those of earlier runs and
    other processes count), each a run in `output_dir/STUDY/`, and write the best config there.

    storage: an Optuna database URL shared by every process of the study (default: `study.db` in the study
    folder); study: its name (default `<run name>-search`); jobs: processes on this machine; timeout: seconds after
    which no new trial starts; enqueue: values to try first (e.g. the shipped config's); on_trial: called with
    each trial this process ends. Returns when done; a study made for another search is a `ConfigError`.
    """
    check_counts(trials, jobs, timeout)
    settings = settings or SearchSettings()
    raw = config_dict(config)
    base = ExperimentConfig.from_dict(raw)
    check_loggers(base.train.loggers)  # a missing package fails now, not in every trial
    where = space_name(space)
    space = read_space(space, experiment_keys(raw))
    check_space(space, raw, ExperimentConfig.from_dict, where)
    metric = settings.metric or base.train.monitor
    per_epoch = check_metric(metric, base)
    name = check_run_name(study or f"{base.run_name}-search")
    folder = check_output_dir(Path(output_dir) / name)
    trial_runs = ModelTrials(raw, folder, metric, prune=per_epoch and settings.pruner != "none",
                             progress=progress, fixed_data=not any(k.startswith("data.") for k in space.keys))
    trial_runs.data(base)  # a missing dataset fails now, not in the first trial
    warmup = base.train.warmup if settings.warmup_epochs is None else settings.warmup_epochs
    job = Job(name, storage or default_storage(folder), model_spec(raw, space, metric), trials, trial_runs.run,
              timeout, settings.pruner, settings.startup_trials, warmup, settings.seed, on_trial=on_trial)
    best_file = folder / BEST_CONFIG
    return run_study(job, jobs, folder, {"study": name, "storage": storage and shown_url(storage), "kind": "model",
                                         "metric": metric, "config": raw, "space": space.spec()},
                     raw, lambda _: f"seqrec train {best_file}", enqueue)


def check_counts(trials: int, jobs: int, timeout: float | None) -> None:
    optuna_module()
    for name, value, least in (("trials", trials, 1), ("jobs", jobs, 1)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}: give e.g. --{name} {least}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a number of seconds above 0, got {timeout:g}: give e.g. --timeout 3600, "
                          "or leave it out to run until the study holds --trials trials")


def run_study(job: Job, jobs: int, folder: Path, description: dict[str, Any], raw: Mapping[str, Any],
              command: Callable[[FrozenTrial], str], enqueue: Sequence[Mapping[str, Any]] = ()) -> SearchOutcome:
    """Open the study (refusing one made for another search), describe it in its folder, queue `enqueue`, work on
    it in `jobs` processes, then write the best settings (`raw` with the best values; `command` trains them)."""
    check_sendable(job, jobs)
    check_folder_study(folder, description)
    found = job.open()
    write_description(folder, {**description, "direction": job.spec.direction})
    fail_stale_trials(found)
    remove_unfinished(folder, found.get_trials(deepcopy=False))
    with quiet_optuna():
        for values in enqueue:
            found.enqueue_trial(dict(values), skip_if_exists=True)
    try:
        work_in_processes(job, jobs)
    except KeyboardInterrupt:
        counts = tally(found)
        raise Interrupted(f"interrupted; the running trial is dropped and {counts.done} finished trials are kept in "
                          f"{shown_url(job.url)}: rerun the same command to continue the study") from None
    metric = job.spec.metric
    best = write_best(folder, found, raw, metric, command)
    write_plots(StudyView(found, metric, job.spec.kind, folder), folder)  # for `seqrec report` of its trials
    return SearchOutcome(found, folder, metric, best)


def config_dict(config: ExperimentConfig | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The nested config a search varies: a YAML file, a mapping, or a config object (all of its settings)."""
    if isinstance(config, ExperimentConfig):
        return config.to_dict()
    if isinstance(config, str | Path):
        return read_yaml(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise ConfigError(f"config must be an ExperimentConfig, a mapping or a YAML file; got {type(config).__name__}")


def space_name(space: SearchSpace | Mapping[str, Any] | str | Path) -> str:
    """What errors about `space` call it: its file, or `space`."""
    return str(space) if isinstance(space, str | Path) else "space"


def read_space(space: SearchSpace | Mapping[str, Any] | str | Path, known: Mapping[str, Any]) -> SearchSpace:
    """A space from a YAML file or a mapping, checked against the config's keys."""
    if isinstance(space, SearchSpace):
        parse_space(space.spec(), known)  # every key must exist
        return space
    if isinstance(space, str | Path):
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"space file not found: {path}")
        return parse_space(parse_yaml_file(path), known, str(path))
    return parse_space(space, known)
