"""`seqrec steer`: steer popularity with an SAE run, one setting or a sweep over α."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli.common import DataDir, console, format_metric, info, interruptible, metric_label, run_argument
from seqrec.errors import SeqrecError

DEFAULT_ALPHA = 1.5


def register(app: typer.Typer) -> None:
    """Add `steer` to the root app."""
    app.command()(steer)


def steer(sae_dir: Annotated[Path, run_argument("SAE run directory (from `seqrec sae train`).")],
          concept: Annotated[str, typer.Option(help="Concept to steer.")] = "popularity",
          alpha: Annotated[list[float] | None, typer.Option(
              help="Steering strength α, Eq. 3 (repeatable).", show_default="1.5")] = None,
          neurons: Annotated[int | None, typer.Option(help="Steer the N neurons of largest |d| (default all).")]
          = None,
          sweep: Annotated[bool, typer.Option("--sweep", help="Save the table and a trade-off plot over the --alpha "
                                                               "values (at least two).")] = False,
          beta: Annotated[list[float] | None, typer.Option(
              help="Re-weighting baseline strength (repeatable).", show_default="none; 0 to 32 with --sweep")]
          = None,
          mode: Annotated[str, typer.Option(help="delta (u = x + Δz·W_dec; the base model at α=0) or recon (u = x̂).")]
          = "delta",
          stage: Annotated[str | None, typer.Option(
              help="pre: shift the pre-activations, so other latents can win the top k (the paper); post: move only "
                   "each user's own top-k latents.", show_default="pre")] = None,
          split: Annotated[str, typer.Option(help="valid or test")] = "test",
          mask_seen: Annotated[bool | None, typer.Option(
              "--mask-seen/--no-mask-seen", help="Mask items the user has seen.",
              show_default="as the run did")]
          = None,
          save: Annotated[bool, typer.Option("--save", help="Save the setting (one --alpha) as a steered run "
                                                            "inside the SAE run, for evaluate, recommend and serve.")]
          = False,
          data_dir: DataDir = None) -> None:
    """Steer popularity with an SAE run: settings against the base model, a saved sweep over α with a plot, or
    one setting saved as a steered run."""
    from seqrec.api import run_data
    from seqrec.runs import unique_run_dir
    from seqrec.steering import load_sae_run, probe
    from seqrec.steering.curves import choose_strength
    from seqrec.steering.pipeline import popsteer_run
    from seqrec.steering.popsteer import DEFAULT_STAGE, check_concept
    from seqrec.steering.sweep import DEFAULT_BETAS, popularity_sweep, write_sweep

    check_concept(concept)
    if split not in ("valid", "test"):
        raise SeqrecError(f"--split must be valid or test, got {split!r}")
    if mode not in ("delta", "recon"):
        raise SeqrecError(f"--mode must be delta or recon, got {mode!r}")
    stage = stage or DEFAULT_STAGE
    if stage not in ("pre", "post"):
        raise SeqrecError(f"--stage must be pre or post, got {stage!r}")
    alphas = list(alpha or [DEFAULT_ALPHA])
    if sweep and len(set(alphas)) < 2:
        raise SeqrecError("--sweep compares strengths: give at least two, e.g. --alpha 0 --alpha 1 --alpha 2")
    if save and len(alphas) != 1:
        raise SeqrecError(f"--save keeps one setting as a run; give one --alpha (got {len(alphas)}), or --sweep to "
                          "save a table of several")
    beta_values = list(beta) if beta else list(DEFAULT_BETAS) if sweep else []
    sae_run = load_sae_run(sae_dir)
    data = run_data(sae_run.base, data_dir)
    mask_seen = sae_run.base.config.eval.mask_seen if mask_seen is None else mask_seen
    with interruptible():
        stats, _ = probe(sae_run, data, concept)
        info(f"popularity neurons from the probe with {stats.describe()}")
        rows = popularity_sweep(sae_run, getattr(data, split), stats, alphas, beta_values, neurons, mode,  # type: ignore[arg-type]
                                mask_seen, stage=stage)
    print_sweep(rows, title=f"{concept} steering, {split} split, seen items {'masked' if mask_seen else 'kept'}")
    warn_past_turn(rows, alphas, sae_dir, neurons, mode, stage)
    if save:
        with interruptible():
            steered = popsteer_run(sae_run, alphas[0], neurons, mode, split, mask_seen, data=data,  # type: ignore[arg-type]
                                   stats=stats, stage=stage)  # type: ignore[arg-type]
        console.print(f"steered run saved to [bold]{steered.path}[/] (evaluate it with `seqrec evaluate "
                      f"{steered.path}`)")
    if sweep:
        meta = {"concept": concept, "alphas": alphas, "betas": beta_values, "neurons": neurons, "mode": mode,
                "stage": stage, "split": split, "mask_seen": mask_seen}
        out = write_sweep(rows, unique_run_dir(sae_dir, f"sweep-{concept}-{split}"), meta)
        best = choose_strength(rows, "popsteer")
        if best:
            base = rows[0]
            console.print(f"best α within 5% of base NDCG@10: α={best['strength']:g} — deep-LT coverage "
                          f"{best['deep_lt_coverage@10'] / max(base['deep_lt_coverage@10'], 1e-12):.2f}× base, "
                          f"Gini {base['gini@10']:.3f} → {best['gini@10']:.3f}")
        console.print(f"table and trade-off plot: [bold]{out}[/]")


def warn_past_turn(rows: list[dict], alphas: list[float], sae_dir: Path, neurons: int | None, mode: str,
                   stage: str) -> None:
    """Warn about strengths past the point where stronger steering stops helping (deep-long-tail coverage falls or
    Gini rises again), from these rows when they hold several α, else from a sweep saved in the SAE run."""
    from seqrec.steering.curves import turning_point
    from seqrec.steering.sweep import saved_turn

    turn, source = None, ""
    if len(set(alphas)) >= 2 and (mode == "delta" or 0 in alphas):  # recon at α 0 is not the base model
        turn, source = turning_point(rows), "this table"
    elif (found := saved_turn(sae_dir, neurons, mode, stage)) is not None:
        turn, source = found[0], f"the sweep in {found[1]}"
    past = sorted({a for a in alphas if turn is not None and a > turn})
    if past:
        console.print(f"[yellow]warning: α {', '.join(f'{a:g}' for a in past)} is past the point where the curve "
                      f"turns (α {turn:g}, from {source}): stronger steering lowers deep-long-tail coverage or "
                      "raises Gini again while it costs more accuracy[/]")


SWEEP_HEADERS = {"NDCG@10": "NDCG", "HR@10": "HR", "deep_lt_coverage@10": "deep-LT", "coverage@10": "cov.",
                 "gini@10": "Gini", "arp@10": "ARP"}


def print_sweep(rows: list[dict], title: str) -> None:
    """A row per setting; short headers (every metric at k=10) so the table fits 80 columns."""
    from seqrec.steering.sweep import SWEEP_METRICS

    table = Table("method", "α/β", *(SWEEP_HEADERS.get(m, metric_label(m)) for m in SWEEP_METRICS), title=title,
                  caption="all at k=10 · deep-LT: deep-long-tail coverage · cov.: catalogue coverage")
    for r in rows:
        table.add_row(r["method"], f"{r['strength']:g}", *(format_metric(m, r[m]) for m in SWEEP_METRICS))
    console.print(table)
