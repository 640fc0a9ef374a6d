"""What every command shares: the console, common options, metric tables, Ctrl-C handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()

DataDir = Annotated[str | None, typer.Option("--data-dir", help="Data root (default: $SEQREC_DATA or ./data).")]


METRIC_COLUMNS = {"HR": "HR", "NDCG": "NDCG", "MRR": "MRR", "coverage": "coverage",
                  "deep_lt_coverage": "deep-LT cov", "gini": "Gini", "arp": "ARP"}


def metric_label(key: str) -> str:
    """`deep_lt_coverage@10` -> `deep-LT cov@10` (short column headers)."""
    name, _, k = key.partition("@")
    return f"{METRIC_COLUMNS.get(name, name)}@{k}" if k else METRIC_COLUMNS.get(name, name)


def format_metric(key: str, value: float) -> str:
    """Four decimals; three significant digits for ARP, whose values are tiny popularity shares."""
    return f"{value:.3g}" if key.startswith("arp") else f"{value:.4f}"


def print_metrics(by_split: dict[str, dict[str, float]], title: str = "", ks: tuple[int, ...] = (5, 10, 20, 50)
                  ) -> None:
    """One table per split: a row per cut-off k, a column per metric (fits a narrow terminal)."""
    for split, metrics in by_split.items():
        names = [n for n in METRIC_COLUMNS if any(f"{n}@{k}" in metrics for k in ks)]
        table = Table("k", *(METRIC_COLUMNS[n] for n in names), title=f"{title} — {split}".strip(" —"))
        for k in ks:
            if f"{names[0]}@{k}" in metrics:
                table.add_row(str(k), *(format_metric(n, metrics[f"{n}@{k}"]) for n in names))
        console.print(table)


def show_count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value or "")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C during long work: say that nothing was written (runs are atomic) and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted; no run directory was written[/]")
        raise typer.Exit(130) from None
