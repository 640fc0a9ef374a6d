"""`seqrec runs list|compare` and `seqrec report`: look at finished and unfinished runs side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqrec.cli.common import TABLE_WIDTH, console, info, out_option

runs_app = typer.Typer(no_args_is_help=True, help="List and compare run directories.")

LABEL_WIDTH, RUN_WIDTH = 26, 11  # metric-name column and one column per run (long names fold)
Force = Annotated[bool, typer.Option("--force", help="Replace output files that already exist.")]
Runs = Annotated[list[Path], typer.Argument(metavar="RUN", help="Run directories.", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the `runs` group and the `report` command to the root app."""
    app.add_typer(runs_app, name="runs")
    app.command()(report)


@runs_app.command("list")
def runs_list(folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder holding run directories.")]
              = Path("runs")) -> None:
    """Every run below DIR: kind, model, dataset, finished or not, validation and test NDCG/HR@10."""
    from seqrec.report.runs_table import list_runs

    runs = list_runs(folder)
    if not runs:
        console.print(f"no runs under {escape(str(folder))}")
        return
    monitors = sorted({r.monitor for r in runs})
    table = Table(box=None, pad_edge=False, caption=f"valid: validation {' / '.join(monitors)} "
                  "(train.monitor) · NDCG@10, HR@10: test")
    table.add_column("run", overflow="fold", min_width=10)
    table.add_column("model", overflow="fold", min_width=7)
    table.add_column("dataset", overflow="fold", min_width=7)
    for column in ("status", "valid", "NDCG@10", "HR@10", "date"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("status", "date") else "right")
    for r in runs:
        model = r.model if r.kind == "base" else f"{r.model}/{r.kind}" if r.model else r.kind
        status = "finished" if r.status == "finished" else "[yellow]unfinished[/]"
        table.add_row(escape(_relative(r.path, folder)), escape(model or "–"), escape(r.dataset or "–"), status,
                      _number(r.valid), _number(r.test_ndcg10), _number(r.test_hr10), r.date.strftime("%Y-%m-%d"))
    _print(table)


@runs_app.command("compare")
def runs_compare(runs: Runs,
                 out: Annotated[Path | None, out_option("Folder for the learning-curve PNGs.")] = None,
                 force: Force = False) -> None:
    """Metrics of the runs side by side, the settings that differ and (with --out) learning-curve PNGs."""
    from seqrec.report.compare import compare_runs
    from seqrec.report.html import describe_protocol

    comparison = compare_runs(runs, curves=out is not None)
    labels = comparison.labels
    if comparison.metrics:
        _print_by_run("metric", comparison.metrics, labels, "metrics")
    else:
        console.print("no run has metrics yet (unfinished runs write them last)")
    if len(labels) > 1:
        if comparison.config_diff:
            _print_by_run("setting", comparison.config_diff, labels, "settings that differ")
        else:
            console.print("all runs have the same settings")
    for label in labels:
        line = describe_protocol(label, comparison.protocols[label])
        if line:
            console.print(escape(line), width=min(console.width, TABLE_WIDTH))
    if out is not None:
        written = comparison.write_curves(out, overwrite=force)
        for path in written:
            info(f"learning curve written to {escape(str(path))}")
        if not written:
            info("no run has per-epoch history; no learning curves written")


def report(runs: Runs,
           out: Annotated[Path, out_option("The HTML file to write.")] = Path("report.html"),
           title: Annotated[str | None, typer.Option(help="Page title (default: from the run names).")] = None,
           force: Force = False) -> None:
    """One self-contained HTML page: metrics, learning curves, evaluation protocol and settings of the runs."""
    from seqrec.report.html import write_report

    path = write_report(runs, out, overwrite=force, title=title)
    console.print(f"report written to [bold]{escape(str(path))}[/]")


def _print_by_run(first: str, rows: Mapping[str, Mapping[str, Any]], labels: Sequence[str], title: str) -> None:
    """A row per key and a column per run; more runs than fit in 80 columns continue in further tables."""
    per_table = max(1, (TABLE_WIDTH - 1 - (LABEL_WIDTH + 3)) // (RUN_WIDTH + 3))
    for start in range(0, len(labels), per_table):
        part = labels[start : start + per_table]
        table = Table(title=title if start == 0 else f"{title} (continued)")
        table.add_column(first, max_width=LABEL_WIDTH, overflow="fold")
        for label in part:
            table.add_column(escape(label), max_width=RUN_WIDTH, overflow="fold", justify="right")
        for key, values in rows.items():
            table.add_row(escape(key), *(escape(_cell(values.get(label))) for label in part))
        _print(table)


def _print(table: Table) -> None:
    console.print(table, width=min(console.width, TABLE_WIDTH))


def _cell(value: Any) -> str:
    from seqrec.report.compare import MISSING

    if value is MISSING:
        return "(absent)"
    if value is None:
        return "–"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3g}"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if path != root else path.name
    except ValueError:
        return str(path)
