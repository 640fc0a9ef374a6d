"""A study in its storage: created or continued, checked to search what it was created for, and worked on by any
number of processes until it holds the requested number of trials.

Trials that count toward the number asked for: finished, pruned, and failed with a recorded error (a setting that
is refused, training that diverged). A trial cut short by an interruption or a killed process does not count, so
the next run of the same command redoes it. A process starts a trial only while the finished and running trials
are fewer than asked for; two processes that start the last trial at the same moment keep the one with the lower
number, and the other is dropped before it trains (marked `surplus`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from seqrec.config import flatten
from seqrec.errors import ConfigError, NonFiniteError
from seqrec.files import host_name
from seqrec.run_folders import process_alive
from seqrec.search.backend import open_storage, optuna_module, quiet_optuna, shown_url

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, Trial

ATTRIBUTE = "seqrec"  # the study's user attribute that records what it searches
ERROR, SURPLUS = "error", "surplus"  # trial user attributes: why it failed; dropped as one too many
RECORDED_FAILURES = (ConfigError, NonFiniteError)  # a trial's own outcome: counted, and the search goes on


class TrialFailed(Exception):
    """A trial that ended without a value but with a reason (recorded in its `error` attribute)."""


@dataclass(frozen=True)
class StudySpec:
    """What a study searches: the kind of trial, the settings that define it, the space, the objective."""

    kind: str  # "model" or "sae"
    identity: dict[str, Any]  # the settings every trial shares, without machine-specific paths and devices
    space: dict[str, Any]
    metric: str
    direction: str  # "maximize" or "minimize"

    def differences(self, recorded: Mapping[str, Any]) -> str:
        """The first way `recorded` (a study's attribute) differs from this spec, or "" when it does not."""
        for field in ("kind", "metric", "direction"):
            if recorded.get(field) != getattr(self, field):
                return f"{field} {recorded.get(field)!r} there, {getattr(self, field)!r} here"
        if recorded.get("space") != self.space:
            return f"space {recorded.get('space')} there, {self.space} here"
        theirs, mine = flatten(recorded.get("identity") or {}), flatten(self.identity)
        for key in sorted(set(theirs) | set(mine)):
            if theirs.get(key, "(unset)") != mine.get(key, "(unset)"):
                return f"{key}: {theirs.get(key, '(unset)')!r} there, {mine.get(key, '(unset)')!r} here"
        return ""


def open_study(name: str, url: str, spec: StudySpec, sampler: Any = None, pruner: Any = None) -> optuna.Study:
    """Create study `name` in the storage at `url`, or continue it when it was created for the same search; a
    study made for another config, space or objective is a `ConfigError`."""
    optuna = optuna_module()
    storage = open_storage(url)
    with quiet_optuna():
        study = optuna.create_study(storage=storage, study_name=name, direction=spec.direction, sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
    recorded = study.user_attrs.get(ATTRIBUTE)
    if recorded is None:
        study.set_user_attr(ATTRIBUTE, asdict(spec))
        recorded = asdict(spec)
    differs = spec.differences(recorded)
    if differs:
        raise ConfigError(f"study {name!r} in {shown_url(url)} was created for another search ({differs}); give a "
                          "new study name (--study) for this one, or rerun with the config, space and metric it was "
                          "created with")
    return study


def counts_toward_total(trial: FrozenTrial) -> bool:
    """Finished, pruned, failed with a recorded reason, or running."""
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED", "RUNNING") or (state == "FAIL" and ERROR in trial.user_attrs)


@dataclass(frozen=True)
class Tally:
    """How many trials a study holds, by outcome."""

    complete: int
    pruned: int
    failed: int  # with a recorded reason (interrupted and surplus trials are left out)
    running: int

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def tally(study: optuna.Study) -> Tally:
    states = [(t.state.name, ERROR in t.user_attrs) for t in study.get_trials(deepcopy=False)]
    return Tally(sum(s == "COMPLETE" for s, _ in states), sum(s == "PRUNED" for s, _ in states),
                 sum(s == "FAIL" and e for s, e in states), sum(s == "RUNNING" for s, _ in states))


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark failed the running trials of killed processes, so they are redone: those of this machine whose process
    (`host:pid`, the trial's `process` attribute) no longer runs, and any whose heartbeats stopped."""
    optuna = optuna_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        host, _, pid = str(trial.user_attrs.get("process", "")).rpartition(":")
        if host == host_name() and pid.isdigit() and not process_alive(int(pid)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


class Objective:
    """The function a study optimises: draws the trial's values and runs it (`run(trial, values) -> value`);
    a trial one too many is dropped before it runs, a refused setting or a diverged training is recorded."""

    def __init__(self, total: int, space_suggest: Callable[[Trial], dict[str, Any]],
                 run: Callable[[Trial, dict[str, Any]], float]) -> None:
        self.total, self.suggest, self.run = total, space_suggest, run

    def __call__(self, trial: Trial) -> float:
        ahead = sum(counts_toward_total(t) for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number)
        if ahead >= self.total:
            trial.set_user_attr(SURPLUS, True)
            raise TrialFailed(f"the study already has {self.total} trials")
        values = self.suggest(trial)
        try:
            return self.run(trial, values)
        except RECORDED_FAILURES as exc:
            trial.set_user_attr(ERROR, str(exc))
            raise TrialFailed(str(exc)) from None


def run_trials(study: optuna.Study, objective: Objective, timeout: float | None = None,
               on_trial: Callable[[FrozenTrial], None] | None = None) -> None:
    """Run trials one after another until the study holds `objective.total` (counting other processes' trials) or
    `timeout` seconds have passed (a trial that has started is finished)."""
    start = time.monotonic()
    callbacks = [lambda _, trial: on_trial(trial)] if on_trial is not None else None
    with quiet_optuna():
        while True:
            fail_stale_trials(study)
            counts = tally(study)
            if counts.done + counts.running >= objective.total:
                return
            if timeout is not None and time.monotonic() - start >= timeout:
                return
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)
