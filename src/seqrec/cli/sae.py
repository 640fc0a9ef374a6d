"""`seqrec sae train|probe|explain|sweep|choose|tune`: SAEs on a run's user vectors and RecFTT tuning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from seqrec.cli.common import (
    AttributesFile,
    DataDir,
    console,
    info,
    interruptible,
    out_option,
    progress,
    run_argument,
    set_option,
)
from seqrec.errors import SeqrecError

if TYPE_CHECKING:
    from seqrec.steering.tuning import TuneConfig

sae_app = typer.Typer(no_args_is_help=True, help="Sparse autoencoders on a run's user vectors.")
REPORT_KEYS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "HR@50", "NDCG@50")
Attributes = Annotated[list[str], typer.Option("--attribute", help="Item attribute value, e.g. Comedy (repeatable).")]
SAERunDir = Annotated[Path, run_argument("SAE run directory (from `seqrec sae train`).")]


QUALITY_WARNINGS = ("scoring through this SAE", "the SAE leaves")  # how `sae_quality_warnings` messages start


def register(app: typer.Typer) -> None:
    """Add the `sae` group to the root app."""
    app.add_typer(sae_app, name="sae")


@sae_app.command("train")
def sae_train(run_dir: Annotated[Path, run_argument("Run directory of the base model.")],
              preset: Annotated[str, typer.Option(help="popsteer (k=32, 64×d) or recftt (k=8, 16×d).")] = "popsteer",
              overrides: Annotated[list[str] | None, set_option("SAE setting, e.g. k=16")] = None,
              auto_size: Annotated[bool, typer.Option(
                  "--auto-size", help="Double the latents and k (up to twice) until scoring through the SAE costs "
                                      "at most 3% of validation NDCG@10 with FVU <= 0.1; keep the first that does.")]
              = False,
              out: Annotated[Path | None, out_option("SAE run directory.", "RUN/sae-PRESET")] = None,
              data_dir: DataDir = None) -> None:
    """Train a TopK SAE on the frozen user vectors of RUN and report reconstruction quality."""
    from seqrec.api import run_data
    from seqrec.config import apply_overrides, from_dict
    from seqrec.model_runs import load_model_run
    from seqrec.steering import SAEConfig, train_sae
    from seqrec.steering.pipeline import train_sae_sized

    config = from_dict(SAEConfig, apply_overrides({"preset": preset}, list(overrides or [])), "sae.")
    run = load_model_run(run_dir)
    data = run_data(run, data_dir)
    if out is not None and out.exists():
        raise SeqrecError(f"{out} already exists; choose another --out (runs are never overwritten)")
    with interruptible(), warnings.catch_warnings():
        for message in QUALITY_WARNINGS:  # printed below the table instead
            warnings.filterwarnings("ignore", message=message)
        fit = train_sae_sized if auto_size else train_sae
        sae_run = fit(run, config, data=data, output_dir=out, progress=progress())
    m = sae_run.metrics
    if "sizes_tried" in m:
        sizes = Table("latents", "k", "valid FVU", "NDCG@10 cost", title="SAE sizes tried (smallest first)")
        for size in m["sizes_tried"]:
            sizes.add_row(f"{size['latents']:,}", str(size["k"]), f"{size['valid_fvu']:.4f}",
                          f"{size['valid_cost']:+.1%}")
        console.print(sizes)
    table = Table("split", "base NDCG@10", "SAE NDCG@10", "change", "base HR@10", "SAE HR@10",
                  title=f"SAE {sae_run.sae.latents} latents, k={config.k}, source={config.source}")
    for split in ("valid", "test"):
        base, sae = m[f"{split}_base_NDCG@10"], m[f"{split}_sae_NDCG@10"]
        table.add_row(split, f"{base:.4f}", f"{sae:.4f}", f"{(sae - base) / max(base, 1e-12):+.1%}",
                      f"{m[f'{split}_base_HR@10']:.4f}", f"{m[f'{split}_sae_HR@10']:.4f}")
    console.print(table)
    console.print(f"FVU train {m['train_fvu']:.4f} / valid {m['valid_fvu']:.4f}, dead latents {m['dead_ratio']:.1%} "
                  f"({m['train_vectors']:,} vectors, best epoch {m['best_epoch']}, {m['seconds']:.0f} s)")
    for message in m["warnings"]:
        console.print(f"[yellow]warning: {message}[/]")
    console.print(f"SAE run saved to [bold]{sae_run.path}[/]")


@sae_app.command("probe")
def sae_probe(sae_dir: SAERunDir, concept: Annotated[str, typer.Option(help="Concept to probe.")] = "popularity",
              profiles: Annotated[int, typer.Option(help="Synthetic profiles per polarity.")] = 8192,
              matched: Annotated[bool, typer.Option(
                  "--matched/--random", help="Profiles from real prefixes with each item replaced by its most "
                                             "similar head (tail) item (PopSteer 2.0), or random head/tail items "
                                             "(PopSteer).")]
              = True,
              data_dir: DataDir = None) -> None:
    """Find the SAE neurons that separate popular-only from unpopular-only synthetic users (Cohen's d)."""
    import numpy as np

    from seqrec.api import run_data
    from seqrec.steering import load_sae_run, probe
    from seqrec.steering.popsteer import check_concept

    check_concept(concept)
    if profiles < 2:
        raise SeqrecError(f"--profiles must be >= 2, got {profiles}")
    sae_run = load_sae_run(sae_dir)
    with interruptible():
        stats, computed = probe(sae_run, run_data(sae_run.base, data_dir), concept, profiles=profiles,
                                matched=matched)
    d = stats.cohens_d
    state = "computed" if computed else "read from the earlier probe"
    console.print(f"{concept} probe ({state}, {stats.describe()}): {int((d > 0).sum())} "
                  f"popular neurons (d > 0), {int((d < 0).sum())} unpopular (d < 0); median |d| "
                  f"{np.median(np.abs(d)):.2f}, max |d| {np.abs(d).max():.2f}")
    table = Table("neuron", "Cohen's d", "mean popular", "mean unpopular", title="strongest neurons")
    for j in np.argsort(-np.abs(d))[:10]:
        table.add_row(str(j), f"{d[j]:+.2f}", f"{stats.mean_pop[j]:.3f}", f"{stats.mean_unpop[j]:.3f}")
    console.print(table)
    console.print(f"statistics: [bold]{sae_dir / f'probe-{concept}.csv'}[/]; explain one with "
                  f"`seqrec sae explain {sae_dir} --latent {int(np.argmax(np.abs(d)))}`")


@sae_app.command("explain")
def sae_explain(sae_dir: SAERunDir, latent: Annotated[int, typer.Option(help="Latent index.")],
                n: Annotated[int, typer.Option(help="Rows per table.")] = 10,
                split: Annotated[str, typer.Option(help="Users of the valid or test split.")] = "test",
                data_dir: DataDir = None) -> None:
    """Show what a latent means: its top-activating users and the items its decoder direction promotes."""
    from seqrec.api import run_data
    from seqrec.steering import load_sae_run
    from seqrec.steering.interpret import check_latent, latent_items, top_users

    if split not in ("valid", "test"):
        raise SeqrecError(f"--split must be valid or test, got {split!r}")
    sae_run = load_sae_run(sae_dir)
    check_latent(sae_run, latent)
    items = Table("rank", "item", "title", "score", title=f"items latent {latent} promotes")
    for row in latent_items(sae_run, latent, n):
        items.add_row(str(row["rank"]), row["item"], row["title"], f"{row['score']:.3f}")
    console.print(items)
    users = Table("user", "activation", "most recent items", title=f"users that activate latent {latent} most")
    for row in top_users(sae_run, getattr(run_data(sae_run.base, data_dir), split), latent, n):
        users.add_row(row["user"], f"{row['activation']:.3f}", "; ".join(row["recent_items"]))
    console.print(users if users.row_count else f"latent {latent} fires for no {split} user (a dead latent)")


@sae_app.command("sweep")
def sae_sweep(sae_dir: SAERunDir, attributes: Attributes,
              scales: Annotated[list[float] | None, typer.Option(
                  "--scale", help="Amplify or suppress factor (repeatable).", show_default="10 and 0.1")] = None,
              top: Annotated[int, typer.Option(help="List length whose attribute share is measured.")] = 100,
              split: Annotated[str, typer.Option(help="Users of the valid or test split (no targets are read).")]
              = "valid",
              attributes_file: AttributesFile = None, data_dir: DataDir = None) -> None:
    """Score every SAE latent by how much amplifying vs suppressing it moves each attribute's share of the lists."""
    from seqrec.api import run_data
    from seqrec.data.attribute_files import with_attribute_file
    from seqrec.steering import load_sae_run
    from seqrec.steering.latent_sweep import DEFAULT_SCALES, choose_latents
    from seqrec.steering.recftt import sweep_latents

    names = list(attributes)
    sae_run = load_sae_run(sae_dir)
    with interruptible():
        data = with_attribute_file(run_data(sae_run.base, data_dir), attributes_file)
        sweep = sweep_latents(sae_run, names, data, split,
                              tuple(scales or DEFAULT_SCALES), top)
    table = Table("attribute", "base share", "raising latents", "lowering latents", "strongest (score, users)",
                  title=f"{sae_run.sae.latents} latents × {len(sweep.scales)} scales, top-{sweep.top}, "
                        f"{split} users ({sweep.seconds:.1f} s)")
    for c, name in enumerate(names):
        scores = sweep.scores[:, c]
        active = sweep.case_counts > 0
        up, down = choose_latents(sweep, name, sweep.scores.shape[0])
        best = up[:3]
        shown = ", ".join(f"{j} ({scores[j]:+.3f}, {sweep.case_counts[j]})" for j in best)
        base = float((sweep.base_ratios[active, c] * sweep.case_counts[active]).sum() / sweep.case_counts.sum())
        table.add_row(name, f"{base:.3f}", str(len(up)), str(len(down)), shown or "–")
    console.print(table)
    console.print(f"scores, tables and heat map: [bold]{sweep.path}[/]")
    info(f"next: `seqrec sae tune {sae_dir} --target {names[0]}`")


@sae_app.command("choose")
def sae_choose(sweep_dir: Annotated[Path, typer.Argument(metavar="SWEEP", help="Latent sweep folder (from "
                                                           "`seqrec sae sweep`).", show_default=False)],
               attributes: Attributes,
               x: Annotated[int, typer.Option("-x", help="Latents per direction (raising and lowering).")] = 100,
               force: Annotated[bool, typer.Option(help="Replace existing controller files.")] = False) -> None:
    """Keep the top-x raising and top-x lowering latents per attribute: controller_<attribute>.json."""
    from seqrec.steering.latent_sweep import choose_latents, controller_path, load_sweep

    sweep = load_sweep(sweep_dir)
    names = list(attributes)
    for name in names:
        sweep.column(name)  # unknown attributes fail before anything is written
    for name in names:
        positive, negative = choose_latents(sweep, name, x)
        if len(positive) < x or len(negative) < x:
            console.print(f"[yellow]{name}: asked for {x} per direction; the sweep has {len(positive)} raising and "
                          f"{len(negative)} lowering latents[/]")
        file = controller_path(sweep_dir, name)
        if file.exists() and not force:
            raise SeqrecError(f"{file} exists; pass --force to replace it")
        comment = f"{name}: top {len(positive)} raising and top {len(negative)} lowering latents (x={x})"
        file.write_text(json.dumps({"comment": comment, "ablations": positive + negative}, indent=1))
        console.print(f"{comment} -> [bold]{file}[/]")


@sae_app.command("tune")
def sae_tune(sae_dir: SAERunDir,
             target: Annotated[list[str] | None, typer.Option(help="Attribute to raise (repeatable).")] = None,
             suppress: Annotated[list[str] | None, typer.Option(help="Attribute to lower (repeatable).")] = None,
             weight: Annotated[float, typer.Option("--lambda", help="Weight λ of the attribute loss.")] = 0.1,
             latents: Annotated[int, typer.Option(help="Latents per attribute and direction (x).")] = 100,
             overrides: Annotated[list[str] | None, set_option("Tune setting, e.g. epochs=5")] = None,
             auto: Annotated[bool, typer.Option("--auto", help="Choose λ and the latents per direction on "
                                                "validation from a grid (a tuning search in RUN/tune-…-auto).")]
             = False,
             out: Annotated[Path | None, out_option("Tuned run directory.", "RUN/tune-…")] = None,
             attributes_file: AttributesFile = None, data_dir: DataDir = None) -> None:
    """Tune a controller over SAE latents toward (--target) or away from (--suppress) item attributes; with --auto,
    λ and the latents per direction are chosen on validation (best target NDCG@10 within max_drop overall)."""
    from seqrec.api import run_data
    from seqrec.config import apply_overrides, from_dict
    from seqrec.data.attribute_files import with_attribute_file
    from seqrec.steering import load_sae_run
    from seqrec.steering.recftt import tune
    from seqrec.steering.tuning import TuneConfig

    base = {"targets": list(target or []), "suppress": list(suppress or []), "weight": weight, "latents": latents}
    config = from_dict(TuneConfig, apply_overrides(base, list(overrides or [])), "tune.")
    if auto:
        fixed = apply_overrides({}, list(overrides or []))
        if (weight, latents) != (0.1, 100) or out is not None or {"weight", "latents", "use_choose"} & set(fixed):
            raise SeqrecError("--auto chooses λ and the latents itself and keeps its runs in the SAE run; leave out "
                              "--lambda, --latents, --out and --set weight/latents/use_choose")
        tune_automatically(sae_dir, config, fixed, attributes_file, data_dir)
        return
    if out is not None and out.exists():
        raise SeqrecError(f"{out} already exists; choose another --out (runs are never overwritten)")
    sae_run = load_sae_run(sae_dir)
    data = with_attribute_file(run_data(sae_run.base, data_dir), attributes_file)
    with interruptible(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tune(sae_run, config, data=data, output_dir=out, progress=progress())
    for w in caught:
        console.print(f"[yellow]{w.message}[/]")
    for split in ("valid", "test"):
        print_comparison(run.metrics[split]["base"], run.metrics[split]["tuned"], config.attributes, split)
    m = run.metrics
    print_latent_sources(m)
    console.print(f"{m['latents']} latents, best epoch {m['best_epoch']} ({m['seconds']:.0f} s, "
                  f"{m['instances']:,} training prefixes); tuned run saved to [bold]{run.path}[/]")


def print_latent_sources(metrics: dict) -> None:
    """Which sweep the latents came from, and how each attribute's were chosen."""
    console.print(f"latent sweep: {metrics.get('sweep') or '(computed now, not saved)'}")
    for attribute, source in (metrics.get("latent_sources") or {}).items():
        console.print(f"  {attribute}: {source}")


def tune_automatically(sae_dir: Path, config: TuneConfig, fixed: dict, attributes_file: Path | None,
                       data_dir: str | None) -> None:
    """`sae tune --auto`: the grid as a tuning search, every trial printed, then the chosen run's comparison."""
    from seqrec.cli.search import TrialPrinter, report_outcome
    from seqrec.search.tune_search import AUTO_GRID, METRIC, auto_tune

    grid = ", ".join(f"{k} in {', '.join(f'{v:g}' for v in values)}" for k, values in AUTO_GRID.items())
    info(f"choosing on validation: {grid} (λ = weight, latents = x per direction)")
    with interruptible():
        outcome = auto_tune(sae_dir, config.targets, config.suppress, overrides=fixed,
                            progress=progress(), data_dir=data_dir,
                            attributes_file=str(attributes_file) if attributes_file else None,
                            on_trial=TrialPrinter(METRIC))
    report_outcome(outcome, train_hint=False)
    if outcome.best is None:
        return
    chosen = outcome.folder / outcome.best.user_attrs["run"]
    metrics = json.loads((chosen / "metrics.json").read_text())
    for split in ("valid", "test"):
        print_comparison(metrics[split]["base"], metrics[split]["tuned"], config.attributes, split)
    print_latent_sources(metrics)
    console.print(f"chosen tuned run: [bold]{chosen}[/] (load, evaluate or serve it like any tuned run)")


def print_comparison(base: dict[str, float], tuned: dict[str, float], attributes: list[str], split: str) -> None:
    """One table per user group (all users, then users whose target has each attribute): a row per metric with
    base, tuned and the relative change, so it stays within 80 columns however many attributes are tuned."""
    groups = [("all users", "")] + [(f"target is {a}", f"{a}_") for a in attributes]
    for label, prefix in groups:
        table = Table("metric", "base", "tuned", "change", title=f"{split} split, {label}: base → tuned")
        keys = [prefix + k for k in REPORT_KEYS] + ([f"{a}_ratio@10" for a in attributes] if not prefix else [])
        for key in keys:
            b, t = base.get(key), tuned.get(key)
            if b is None or t is None:
                continue
            change = f"{(t - b) / b:+.1%}" if b else "–"
            table.add_row(key, f"{b:.4f}", f"{t:.4f}", change)
        console.print(table)
