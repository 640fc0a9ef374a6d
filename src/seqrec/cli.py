"""The `seqrec` command line: parse, call the library, print. User mistakes never show a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqrec.cli_utils import DataDir, console, describe_protocol, interruptible, print_metrics, show_count
from seqrec.errors import SeqrecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and serve sequential recommenders.")
data_app = typer.Typer(no_args_is_help=True, help="Named datasets.")
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
        console.print(f"missing datasets are read from {Path(missing[0]).parent} (set --data-dir or SEQREC_DATA)")


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


@app.command()
def train(config: Annotated[Path | None, typer.Argument(help="Experiment YAML (not with --resume).")] = None,
          overrides: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value")] = None,
          output_dir: Annotated[Path, typer.Option(help="Parent folder of run directories.")] = Path("runs"),
          resume: Annotated[Path | None, typer.Option(help="Continue this unfinished run from its checkpoint.")]
          = None,
          data_dir: DataDir = None) -> None:
    """Train the experiment in CONFIG (YAML) and write a new run directory, or continue one with --resume."""
    from seqrec.api import resume as resume_run
    from seqrec.api import run_experiment
    from seqrec.config import apply_overrides, read_yaml
    from seqrec.experiment import ExperimentConfig

    if (config is None) == (resume is None):
        raise SeqrecError("give either CONFIG (a new run) or --resume RUN (an unfinished run), not both or neither")
    if resume is not None and (overrides or data_dir):
        raise SeqrecError("--resume continues a run with the config it was started with; --set and --data-dir "
                          "cannot change it (start a new run instead)")
    with interruptible():
        if resume is not None:
            run = resume_run(resume)
        else:
            raw = apply_overrides(read_yaml(config), list(overrides or []))  # type: ignore[arg-type]
            if data_dir:
                raw.setdefault("data", {})["data_dir"] = data_dir
            run = run_experiment(ExperimentConfig.from_dict(raw), output_dir)
    if run.path is None:  # a data-parallel rank other than 0: rank 0 reports
        return
    caption = describe_protocol(run.metrics["protocol"])
    print_metrics({"valid": run.metrics["valid"], "test": run.metrics["test"]}, title=f"{run.path}",
                  caption=caption)
    console.print(f"run saved to [bold]{run.path}[/] (best epoch {run.metrics['best_epoch']})")


@app.command()
def evaluate(run_dir: Path, split: Annotated[str, typer.Option(help="valid or test")] = "test",
             mask_seen: Annotated[bool | None, typer.Option(
                 "--mask-seen/--no-mask-seen", help="Mask items the user has seen [default: as the run did].")]
             = None,
             k: Annotated[list[int] | None, typer.Option("--k", help="Cut-off (repeatable) [default: the run's].")]
             = None,
             max_len: Annotated[int | None, typer.Option(help="Input window ≤ the model's [default: the model's].")]
             = None,
             attribute: Annotated[list[str] | None, typer.Option(help="Attribute value, e.g. Comedy.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the metrics and protocol as JSON.")] = False,
             data_dir: DataDir = None) -> None:
    """Evaluate a run on its dataset's valid or test split (full ranking), with the protocol the run recorded."""
    from seqrec.api import evaluate_run
    from seqrec.files import dumps_json

    result = evaluate_run(run_dir, split=split, mask_seen=mask_seen, ks=k, max_len=max_len,
                          attributes=list(attribute or []), data_dir=data_dir)
    if as_json:
        print(dumps_json({"metrics": result.metrics, "protocol": result.protocol}, str(run_dir), 1))
        return
    print_metrics({split: result.metrics}, title=str(run_dir), caption=describe_protocol(result.protocol))


@app.command("rebuild-index")
def rebuild_index(run_dir: Path) -> None:
    """Re-index the stored knowledge base of a retrieval run whose FAISS index file is damaged."""
    from seqrec.errors import RunError
    from seqrec.runs import CONFIG, load_run, read_run_config

    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir} is not a run directory ({CONFIG} missing)")
    config = read_run_config(run_dir)
    if not config.retrieval.enabled:
        raise RunError(f"{run_dir} is a {config.model.name} run without retrieval augmentation; rebuild-index "
                       "only repairs the knowledge-base index of retrieval runs")
    run = load_run(run_dir, rebuild_index=True)
    size = len(run.model.knowledge)  # type: ignore[union-attr]
    console.print(f"{run_dir}: index rebuilt over {size} knowledge-base entries")


@app.command()
def recommend(run_dir: Path, user: Annotated[list[str], typer.Option(help="External user id (repeatable).")],
              k: Annotated[int, typer.Option(help="List length.")] = 10,
              mask_seen: Annotated[bool | None, typer.Option(
                  "--mask-seen/--no-mask-seen", help="Leave out items the user has seen [default: as the run "
                  "was evaluated].")] = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False) -> None:
    """Top-k items for users of a trained run, in the dataset's own ids, with titles when known."""
    from seqrec.api import load

    recommender = load(run_dir).recommender
    masked = recommender.mask_seen if mask_seen is None else mask_seen
    rows = recommender.recommend(user, k=k, mask_seen=masked)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("user", "rank", "item", "score", "title",
                  caption="seen items left out" if masked else "seen items may be recommended again")
    for r in rows:
        table.add_row(r["user"], str(r["rank"]), r["item"], f"{r['score']:.3f}", r["title"])
    console.print(table)


@app.command()
def demo(output_dir: Annotated[Path, typer.Option(help="Where the demo runs go.")] = Path("runs/demo"),
         users: Annotated[int, typer.Option(help="Synthetic users.")] = 3000,
         epochs: Annotated[int, typer.Option(help="Max epochs per model.")] = 30,
         models: Annotated[str, typer.Option(help="Comma-separated: sasrec, gru4rec, bert4rec.")] = "sasrec,gru4rec",
         ) -> None:
    """End-to-end tour on built-in synthetic data: train, compare with popularity, plot, reload, recommend."""
    from seqrec.demo import run_demo

    with interruptible():
        run_demo(output_dir, users=users, epochs=epochs, models=tuple(m.strip() for m in models.split(",")),
                 console=console)


from seqrec.cli_llm import llm_app  # noqa: E402
from seqrec.cli_profiles import profiles_app  # noqa: E402
from seqrec.cli_steer import sae_app, steer  # noqa: E402  (commands in their own modules)
from seqrec.cli_tune import tune_command  # noqa: E402  (also adds `sae sweep` and `sae choose`)

app.add_typer(sae_app, name="sae")
app.command()(steer)
app.command("tune")(tune_command)
app.add_typer(profiles_app, name="profiles")
app.add_typer(llm_app, name="llm")


def main() -> None:
    """Console entry point: `SeqrecError` -> one line without traceback, exit code 2."""
    try:
        app()
    except SeqrecError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
