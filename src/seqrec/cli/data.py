"""`seqrec data list|info`: the named datasets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from seqrec.cli.common import DataDir, console, info, show_count

data_app = typer.Typer(no_args_is_help=True, help="Named datasets.")


def register(app: typer.Typer) -> None:
    """Add the `data` group to the root app."""
    app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list(data_dir: DataDir = None) -> None:
    """List the named datasets, their published sizes and whether their files are present."""
    from seqrec.data.registry import list_datasets

    table = Table(caption="details: seqrec data info NAME")
    for column in ("name", "users", "items", "interactions", "files"):
        table.add_column(column, no_wrap=True)
    missing = []
    for row in list_datasets(data_dir):
        present = "[green]present[/]" if row["present"] else "[red]missing[/]"
        if not row["present"]:
            missing.append(row["folder"])
        table.add_row(row["name"], show_count(row.get("users")), show_count(row.get("items")),
                      show_count(row.get("interactions")), present)
    console.print(table)
    if missing:
        info(f"missing datasets are read from {Path(missing[0]).parent} (set --data-dir or SEQREC_DATA)")


@data_app.command("info")
def data_info(name: str, data_dir: DataDir = None) -> None:
    """Load a dataset and show its statistics."""
    from seqrec.data.registry import dataset_info, get_spec

    table = Table("property", "value", title=name)
    table.add_row("description", get_spec(name).description)
    for key, value in dataset_info(name, data_dir).items():
        table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else show_count(value) if isinstance(value, int)
                      and not isinstance(value, bool) else str(value))
    console.print(table)
