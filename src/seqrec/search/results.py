"""What a study leaves in its folder: its description (search.yaml), the best config as a YAML that `seqrec train`
runs as is (best.yaml), the best trial's numbers (best.json), and how much training pruning saved."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from seqrec.config import parse_yaml_file
from seqrec.errors import ConfigError
from seqrec.files import dumps_json, write_text_atomically
from seqrec.search.backend import default_storage
from seqrec.search.space import with_values
from seqrec.search.study import SURPLUS, tally

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

SEARCH_FILE, BEST_CONFIG, BEST_SUMMARY = "search.yaml", "best.yaml", "best.json"


def write_description(folder: Path, description: Mapping[str, Any]) -> None:
    """search.yaml: the study's name and storage (None: study.db in this folder), kind, objective, config, space."""
    write_text_atomically(folder / SEARCH_FILE, yaml.safe_dump(dict(description), sort_keys=False))


def read_description(folder: Path) -> dict[str, Any]:
    """The search.yaml of a study folder, or a `ConfigError` that says what a study folder is."""
    file = folder / SEARCH_FILE
    if not file.is_file():
        raise ConfigError(f"{folder} is not a study folder (no {SEARCH_FILE}); give the folder `seqrec search` made "
                          "(--out/STUDY), or --storage URL with the study name")
    data = parse_yaml_file(file)
    if not isinstance(data, dict) or "study" not in data:
        raise ConfigError(f"{file} is damaged (no study name); rerun the search to rewrite it")
    return data


def check_folder_study(folder: Path, description: Mapping[str, Any]) -> None:
    """Refuse a folder that holds another study (the same name in another storage): its search.yaml, best config
    and plots would be overwritten by this one's."""
    try:
        recorded = read_description(folder) if (folder / SEARCH_FILE).is_file() else None
    except ConfigError:  # a damaged description is rewritten
        return
    if recorded is None:
        return
    theirs = recorded.get("storage") or default_storage(folder)
    mine = description.get("storage") or default_storage(folder)
    if (recorded["study"], theirs) != (description["study"], mine):
        same = "leave --storage out" if recorded.get("storage") is None else f"give --storage {theirs}"
        raise ConfigError(f"{folder} already holds study {recorded['study']!r} in {theirs} (its search.yaml, "
                          f"best.yaml and plots would be overwritten); to continue it, {same}; for a new study, "
                          "give another --study or --out")


def visible_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials without the ones dropped as one too many."""
    return [t for t in study.get_trials(deepcopy=False) if SURPLUS not in t.user_attrs]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The finished trial with the best value (among those that meet the study's constraints), or None before
    there is one."""
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        return None
    try:
        return study.best_trial
    except ValueError:  # every finished trial breaks a constraint
        return None


def feasible(trial: FrozenTrial) -> bool:
    """Whether the trial meets every constraint it records (trials without constraints always do)."""
    return all(value <= 0 for value in trial.constraints.values())


@dataclass(frozen=True)
class PruningSavings:
    """Trials stopped early, the epochs they ran, and the epochs they would have run had they finished like the
    average finished trial (which early stopping already shortens)."""

    pruned: int
    pruned_epochs: int
    epochs_saved: float
    mean_finished_epochs: float
    epochs_run: int  # by every finished and pruned trial

    @property
    def share_saved(self) -> float:
        """Saved epochs as a share of what the trials would have run without pruning."""
        return self.epochs_saved / (self.epochs_saved + self.epochs_run) if self.epochs_saved else 0.0


def pruning_savings(trials: list[FrozenTrial]) -> PruningSavings:
    finished = [t.user_attrs["epochs"] for t in trials if t.state.name == "COMPLETE" and "epochs" in t.user_attrs]
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    pruned_epochs = sum(int(t.user_attrs.get("epochs", len(t.intermediate_values))) for t in pruned)
    mean = sum(finished) / len(finished) if finished else 0.0
    saved = max(0.0, len(pruned) * mean - pruned_epochs)
    return PruningSavings(len(pruned), pruned_epochs, round(saved, 1), round(mean, 1), sum(finished) + pruned_epochs)


def best_config(raw: Mapping[str, Any], trial: FrozenTrial) -> dict[str, Any]:
    """The searched config with the best trial's values: what `seqrec train` runs."""
    return with_values(raw, trial.params)


def write_best(folder: Path, study: optuna.Study, raw: Mapping[str, Any], metric: str,
               command: Callable[[FrozenTrial], str]) -> FrozenTrial | None:
    """best.yaml (`raw` with the best values; `command(best)` says how to train it) and best.json for the best
    trial so far (nothing before a trial has finished)."""
    best = best_trial(study)
    if best is None:
        return None
    header = (f"# the best of study {study.study_name}: trial {best.number}, validation {metric} "
              f"{best.value:.4f}\n# train it with: {command(best)}\n")
    write_text_atomically(folder / BEST_CONFIG, header + yaml.safe_dump(best_config(raw, best), sort_keys=False))
    counts = tally(study)
    summary = {"study": study.study_name, "trial": best.number, "metric": metric, "value": best.value,
               "params": best.params, **{k: best.user_attrs.get(k) for k in ("run", "process", "valid", "test")},
               "trials": asdict(counts), "pruning": asdict(pruning_savings(visible_trials(study)))}
    write_text_atomically(folder / BEST_SUMMARY, dumps_json(summary, str(folder / BEST_SUMMARY)) + "\n")
    return best
