"""The demo's comparison table fits 80 columns without cutting a name or a number."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from seqrec.demo import COLUMNS, _print_table


def test_the_model_table_fits_80_columns() -> None:
    console = Console(width=80, record=True)
    run = SimpleNamespace(metrics={"epochs_run": 30, "train_seconds": 165.0})
    results = {name: {c: 0.1234 for c in COLUMNS} for name in ("most-popular", "sasrec", "gru4rec")}
    _print_table(console, results, {"sasrec": run, "gru4rec": run})
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "most-popular" in text and "deep-LT" in text and "165" in text
