"""`seqrec data list|info|label|example`: named datasets, your own files, item attribute labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli.common import DataDir, DatasetsFile, console, info, out_option, show_count
from seqrec.errors import SeqrecError

data_app = typer.Typer(no_args_is_help=True, help="Datasets: named ones, your own files, item labels.")

Source = Annotated[str, typer.Argument(metavar="DATA", help="A dataset name, or a data file or folder.",
                                       show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the `data` group to the root app."""
    app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list(data_dir: DataDir = None, datasets: DatasetsFile = None) -> None:
    """List the named datasets (built-in and yours), their published sizes and whether their files are present."""
    from seqrec.data.registry import list_datasets

    table = Table(caption="details: seqrec data info NAME")
    for column in ("name", "users", "items", "interactions", "files"):
        table.add_column(column, no_wrap=True)
    missing = []
    rows = list_datasets(data_dir, datasets=datasets)
    for row in rows:
        present = "[green]present[/]" if row["present"] else "[red]missing[/]"
        if not row["present"] and not row.get("user_dataset"):
            missing.append(row["folder"])
        name = f"{row['name']} [dim](yours)[/]" if row.get("user_dataset") else row["name"]
        table.add_row(name, show_count(row.get("users")), show_count(row.get("items")),
                      show_count(row.get("interactions")), present)
    console.print(table)
    defined = sorted({row["defined_in"] for row in rows if row.get("user_dataset")})
    if defined:
        info(f"your datasets are defined in {', '.join(defined)}")
    if missing:
        info(f"missing datasets are read from {Path(missing[0]).parent} (set --data-dir or SEQREC_DATA)")


@data_app.command("info")
def data_info(source: Source, data_dir: DataDir = None, datasets: DatasetsFile = None) -> None:
    """Load a dataset, or a file or folder of your own (format detected), and show its statistics."""
    from seqrec.data.registry import dataset_info
    from seqrec.data.user_datasets import source_config

    cfg = source_config(source, data_dir, datasets)
    details = dataset_info(cfg, datasets=datasets)
    table = Table("property", "value", title=source)
    for key, value in details.items():
        table.add_row(key, f"{value:,.1f}" if isinstance(value, float) else show_count(value) if isinstance(value, int)
                      and not isinstance(value, bool) else str(value))
    console.print(table)


@data_app.command("label")
def data_label(source: Source,
               out: Annotated[Path, out_option("Item attribute file to write (tab-separated).", False)],
               keywords: Annotated[Path | None, typer.Option(
                   metavar="FILE", help="YAML {value: [keywords]}: whole words in titles, any case.")] = None,
               zero_shot: Annotated[Path | None, typer.Option(
                   "--zero-shot", metavar="FILE", help="YAML {value: description}: titles similar to it (MiniLM).")]
               = None,
               name: Annotated[str, typer.Option(help="Attribute name the values are stored under.")] = "label",
               threshold: Annotated[float, typer.Option(help="Zero-shot: least cosine similarity.")] = 0.3,
               text_model: Annotated[str | None, typer.Option(help="Zero-shot: sentence-transformers model.",
                                                              show_default="all-MiniLM-L6-v2")] = None,
               force: Annotated[bool, typer.Option(help="Replace the output file if it exists.")] = False,
               data_dir: DataDir = None, datasets: DatasetsFile = None) -> None:
    """Label items by keywords or zero-shot similarity of their titles; write an item attribute file for
    `--attributes-file` (evaluate, sae sweep, sae tune) or `data.items`."""
    from seqrec.data.attribute_files import write_attribute_file
    from seqrec.data.registry import load_raw_source
    from seqrec.data.user_datasets import source_config
    from seqrec.steering.item_labels import label_items, read_descriptions, read_keyword_rules

    if (keywords is None) == (zero_shot is None):
        raise SeqrecError("give either --keywords FILE or --zero-shot FILE")
    if out.exists() and not force:
        raise SeqrecError(f"{out} exists; pass --force to replace it")
    rules = None if keywords is None else read_keyword_rules(keywords)
    descriptions = None if zero_shot is None else read_descriptions(zero_shot)
    embed = None
    if descriptions is not None:
        from seqrec.text import DEFAULT_TEXT_MODEL, sentence_embedder

        embed = sentence_embedder(text_model or DEFAULT_TEXT_MODEL)
    interactions, catalog = load_raw_source(source_config(source, data_dir, datasets), datasets)
    labels = label_items(catalog, keywords=rules, descriptions=descriptions, embed=embed, threshold=threshold)
    item_ids = interactions.item_map.to_external(range(1, catalog.num_items + 1))
    write_attribute_file(out, item_ids, [catalog.title(i) for i in range(1, catalog.num_items + 1)], name,
                         labels[1:])
    counts = {v: sum(v in values for values in labels) for v in (rules or descriptions or {})}
    table = Table("value", "items", title=f"{name}: {sum(bool(v) for v in labels):,} of {catalog.num_items:,} "
                                          "items labelled")
    for value, count in counts.items():
        table.add_row(value, f"{count:,}")
    console.print(table)
    console.print(f"attributes written to [bold]{out}[/]; use them with `--attributes-file {out}` "
                  f"(e.g. `seqrec evaluate RUN --attributes-file {out} --attribute {next(iter(counts))}`)")


@data_app.command("example")
def data_example(out: Annotated[Path, out_option("CSV file to write: user_id,item_id,timestamp.", False)],
                 items_out: Annotated[Path | None, typer.Option(
                     "--items-out", metavar="FILE", help="Also write an item CSV: item_id,title,genres.")] = None,
                 users: Annotated[int, typer.Option(help="Users.")] = 200,
                 items: Annotated[int, typer.Option(help="Items.")] = 60,
                 seed: Annotated[int, typer.Option(help="Random seed.")] = 0) -> None:
    """Write a small generated interaction file (no real data) to try seqrec on your own files."""
    from seqrec.data.example import write_example

    write_example(out, items_out, users=users, items=items, seed=seed)
    also = f", items to [bold]{items_out}[/]" if items_out else ""
    console.print(f"example interactions written to [bold]{out}[/]{also}")
