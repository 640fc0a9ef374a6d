"""`seqrec search CONFIG --space SPACE.yaml --trials N`, `search sae|tune RUN` and `search show STUDY`:
hyper-parameter search on Optuna (docs/search.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from seqrec.cli.common import (
    TABLE_WIDTH,
    AttributesFile,
    DataDir,
    DatasetsFile,
    console,
    info,
    interruptible,
    out_option,
    print_metrics,
    progress,
    set_option,
    settings,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


class DefaultRun(TyperGroup):
    """`seqrec search CONFIG ...` is `seqrec search run CONFIG ...`; `show` is the other command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


search_app = typer.Typer(cls=DefaultRun, no_args_is_help=True,
                         help="Hyper-parameter search on Optuna: `seqrec search CONFIG --space SPACE.yaml --trials N` "
                              "searches a model's settings (the `run` command), `sae` and `tune` an SAE's and "
                              "RecFTT's; `show STUDY` shows a study.")

Storage = Annotated[str | None, typer.Option(
    metavar="URL", help="Optuna database shared by every process of the study, e.g. sqlite:///study.db or "
    "postgresql://user@host/db.", show_default="study.db in the study folder")]


def register(app: typer.Typer) -> None:
    """Add the `search` group to the root app."""
    app.add_typer(search_app, name="search")


@search_app.command("run")
def run(config: Annotated[Path, typer.Argument(help="Experiment YAML to search around.", show_default=False)],
        space: Annotated[Path, typer.Option(metavar="SPACE.yaml", help="Config keys to search: ranges and choices.",
                                            show_default=False)],
        trials: Annotated[int, typer.Option(help="Trials the study should hold (earlier runs and other processes "
                                                 "count).")] = 20,
        storage: Storage = None,
        study: Annotated[str | None, typer.Option(help="Study name.", show_default="<run name>-search")] = None,
        jobs: Annotated[int, typer.Option(help="Processes on this machine.")] = 1,
        timeout: Annotated[float | None, typer.Option(help="Seconds after which no new trial starts.")] = None,
        metric: Annotated[str | None, typer.Option(help="Validation metric to optimise.",
                                                   show_default="train.monitor (NDCG@10)")] = None,
        pruner: Annotated[str, typer.Option(help="median, halving or none.")] = "median",
        startup_trials: Annotated[int, typer.Option(help="Finished trials before the median pruner stops any.")] = 5,
        seed: Annotated[int | None, typer.Option(help="Sampler seed (reproducible in one process).")] = None,
        overrides: Annotated[list[str] | None, set_option("Config override, e.g. train.epochs=50")] = None,
        out: Annotated[Path, out_option("Parent folder of the study folder.")] = Path("runs"),
        data_dir: DataDir = None, datasets: DatasetsFile = None) -> None:
    """Search SPACE around CONFIG: every trial a run in OUT/STUDY/, pruned on its validation curve; the best config
    is written as OUT/STUDY/best.yaml. Rerun the same command to continue; start it on several machines with one
    --storage to share the study."""
    from seqrec.config import apply_overrides, read_yaml
    from seqrec.data.user_datasets import resolve_dict
    from seqrec.experiment import ExperimentConfig
    from seqrec.search import SearchSettings, run_search

    raw = apply_overrides(read_yaml(config), list(overrides or []))
    if data_dir:
        raw.setdefault("data", {})["data_dir"] = data_dir
    if isinstance(raw.get("data"), dict):
        raw["data"] = resolve_dict(raw["data"], datasets)
    chosen = SearchSettings(metric=metric, pruner=pruner, startup_trials=startup_trials, seed=seed)
    printer = TrialPrinter(metric or ExperimentConfig.from_dict(raw).train.monitor, settings.quiet)
    with interruptible():
        outcome = run_search(raw, space, trials, storage=storage, study=study, output_dir=out, jobs=jobs,
                             timeout=timeout, settings=chosen, progress=progress() and jobs == 1, on_trial=printer)
    report_outcome(outcome)


@search_app.command("sae")
def sae(run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory of the base model.",
                                                show_default=False)],
        space: Annotated[Path, typer.Option(metavar="SPACE.yaml", help="SAE settings to search, e.g. k, scale, lr.",
                                            show_default=False)],
        trials: Annotated[int, typer.Option(help="Trials the study should hold.")] = 20,
        preset: Annotated[str, typer.Option(help="popsteer or recftt: the settings the space starts from.")]
        = "popsteer",
        metric: Annotated[str, typer.Option(help="fvu (validation, lower is better), or NDCG@10 / HR@10 of the "
                                                 "recommender through the SAE.")] = "fvu",
        storage: Storage = None,
        study: Annotated[str | None, typer.Option(help="Study name.", show_default="sae-PRESET-search")] = None,
        jobs: Annotated[int, typer.Option(help="Processes on this machine.")] = 1,
        timeout: Annotated[float | None, typer.Option(help="Seconds after which no new trial starts.")] = None,
        seed: Annotated[int | None, typer.Option(help="Sampler seed (reproducible in one process).")] = None,
        overrides: Annotated[list[str] | None, set_option("SAE setting kept fixed, e.g. epochs=10")] = None,
        out: Annotated[Path | None, out_option("Parent folder of the study folder.", "RUN")] = None,
        data_dir: DataDir = None) -> None:
    """Search SAE settings for the trained model in RUN: every trial an SAE run in OUT/STUDY/, scored on validation;
    the best settings are written as OUT/STUDY/best.yaml with the `seqrec sae train` command that trains them."""
    from seqrec.config import apply_overrides
    from seqrec.search.sae_search import run_sae_search

    fixed = apply_overrides({}, list(overrides or []))
    with interruptible():
        outcome = run_sae_search(run_dir, space, trials, preset=preset, overrides=fixed, metric=metric,
                                 storage=storage, study=study, output_dir=out, jobs=jobs, timeout=timeout, seed=seed,
                                 progress=progress() and jobs == 1, data_dir=data_dir,
                                 on_trial=TrialPrinter(metric, settings.quiet))
    report_outcome(outcome, train_hint=False)


@search_app.command("tune")
def tune(sae_dir: Annotated[Path, typer.Argument(metavar="RUN", help="SAE run directory (from `seqrec sae train`).",
                                                 show_default=False)],
         space: Annotated[Path, typer.Option(metavar="SPACE.yaml", help="Tuning settings to search, e.g. weight (λ), "
                                             "latents, lr.", show_default=False)],
         target: Annotated[list[str] | None, typer.Option(help="Attribute to raise (repeatable).")] = None,
         suppress: Annotated[list[str] | None, typer.Option(help="Attribute to lower (repeatable).")] = None,
         trials: Annotated[int, typer.Option(help="Trials the study should hold.")] = 20,
         storage: Storage = None,
         study: Annotated[str | None, typer.Option(help="Study name.", show_default="tune-TARGETS-search")] = None,
         jobs: Annotated[int, typer.Option(help="Processes on this machine.")] = 1,
         timeout: Annotated[float | None, typer.Option(help="Seconds after which no new trial starts.")] = None,
         seed: Annotated[int | None, typer.Option(help="Sampler seed (reproducible in one process).")] = None,
         overrides: Annotated[list[str] | None, set_option("Tuning setting kept fixed, e.g. max_drop=0.05")] = None,
         out: Annotated[Path | None, out_option("Parent folder of the study folder.", "RUN")] = None,
         attributes_file: AttributesFile = None, data_dir: DataDir = None) -> None:
    """Search RecFTT's controller settings on the SAE run RUN: maximise the validation NDCG@10 of the targets' users
    while the overall validation NDCG@10 stays within max_drop of the base (the rule of `seqrec sae tune`)."""
    from seqrec.config import apply_overrides
    from seqrec.search.tune_search import METRIC, run_tune_search

    fixed = apply_overrides({}, list(overrides or []))
    with interruptible():
        outcome = run_tune_search(sae_dir, space, trials, targets=list(target or []), suppress=list(suppress or []),
                                  overrides=fixed, storage=storage, study=study, output_dir=out, jobs=jobs,
                                  timeout=timeout, seed=seed, progress=progress() and jobs == 1, data_dir=data_dir,
                                  attributes_file=str(attributes_file) if attributes_file else None,
                                  on_trial=TrialPrinter(METRIC, settings.quiet))
    report_outcome(outcome, train_hint=False)


@dataclass
class TrialPrinter:
    """One line per trial this process ends (picklable: other search processes print with it too)."""

    metric: str
    quiet: bool = False

    def __call__(self, trial: FrozenTrial) -> None:
        from seqrec.search.study import ERROR, SURPLUS

        if self.quiet or SURPLUS in trial.user_attrs:
            return
        epochs = trial.user_attrs.get("epochs")
        shown = " ".join(f"{short_key(k)}={format_value(v)}" for k, v in trial.params.items())
        state = trial.state.name
        if state == "COMPLETE":
            head = f"trial {trial.number}: {self.metric} {trial.value:.4f} after {plural(epochs, 'epoch')}"
            if trial.user_attrs.get("feasible") is False:
                head += f" (overall NDCG@10 {-trial.user_attrs['overall_drop']:+.1%}: too low, not a candidate)"
        elif state == "PRUNED":
            head = f"trial {trial.number}: pruned after {plural(epochs, 'epoch')}"
        else:
            head = f"trial {trial.number}: failed ({trial.user_attrs.get(ERROR, 'interrupted')})"
        say(escape(f"{head} · {shown}"))


def report_outcome(outcome: Any, train_hint: bool = True) -> None:
    """The counts, the best trial's validation and test metrics (shown once, here), pruning's savings, best.yaml."""
    from seqrec.search.results import BEST_CONFIG, pruning_savings, visible_trials
    from seqrec.search.study import tally

    counts = tally(outcome.study)
    elsewhere = f", {counts.running} running elsewhere" if counts.running else ""
    say(f"study {escape(outcome.study.study_name)}: {plural(counts.done, 'trial')} ({counts.complete} finished, "
        f"{counts.pruned} pruned, {counts.failed} failed){elsewhere}")
    print_savings(pruning_savings(visible_trials(outcome.study)))
    best = outcome.best
    if best is None:
        say("no finished trial meets the study's constraint; nothing to report" if counts.complete else
            "no trial has finished yet; nothing to report")
        return
    shown = " ".join(f"{short_key(k)}={format_value(v)}" for k, v in best.params.items())
    say(escape(f"best: trial {best.number}, validation {outcome.metric} {best.value:.4f} · {shown}"))
    metrics = {split: best.user_attrs[split] for split in ("valid", "test") if split in best.user_attrs}
    if metrics:
        print_metrics(metrics, title=f"best trial {best.number}")
    path = escape(str(outcome.folder / BEST_CONFIG))
    say(f"best config written to [bold]{path}[/]" + (f": train it with `seqrec train {path}`" if train_hint else
                                                     " (its first lines say how to train it)"))


def print_savings(savings: Any) -> None:
    if savings.pruned:
        say(f"pruning stopped {plural(savings.pruned, 'trial')} after "
            f"{plural(savings.pruned_epochs, 'epoch')} in all, saving ~{plural(savings.epochs_saved, 'epoch')} "
            f"({savings.share_saved:.0%} of training; finished trials ran {savings.mean_finished_epochs:g} epochs "
            "on average)")


@search_app.command("show")
def show(study: Annotated[str, typer.Argument(metavar="STUDY", help="Study folder (OUT/STUDY), or a study name "
                                              "with --storage.", show_default=False)],
         storage: Storage = None,
         out: Annotated[Path | None, out_option("Folder for history.png and importance.png.", "the study folder")]
         = None) -> None:
    """The trials table of STUDY, its best trial, and the optimisation-history and parameter-importance plots."""
    from seqrec.run_folders import check_output_dir
    from seqrec.search.results import pruning_savings, visible_trials
    from seqrec.search.show import open_view, trial_rows, write_plots

    if out is not None:
        check_output_dir(out)  # a file there fails now, not after the table
    view = open_view(study, storage)
    rows = trial_rows(view)
    if not rows:
        console.print(f"study {escape(view.study.study_name)} has no trials yet")
        return
    print_trials(rows, view.metric)
    for row in rows:
        if row["error"]:
            say(escape(f"trial {row['trial']} failed: {row['error']}"))
    print_savings(pruning_savings(visible_trials(view.study)))
    target = out or view.folder
    if target is None:
        info("give --out to write the plots (this study has no folder here)")
        return
    for path in write_plots(view, target):
        info(f"plot written to {escape(str(path))}")


def print_trials(rows: list[dict[str, Any]], metric: str) -> None:
    """A row per trial; parameters that do not fit 80 columns continue in further tables."""
    keys = list(dict.fromkeys(k for row in rows for k in row["params"]))
    fixed = {"#": [str(r["trial"]) for r in rows], "state": [r["state"] for r in rows],
             metric: [f"{r['value']:.4f}" if r["value"] is not None else "–" for r in rows],
             "epochs": [str(r["epochs"] or "–") for r in rows],
             "time": [f"{r['seconds']:.0f} s" if r["seconds"] is not None else "–" for r in rows]}
    params = {short_key(k, keys): [format_value(r["params"][k]) if k in r["params"] else "–" for r in rows]
              for k in keys}
    width = sum(_width(h, c) for h, c in fixed.items())
    chunks: list[list[str]] = [[]]
    for header, cells in params.items():
        if chunks[-1] and width + sum(_width(h, params[h]) for h in chunks[-1]) + _width(header, cells) > TABLE_WIDTH:
            chunks.append([])
        chunks[-1].append(header)
    for number, chunk in enumerate(chunks):
        columns = {**fixed, **{h: params[h] for h in chunk}} if number == 0 else {"#": fixed["#"],
                                                                                 **{h: params[h] for h in chunk}}
        table = Table(*columns, title="trials" if number == 0 else "trials (continued)")
        for i in range(len(rows)):
            table.add_row(*(escape(cells[i]) for cells in columns.values()))
        console.print(table, width=min(console.width, TABLE_WIDTH))


def _width(header: str, cells: list[str]) -> int:
    return max([len(header), *map(len, cells)]) + 3  # padding and the border


def short_key(key: str, keys: list[str] | None = None) -> str:
    """`train.lr` -> `lr`, unless another key ends the same way."""
    last = key.rpartition(".")[2]
    clash = keys is not None and sum(k.rpartition(".")[2] == last for k in keys) > 1
    return key if clash else last


def say(text: str) -> None:
    """A line of results, wrapped at 80 columns."""
    console.print(text, width=min(console.width, TABLE_WIDTH))


def plural(count: Any, noun: str) -> str:
    """`1 epoch`, `3 epochs`, `2.5 epochs`."""
    shown = f"{count:g}" if isinstance(count, int | float) else str(count)
    return f"{shown} {noun}" if count == 1 else f"{shown} {noun}s"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
