"""`seqrec sae sweep|choose` and `seqrec tune`: RecFTT's latent analysis and targeted tuning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli_steer import parse_values, sae_app
from seqrec.cli_utils import DataDir, console, interruptible
from seqrec.errors import SeqrecError

REPORT_KEYS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "HR@50", "NDCG@50")


def split_names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SeqrecError(f"{option} needs at least one attribute, e.g. {option} Comedy,Horror")
    return names


@sae_app.command("sweep")
def sae_sweep(sae_dir: Path,
              attributes: Annotated[str, typer.Option(help="Item attribute values, e.g. Comedy,Horror.")],
              scales: Annotated[str, typer.Option(help="Amplify and suppress factors.")] = "10,0.1",
              top: Annotated[int, typer.Option(help="List length whose attribute share is measured.")] = 100,
              split: Annotated[str, typer.Option(help="Users of the valid or test split (no targets are read).")]
              = "valid",
              data_dir: DataDir = None) -> None:
    """Score every SAE latent by how much amplifying vs suppressing it moves each attribute's share of the lists."""
    from seqrec.api import run_data
    from seqrec.steering import load_sae_run
    from seqrec.steering.latent_sweep import choose_latents
    from seqrec.steering.recftt import sweep_latents

    names = split_names(attributes, "--attributes")
    sae_run = load_sae_run(sae_dir)
    with interruptible():
        sweep = sweep_latents(sae_run, names, run_data(sae_run.base, data_dir), split,
                              tuple(parse_values(scales, "--scales")), top)
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
    console.print(f"scores, tables and heat map: [bold]{sweep.path}[/]; next: `seqrec tune {sae_dir} --target "
                  f"{names[0]}`")


@sae_app.command("choose")
def sae_choose(sweep_dir: Path,
               attributes: Annotated[str, typer.Option(help="Attributes measured by the sweep.")],
               x: Annotated[int, typer.Option("-x", help="Latents per direction (raising and lowering).")] = 100,
               force: Annotated[bool, typer.Option(help="Replace existing controller files.")] = False) -> None:
    """Keep the top-x raising and top-x lowering latents per attribute: controller_<attribute>.json."""
    from seqrec.steering.latent_sweep import choose_latents, file_stem, load_sweep

    sweep = load_sweep(sweep_dir)
    names = split_names(attributes, "--attributes")
    for name in names:
        sweep.column(name)  # unknown attributes fail before anything is written
    for name in names:
        positive, negative = choose_latents(sweep, name, x)
        if len(positive) < x or len(negative) < x:
            console.print(f"[yellow]{name}: asked for {x} per direction; the sweep has {len(positive)} raising and "
                          f"{len(negative)} lowering latents[/]")
        file = sweep_dir / f"controller_{file_stem(name)}.json"
        if file.exists() and not force:
            raise SeqrecError(f"{file} exists; pass --force to replace it")
        comment = f"{name}: top {len(positive)} raising and top {len(negative)} lowering latents (x={x})"
        file.write_text(json.dumps({"comment": comment, "ablations": positive + negative}, indent=1))
        console.print(f"{comment} -> [bold]{file}[/]")


def tune_command(sae_dir: Path,
                 target: Annotated[list[str] | None, typer.Option(help="Attribute to raise (repeatable).")] = None,
                 suppress: Annotated[list[str] | None, typer.Option(help="Attribute to lower (repeatable).")] = None,
                 weight: Annotated[float, typer.Option("--lambda", help="Weight λ of the attribute loss.")] = 0.1,
                 latents: Annotated[int, typer.Option(help="Latents per attribute and direction (x).")] = 100,
                 overrides: Annotated[list[str] | None, typer.Option("--set", help="Tune setting key=value.")] = None,
                 output: Annotated[Path | None, typer.Option(help="Tuned run directory (default SAE_RUN/tune-…).")]
                 = None,
                 data_dir: DataDir = None) -> None:
    """Tune a controller over SAE latents toward (--target) or away from (--suppress) item attributes."""
    from seqrec.api import run_data
    from seqrec.config import apply_overrides, from_dict
    from seqrec.steering import load_sae_run
    from seqrec.steering.recftt import tune
    from seqrec.steering.tuning import TuneConfig

    base = {"targets": list(target or []), "suppress": list(suppress or []), "weight": weight, "latents": latents}
    config = from_dict(TuneConfig, apply_overrides(base, list(overrides or [])), "tune.")
    if output is not None and output.exists():
        raise SeqrecError(f"{output} already exists; choose another --output (runs are never overwritten)")
    sae_run = load_sae_run(sae_dir)
    data = run_data(sae_run.base, data_dir)
    with interruptible(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tune(sae_run, config, data=data, output_dir=output)
    for w in caught:
        console.print(f"[yellow]{w.message}[/]")
    for split in ("valid", "test"):
        print_comparison(run.metrics[split]["base"], run.metrics[split]["tuned"], config.attributes, split)
    m = run.metrics
    console.print(f"{m['latents']} latents, best epoch {m['best_epoch']} ({m['seconds']:.0f} s, "
                  f"{m['instances']:,} training prefixes); tuned run saved to [bold]{run.path}[/]")


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
