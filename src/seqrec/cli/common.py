"""What every command shares: the console, output settings, common options, metric tables, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import rich
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqrec.errors import Interrupted

console = Console()


@dataclass
class OutputSettings:
    """The root options every command follows: `--quiet` hides progress and informational lines, `--verbose`
    shows tracebacks."""

    quiet: bool = False
    verbose: bool = False


settings = OutputSettings()


def progress() -> bool:
    """Whether to show progress bars: the `progress=` argument of the library calls."""
    return not settings.quiet


def info(message: str) -> None:
    """An informational line (status, hints); hidden by `--quiet`, unlike results and tables."""
    if not settings.quiet:
        console.print(message)


@contextlib.contextmanager
def output_settings(quiet: bool, verbose: bool) -> Iterator[OutputSettings]:
    """Apply the root options for one command. Quiet also silences progress bars drawn by library code that has no
    `progress=` argument (rich's shared console, tqdm); everything but `verbose` is restored afterwards, which the
    entry point reads once the command has failed."""
    settings.quiet, settings.verbose = quiet, verbose
    shared = rich.get_console()
    was_quiet, tqdm_disable = shared.quiet, os.environ.get("TQDM_DISABLE")
    if quiet:
        shared.quiet = True
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield settings
    finally:
        settings.quiet, shared.quiet = False, was_quiet
        if tqdm_disable is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_disable


def package_version() -> str:
    """The installed distribution's version, else the package's own `__version__` (a source checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqrec")
    except PackageNotFoundError:
        from seqrec import __version__

        return __version__


DataDir = Annotated[str | None, typer.Option("--data-dir", help="Data root (default: $SEQREC_DATA or ./data).")]
DatasetsFile = Annotated[str | None, typer.Option(
    "--datasets", metavar="FILE", help="Your dataset names (default: $SEQREC_DATASETS, else datasets.yaml in the data "
    "root).")]
AttributesFile = Annotated[Path | None, typer.Option(
    "--attributes-file", metavar="FILE", help="Item attribute file (from `seqrec data label`) added to the "
    "dataset's attributes.")]


def run_argument(help: str) -> Any:
    """The run-folder argument, named RUN in every command's usage line."""
    return typer.Argument(metavar="RUN", help=help, show_default=False)


def out_option(help: str, default: str | bool = True) -> Any:
    """Where a command writes (a run folder, a file or a parent folder): `--out` in every command. `default`: what
    the help shows as the default when the value is None."""
    return typer.Option("--out", help=help, show_default=default)


def set_option(help: str) -> Any:
    """Repeatable `--set KEY=VALUE` overrides."""
    return typer.Option("--set", metavar="KEY=VALUE", help=f"{help} (repeatable).")


METRIC_NAMES = {"HR": "HR", "NDCG": "NDCG", "MRR": "MRR", "coverage": "coverage", "lt_coverage": "LT coverage",
                "deep_lt_coverage": "deep-LT coverage", "gini": "Gini", "arp": "ARP"}
TABLE_WIDTH = 80  # every table fits a standard terminal


def metric_label(key: str) -> str:
    """`deep_lt_coverage@10` -> `deep-LT coverage@10` (short row and column labels)."""
    name, _, k = key.partition("@")
    return f"{METRIC_NAMES.get(name, name)}@{k}" if k else METRIC_NAMES.get(name, name)


def format_metric(key: str, value: float) -> str:
    """Four decimals; three significant digits for ARP, whose values are tiny popularity shares."""
    return f"{value:.3g}" if key.startswith("arp") else f"{value:.4f}"


def describe_protocol(protocol: dict) -> str:
    """One line saying what the numbers measure: dataset, split, users, ranking, masking, input window."""
    parts = [str(protocol.get("dataset", "")), f"{protocol['split']} split" if "split" in protocol else "",
             f"{protocol['users']:,} users" if "users" in protocol else "",
             str(protocol.get("ranking", "")),
             ("seen items masked" if protocol["seen_items_masked"] else "seen items not masked")
             if "seen_items_masked" in protocol else "",
             f"max_len {protocol['max_len']}" if "max_len" in protocol else ""]
    return " · ".join(p for p in parts if p)


def metric_rows(metrics: dict[str, float]) -> tuple[dict[str, dict[int, float]], dict[str, float]]:
    """Split `name@k` keys into {name: {k: value}} (standard metrics first, then the rest in order) and the
    values that have no cut-off."""
    by_name: dict[str, dict[int, float]] = {}
    plain: dict[str, float] = {}
    for key, value in metrics.items():
        name, _, k = key.partition("@")
        if k.isdigit():
            by_name.setdefault(name, {})[int(k)] = value
        else:
            plain[key] = value
    order = [n for n in METRIC_NAMES if n in by_name] + [n for n in by_name if n not in METRIC_NAMES]
    return {n: by_name[n] for n in order}, plain


def print_metrics(by_split: dict[str, dict[str, float]], title: str = "", caption: str = "") -> None:
    """Every metric that was computed: a row per metric, a column per cut-off k; many cut-offs continue in a
    second table, so each stays within 80 columns."""
    for split, metrics in by_split.items():
        rows, plain = metric_rows(metrics)
        ks = sorted({k for values in rows.values() for k in values})
        label = max([len(metric_label(n)) for n in [*rows, *plain]] + [6])
        per_table = max(1, (TABLE_WIDTH - label - 4) // 10)
        heading = f"{title} — {split}".strip(" —")
        for start in range(0, max(len(ks), 1), per_table):
            part = ks[start : start + per_table]
            table = Table("metric", *(f"@{k}" for k in part), caption=caption or None,
                          title=heading if start == 0 else f"{heading} (continued)")
            for name, values in rows.items():
                table.add_row(metric_label(name),
                              *(format_metric(name, values[k]) if k in values else "–" for k in part))
            if rows:
                console.print(table)
        if plain:
            extra = Table("metric", "value", title=f"{title} — {split}".strip(" —"))
            for key, value in plain.items():
                extra.add_row(metric_label(key), format_metric(key, value))
            console.print(extra)


def show_count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value or "")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C or SIGTERM during long work: say what was kept (runs are atomic or resumable) and exit 130."""
    previous = _raise_on_sigterm()
    try:
        yield
    except KeyboardInterrupt as exc:
        message = str(exc) if isinstance(exc, Interrupted) else "interrupted; no run directory was written"
        Console(stderr=True).print(f"[yellow]{escape(message)}[/]", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_on_sigterm() -> Any:
    """Make SIGTERM (e.g. `kill`, a job scheduler) interrupt like Ctrl-C; the previous handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
