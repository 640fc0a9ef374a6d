"""`seqrec sae …` and `seqrec steer`: train SAEs on runs, probe concepts, explain latents, steer popularity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli_utils import DataDir, console, format_metric, interruptible, metric_label
from seqrec.errors import SeqrecError

sae_app = typer.Typer(no_args_is_help=True, help="Sparse autoencoders on a run's user vectors.")
Overrides = Annotated[list[str] | None, typer.Option("--set", help="SAE setting: key=value (e.g. k=16).")]


@sae_app.command("train")
def sae_train(run_dir: Path,
              preset: Annotated[str, typer.Option(help="popsteer (k=32, 64×d) or recftt (k=8, 16×d).")] = "popsteer",
              overrides: Overrides = None,
              output: Annotated[Path | None, typer.Option(help="SAE run directory (default RUN/sae-PRESET).")] = None,
              data_dir: DataDir = None) -> None:
    """Train a TopK SAE on the frozen user vectors of RUN_DIR and report reconstruction quality."""
    from seqrec.api import load, run_data
    from seqrec.config import apply_overrides, from_dict
    from seqrec.steering import SAEConfig, train_sae

    config = from_dict(SAEConfig, apply_overrides({"preset": preset}, list(overrides or [])), "sae.")
    run = load(run_dir)
    data = run_data(run, data_dir)
    if output is not None and output.exists():
        raise SeqrecError(f"{output} already exists; choose another --output (runs are never overwritten)")
    with interruptible():
        sae_run = train_sae(run, config, data=data, output_dir=output)
    m = sae_run.metrics
    table = Table("split", "base NDCG@10", "SAE NDCG@10", "change", "base HR@10", "SAE HR@10",
                  title=f"SAE {sae_run.sae.latents} latents, k={config.k}, source={config.source}")
    for split in ("valid", "test"):
        base, sae = m[f"{split}_base_NDCG@10"], m[f"{split}_sae_NDCG@10"]
        table.add_row(split, f"{base:.4f}", f"{sae:.4f}", f"{(sae - base) / max(base, 1e-12):+.1%}",
                      f"{m[f'{split}_base_HR@10']:.4f}", f"{m[f'{split}_sae_HR@10']:.4f}")
    console.print(table)
    console.print(f"FVU train {m['train_fvu']:.4f} / valid {m['valid_fvu']:.4f}, dead latents {m['dead_ratio']:.1%} "
                  f"({m['train_vectors']:,} vectors, best epoch {m['best_epoch']}, {m['seconds']:.0f} s)")
    console.print(f"SAE run saved to [bold]{sae_run.path}[/]")


@sae_app.command("probe")
def sae_probe(sae_dir: Path, concept: Annotated[str, typer.Option(help="Concept to probe.")] = "popularity",
              profiles: Annotated[int, typer.Option(help="Synthetic profiles per polarity.")] = 8192,
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
        stats, computed = probe(sae_run, run_data(sae_run.base, data_dir), concept, profiles=profiles)
    d = stats.cohens_d
    state = "computed" if computed else "read from the earlier probe"
    console.print(f"{concept} probe ({state}, {stats.profiles:,} profiles per polarity): {int((d > 0).sum())} "
                  f"popular neurons (d > 0), {int((d < 0).sum())} unpopular (d < 0); median |d| "
                  f"{np.median(np.abs(d)):.2f}, max |d| {np.abs(d).max():.2f}")
    table = Table("neuron", "Cohen's d", "mean popular", "mean unpopular", title="strongest neurons")
    for j in np.argsort(-np.abs(d))[:10]:
        table.add_row(str(j), f"{d[j]:+.2f}", f"{stats.mean_pop[j]:.3f}", f"{stats.mean_unpop[j]:.3f}")
    console.print(table)
    console.print(f"statistics: [bold]{sae_dir / f'probe-{concept}.csv'}[/]; explain one with "
                  f"`seqrec sae explain {sae_dir} --latent {int(np.argmax(np.abs(d)))}`")


@sae_app.command("explain")
def sae_explain(sae_dir: Path, latent: Annotated[int, typer.Option(help="Latent index.")],
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


def steer(sae_dir: Path, concept: Annotated[str, typer.Option(help="Concept to steer.")] = "popularity",
          alpha: Annotated[float, typer.Option(help="Steering strength α (Eq. 3).")] = 1.5,
          neurons: Annotated[int | None, typer.Option(help="Steer the N neurons of largest |d| (default all).")]
          = None,
          sweep: Annotated[str | None, typer.Option(help="alpha=0,0.5,1,… : a table and a trade-off plot.")] = None,
          betas: Annotated[str | None, typer.Option(help="Re-weighting baseline strengths, e.g. 0,1,4,16.")] = None,
          mode: Annotated[str, typer.Option(help="delta (u = x + Δz·W_dec; the base model at α=0) or recon (u = x̂).")]
          = "delta",
          split: Annotated[str, typer.Option(help="valid or test")] = "test",
          mask_seen: Annotated[bool | None, typer.Option(
              "--mask-seen/--no-mask-seen", help="Mask items the user has seen [default: as the run did].")]
          = None,
          data_dir: DataDir = None) -> None:
    """Steer popularity with an SAE run: one setting against the base model, or a sweep over α with a plot."""
    from seqrec.api import run_data
    from seqrec.runs import unique_run_dir
    from seqrec.steering import load_sae_run, probe
    from seqrec.steering.popsteer import check_concept
    from seqrec.steering.sweep import DEFAULT_BETAS, best_fair_setting, popularity_sweep, write_sweep

    check_concept(concept)
    if split not in ("valid", "test"):
        raise SeqrecError(f"--split must be valid or test, got {split!r}")
    alphas = parse_sweep(sweep) if sweep else [alpha]
    beta_values = parse_values(betas, "--betas") if betas else list(DEFAULT_BETAS) if sweep else []
    sae_run = load_sae_run(sae_dir)
    data = run_data(sae_run.base, data_dir)
    mask_seen = sae_run.base.config.eval.mask_seen if mask_seen is None else mask_seen
    with interruptible():
        stats, _ = probe(sae_run, data, concept)
        console.print(f"popularity neurons from the probe with {stats.describe()}")
        rows = popularity_sweep(sae_run, getattr(data, split), stats, alphas, beta_values, neurons, mode,  # type: ignore[arg-type]
                                mask_seen)
    print_sweep(rows, title=f"{concept} steering, {split} split, seen items {'masked' if mask_seen else 'kept'}")
    if sweep:
        meta = {"concept": concept, "alphas": alphas, "betas": beta_values, "neurons": neurons, "mode": mode,
                "split": split, "mask_seen": mask_seen}
        out = write_sweep(rows, unique_run_dir(sae_dir, f"sweep-{concept}-{split}"), meta)
        best = best_fair_setting(rows)
        if best:
            base = rows[0]
            console.print(f"best α within 5% of base NDCG@10: α={best['strength']:g} — deep-LT coverage "
                          f"{best['deep_lt_coverage@10'] / max(base['deep_lt_coverage@10'], 1e-12):.2f}× base, "
                          f"Gini {base['gini@10']:.3f} → {best['gini@10']:.3f}")
        console.print(f"table and trade-off plot: [bold]{out}[/]")


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


def parse_sweep(text: str) -> list[float]:
    """`alpha=0,0.5,1` -> [0.0, 0.5, 1.0]."""
    name, _, values = text.partition("=")
    if name.strip() != "alpha" or not values:
        raise SeqrecError(f"--sweep must look like alpha=0,0.5,1,1.5; got {text!r}")
    return parse_values(values, "--sweep")


def parse_values(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SeqrecError(f"{option} takes comma-separated numbers; got {text!r}") from None
