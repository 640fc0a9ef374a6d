"""`seqrec train|evaluate|recommend|rebuild-index|demo`: train runs, measure them and use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli.common import (
    AttributesFile,
    DataDir,
    DatasetsFile,
    console,
    describe_protocol,
    interruptible,
    out_option,
    print_metrics,
    progress,
    run_argument,
    set_option,
)
from seqrec.errors import Interrupted, SeqrecError

DEMO_MODELS = ("sasrec", "gru4rec")


def register(app: typer.Typer) -> None:
    """Add the run commands to the root app."""
    app.command()(train)
    app.command()(evaluate)
    app.command()(recommend)
    app.command("rebuild-index")(rebuild_index)
    app.command()(demo)


def train(config: Annotated[Path | None, typer.Argument(help="Experiment YAML (not with --resume); without it, the "
                                                      "defaults and --set.")] = None,
          overrides: Annotated[list[str] | None, set_option("Config override, e.g. train.epochs=50")] = None,
          out: Annotated[Path, out_option("Parent folder of run directories.")] = Path("runs"),
          resume: Annotated[Path | None, typer.Option(metavar="RUN", help="Continue this unfinished run from its "
                                                      "checkpoint.")] = None,
          data_dir: DataDir = None, datasets: DatasetsFile = None) -> None:
    """Train the experiment in CONFIG (YAML, and/or --set overrides of the defaults) and write a new run directory,
    or continue one with --resume."""
    from seqrec.api import resume as resume_run
    from seqrec.api import run_experiment
    from seqrec.config import apply_overrides, read_yaml
    from seqrec.data.user_datasets import resolve_dict
    from seqrec.experiment import ExperimentConfig

    if (config is None and resume is None and not overrides) or (config is not None and resume is not None):
        raise SeqrecError("give either CONFIG and/or --set KEY=VALUE (a new run) or --resume RUN (an unfinished "
                          "run), not both or neither")
    if resume is not None and (overrides or data_dir or datasets):
        raise SeqrecError("--resume continues a run with the config it was started with; --set, --data-dir and "
                          "--datasets cannot change it (start a new run instead)")
    with interruptible():
        if resume is not None:
            run = resume_run(resume, progress=progress())
        else:
            raw = apply_overrides({} if config is None else read_yaml(config), list(overrides or []))
            if data_dir:
                raw.setdefault("data", {})["data_dir"] = data_dir
            if isinstance(raw.get("data"), dict):
                raw["data"] = resolve_dict(raw["data"], datasets)
            run = run_experiment(ExperimentConfig.from_dict(raw), out, progress=progress())
    if run.path is None:  # a data-parallel rank other than 0: rank 0 reports
        return
    caption = describe_protocol(run.metrics["protocol"])
    print_metrics({"valid": run.metrics["valid"], "test": run.metrics["test"]}, title=f"{run.path}",
                  caption=caption)
    console.print(f"run saved to [bold]{run.path}[/] (best epoch {run.metrics['best_epoch']})")


def evaluate(run_dir: Annotated[Path, run_argument("Run directory: a trained model, or an SAE, steered or tuned run.")],
             split: Annotated[str, typer.Option(help="valid or test")] = "test",
             mask_seen: Annotated[bool | None, typer.Option(
                 "--mask-seen/--no-mask-seen", help="Mask items the user has seen.",
                 show_default="as the run did")]
             = None,
             k: Annotated[list[int] | None, typer.Option("--k", help="Cut-off (repeatable).",
                                                         show_default="the run's")]
             = None,
             max_len: Annotated[int | None, typer.Option(help="Input window ≤ the model's.",
                                                             show_default="the model's")]
             = None,
             attribute: Annotated[list[str] | None, typer.Option(help="Attribute value, e.g. Comedy (repeatable).")]
             = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the metrics and protocol as JSON.")] = False,
             attributes_file: AttributesFile = None, data_dir: DataDir = None) -> None:
    """Evaluate a run of any kind that recommends (a trained model, an SAE, steered or tuned run) on its dataset's
    valid or test split (full ranking), with the protocol the run recorded."""
    from seqrec.api import evaluate_run, load, run_data
    from seqrec.data.attribute_files import with_attribute_file
    from seqrec.files import dumps_json

    run = load(run_dir)
    data = None
    if attributes_file is not None:
        data = with_attribute_file(run_data(run.model_run, data_dir), attributes_file)
    result = evaluate_run(run, split=split, mask_seen=mask_seen, ks=k, max_len=max_len,
                          attributes=list(attribute or []), data_dir=data_dir, data=data)
    if as_json:
        print(dumps_json({"metrics": result.metrics, "protocol": result.protocol}, str(run_dir), 1))
        return
    print_metrics({split: result.metrics}, title=str(run_dir), caption=describe_protocol(result.protocol))


def rebuild_index(run_dir: Annotated[Path, run_argument("Retrieval run directory.")]) -> None:
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


def recommend(run_dir: Annotated[Path, run_argument("Run directory.")],
              user: Annotated[list[str] | None, typer.Option(help="External user id (repeatable).")] = None,
              item: Annotated[list[str] | None, typer.Option(
                  help="Item id of an anonymous session, oldest first (repeatable).")] = None,
              all_users: Annotated[bool, typer.Option("--all", help="Every user of the run, written to --out.")]
              = False,
              out: Annotated[Path | None, out_option("File for --all: .parquet, .csv or .jsonl.", False)] = None,
              output_format: Annotated[str | None, typer.Option(
                  "--format", help="parquet, csv or jsonl.", show_default="by the suffix of --out")] = None,
              force: Annotated[bool, typer.Option("--force", "--overwrite", help="Replace the --out file if it "
                                                  "exists.")] = False,
              k: Annotated[int, typer.Option(help="List length.")] = 10,
              mask_seen: Annotated[bool | None, typer.Option(
                  "--mask-seen/--no-mask-seen", help="Leave out items the user (or session) has seen.",
                  show_default="as the run was evaluated")] = None,
              allow_file: Annotated[Path | None, typer.Option(
                  metavar="FILE", help="Recommend only these items (one item id per line).")] = None,
              deny_file: Annotated[Path | None, typer.Option(
                  metavar="FILE", help="Never recommend these items (one item id per line).")] = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False) -> None:
    """Top-k items for users of a trained run (--user), for an anonymous session (--item), or for every user
    into a file (--all --out recs.parquet), in the dataset's own ids, with titles when known."""
    from seqrec.api import load
    from seqrec.serving.batch import export_recommendations, read_item_ids

    if sum([bool(user), bool(item), all_users]) != 1:
        raise SeqrecError("give --user USER (repeatable), --item ITEM (repeatable, one session) or --all --out FILE")
    if all_users != (out is not None) or (not all_users and (output_format or force)):
        raise SeqrecError("--all writes every user's list to the file given by --out (--format and --force go "
                          "with them); give both --all and --out, or neither")
    filters = {"allow": None if allow_file is None else read_item_ids(allow_file),
               "deny": None if deny_file is None else read_item_ids(deny_file)}
    recommender = load(run_dir).recommender
    masked = recommender.mask_seen if mask_seen is None else mask_seen
    caption = "seen items left out" if masked else "seen items may be recommended again"
    if out is not None:  # --all
        with interruptible():
            try:
                path = export_recommendations(recommender, out, k=k, mask_seen=masked, format=output_format,
                                              overwrite=force, progress=progress(), **filters)  # type: ignore[arg-type]
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted; {out} was not written (a file there is left as it was)") from None
        console.print(f"top {k} for {len(recommender.user_map):,} users written to [bold]{path}[/] ({caption})")
    elif item:
        result = recommender.recommend_sessions([item], k=k, mask_seen=masked, **filters)
        unknown = result.unknown_ids[0]
        if as_json:
            print(json.dumps({"rows": result.rows, "unknown": unknown}, indent=1))
        else:
            print_rows(result.rows, "session", f"{len(unknown)} of {len(item)} items unknown to this run (skipped); "
                       f"{caption}")
    else:
        rows = recommender.recommend(user or [], k=k, mask_seen=masked, **filters)
        if as_json:
            print(json.dumps(rows, indent=1))
        else:
            short = f"; {len(rows.short)} user(s) with fewer than {k} unseen items" if rows.short else ""
            print_rows(rows, "user", caption + short)


def print_rows(rows: list[dict], key: str, caption: str) -> None:
    """Recommendation rows as a table: user or session, rank, item, score, title."""
    table = Table(key, "rank", "item", "score", "title", caption=caption)
    for r in rows:
        table.add_row(str(r[key]), str(r["rank"]), r["item"], f"{r['score']:.3f}", r["title"])
    console.print(table)


def demo(out: Annotated[Path, out_option("Where the demo runs go.")] = Path("runs/demo"),
         users: Annotated[int, typer.Option(help="Synthetic users.")] = 3000,
         epochs: Annotated[int, typer.Option(help="Max epochs per model.")] = 30,
         model: Annotated[list[str] | None, typer.Option(
             help="sasrec, gru4rec or bert4rec (repeatable).", show_default="sasrec and gru4rec")] = None,
         ) -> None:
    """End-to-end tour on built-in synthetic data: train, compare with popularity, plot, reload, recommend."""
    from seqrec.demo import run_demo

    with interruptible():
        run_demo(out, users=users, epochs=epochs, models=tuple(model or DEMO_MODELS), console=console,
                 progress=progress())
