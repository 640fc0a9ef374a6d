"""`seqrec export`: a run's user encoder as an ONNX graph, with its item vectors and ids, for serving without seqrec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from seqrec.cli.common import console, info, interruptible, out_option, run_argument


def register(app: typer.Typer) -> None:
    """Add `export` to the root app."""
    app.command()(export)


def export(run_dir: Annotated[Path, run_argument("Run directory: a trained model, or an SAE, steered or tuned run.")],
           export_format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
           out: Annotated[Path | None, out_option("Export folder (a new one).", "RUN/export-FORMAT")] = None,
           force: Annotated[bool, typer.Option("--force", "--overwrite", help="Replace an earlier export in --out.")]
           = False) -> None:
    """Export a run's user encoder (item ids [B, L] -> user vector [B, D]) with its item-vector table, item ids and
    a manifest; scores are user_vector @ item_vectors.T (docs/serving.md)."""
    from seqrec.api import load
    from seqrec.serving.export import ITEM_VECTORS, MANIFEST, check_exporter, export_recommender

    check_exporter(export_format)  # before the run is read
    recommender = load(run_dir).recommender
    out = run_dir / f"export-{export_format}" if out is None else out
    info(f"exporting {escape(type(recommender.model).__name__)} from {escape(str(run_dir))} to {export_format}")
    with interruptible():
        path = export_recommender(recommender, out, export_format, force=force, run=str(run_dir))
    console.print(f"export written to [bold]{escape(str(path))}[/] (scoring rule and inputs in {MANIFEST}; "
                  f"item vectors in {ITEM_VECTORS})")
