"""Looking at a study: open it from its folder (or storage and name), one row per trial, and the optimisation
history and parameter-importance plots (PNG, matplotlib)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.errors import ConfigError
from seqrec.files import write_file_atomically
from seqrec.search.backend import (
    check_existing,
    default_storage,
    open_storage,
    optuna_module,
    quiet_optuna,
    shown_url,
)
from seqrec.search.results import feasible, read_description, visible_trials
from seqrec.search.study import ATTRIBUTE, ERROR

if TYPE_CHECKING:
    import optuna

HISTORY_PLOT, IMPORTANCE_PLOT = "history.png", "importance.png"


@dataclass
class StudyView:
    """An opened study and what it searches (metric, kind, the folder its trials are in when known)."""

    study: optuna.Study
    metric: str
    kind: str
    folder: Path | None = None
    description: dict[str, Any] = field(default_factory=dict)


def open_view(target: str | Path, storage: str | None = None) -> StudyView:
    """A study by its folder (which names its storage), or by name in `storage`."""
    optuna = optuna_module()
    folder = Path(target)
    if storage is None:
        description = read_description(folder)
        name, url = description["study"], description.get("storage") or default_storage(folder)
        if "***" in url:
            raise ConfigError(f"{folder}'s study is in {url}; give --storage with the password")
    else:
        description = read_description(folder) if folder.is_dir() else {}
        name, url = description.get("study", str(target)), storage
    check_existing(url)
    found = open_storage(url)
    with quiet_optuna():
        names = [s.study_name for s in optuna.get_all_study_summaries(found, include_best_trial=False)]
        if name not in names:
            raise ConfigError(f"no study {name!r} in {shown_url(url)}; studies there: {', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=name, storage=found)
    spec = study.user_attrs.get(ATTRIBUTE) or {}
    return StudyView(study, spec.get("metric", "value"), spec.get("kind", "?"),
                     folder if folder.is_dir() else None, description)


def trial_rows(view: StudyView) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, epochs, seconds, parameters, and why it failed."""
    rows = []
    for t in visible_trials(view.study):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else None
        state = "infeasible" if t.state.name == "COMPLETE" and not feasible(t) else t.state.name.lower()
        rows.append({"trial": t.number, "state": state, "value": t.value,
                     "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) or None), "seconds": seconds,
                     "params": dict(t.params), "error": t.user_attrs.get(ERROR, "")})
    return rows


@contextlib.contextmanager
def _figures() -> Iterator[Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(), matplotlib.rc_context():  # Optuna sets its own style; it ends here
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        yield plt


def history_png(view: StudyView) -> bytes | None:
    """The optimisation history (each finished trial's value and the best so far), or None without one."""
    if not any(t.state.name == "COMPLETE" for t in view.study.get_trials(deepcopy=False)):
        return None
    optuna = optuna_module()
    with _figures() as plt:
        ax = optuna.visualization.matplotlib.plot_optimization_history(view.study, target_name=view.metric)
        from matplotlib.ticker import MaxNLocator

        ax.set_ylabel(f"validation {view.metric}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _png(plt, ax)


def importance_png(view: StudyView) -> bytes | None:
    """How much each parameter explains the value (PED-ANOVA), or None with fewer than two finished trials or
    nothing varied."""
    done = [t for t in view.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(done) < 2 or not any(len({str(t.params.get(k)) for t in done}) > 1 for k in done[0].params):
        return None
    optuna = optuna_module()
    with _figures() as plt, quiet_optuna():
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(
                view.study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target_name=view.metric)
        except (RuntimeError, ValueError):  # too few distinct trials for the evaluator
            return None
        return _png(plt, ax)


def _png(plt: Any, ax: Any) -> bytes:
    fig = ax.get_figure()
    fig.set_size_inches(7.0, 4.2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_plots(view: StudyView, out: Path) -> list[Path]:
    """history.png and importance.png in `out` (those that can be drawn yet)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in ((HISTORY_PLOT, history_png(view)), (IMPORTANCE_PLOT, importance_png(view))):
        if png is not None:
            write_file_atomically(out / name, lambda tmp, png=png: Path(tmp).write_bytes(png))
            written.append(out / name)
    return written
