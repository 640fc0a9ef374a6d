"""`seqrec demo`: the whole core pipeline on built-in synthetic data, in a few minutes on a laptop CPU."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from seqrec.api import load, run_experiment
from seqrec.data.config import DataConfig
from seqrec.data.registry import load as load_data
from seqrec.data.splits import SplitData
from seqrec.data.synthetic import SyntheticConfig
from seqrec.errors import SeqrecError
from seqrec.evaluation.baselines import MostPopular
from seqrec.evaluation.evaluate import evaluate
from seqrec.experiment import ExperimentConfig
from seqrec.models import BERT4RecConfig, GRU4RecConfig, SASRecConfig
from seqrec.report.plots import plot_learning_curves
from seqrec.runs import Run, unique_run_dir
from seqrec.training.config import TrainConfig

COLUMNS = ("HR@10", "NDCG@10", "MRR@10", "coverage@10", "deep_lt_coverage@10", "gini@10")


DEMO_MODELS = {
    "sasrec": SASRecConfig(max_len=50, hidden=64, blocks=2, dropout=0.2),
    "gru4rec": GRU4RecConfig(max_len=50, hidden=64, dropout=0.1),
    # BERT4Rec's cloze objective puts a loss on ~20% of positions: it needs many more epochs than a demo has.
    "bert4rec": BERT4RecConfig(max_len=50, hidden=64, blocks=2, dropout=0.2),
}


def demo_experiments(users: int, epochs: int, models: tuple[str, ...] = ("sasrec", "gru4rec")
                     ) -> list[ExperimentConfig]:
    """Small but real configs: max_len 50, d=64, early stopping on validation NDCG@10."""
    unknown = set(models) - set(DEMO_MODELS)
    if unknown:
        raise SeqrecError(f"unknown demo model {sorted(unknown)[0]!r}; choose from {', '.join(DEMO_MODELS)}")
    data = DataConfig(name="synthetic", synthetic=SyntheticConfig(num_users=users))
    train = TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, patience=4)
    return [ExperimentConfig(data=data, model=DEMO_MODELS[m], train=train, name=m) for m in models]


def run_demo(output_dir: str | Path = "runs/demo", users: int = 3000, epochs: int = 30,
             models: tuple[str, ...] = ("sasrec", "gru4rec"), console: Console | None = None,
             progress: bool = True) -> dict[str, dict[str, float]]:
    """Train models on synthetic data, compare them with popularity, plot, reload a run and recommend.
    `progress`: show the training progress bars."""
    console = console or Console()
    output_dir = unique_run_dir(Path(output_dir).parent, Path(output_dir).name)  # a new folder every time
    start = time.perf_counter()
    experiments = demo_experiments(users, epochs, models)
    data = load_data(experiments[0].data)
    console.rule("[bold]seqrec demo[/]: synthetic data with planted tastes and sequences")
    console.print(f"{data.num_users:,} users, {data.num_items:,} items, {len(data.train.items):,} training "
                  f"interactions; leave-one-out, full ranking, seen items masked")
    results = {"most-popular": evaluate(MostPopular(data.item_stats.counts), data.test)}
    runs = {}
    for exp in experiments:
        console.rule(f"training {exp.model.name}")
        runs[exp.model.name] = run_experiment(exp, output_dir, progress=progress)
        results[exp.model.name] = runs[exp.model.name].metrics["test"]
    _print_table(console, results, runs)
    plot = plot_learning_curves({n: r.history for n, r in runs.items()}, output_dir / "learning_curves.png")
    console.print(f"learning curves: [bold]{plot}[/]")
    _show_recommendations(console, next(iter(runs.values())).path, data)
    if "sasrec" in runs:
        _steering_tour(console, runs["sasrec"], data, progress)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s; runs are in [bold]{output_dir}[/]")
    return results


def _steering_tour(console: Console, run: Run, data: SplitData, progress: bool = True) -> None:
    """SAE on SASRec's user vectors, popularity probe, and an α sweep against the re-weighting baseline."""
    from seqrec.steering import SAEConfig, probe, train_sae
    from seqrec.steering.sweep import popularity_sweep, write_sweep

    console.rule("interpreting and steering SASRec with a sparse autoencoder (PopSteer)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SAE's quality warnings are printed below, in the demo's words
        sae_run = train_sae(run, SAEConfig(preset="popsteer", max_vectors=20_000, epochs=8), data=data,
                            progress=progress)
    m = sae_run.metrics
    console.print(f"SAE: {sae_run.sae.latents} latents, k={sae_run.config.k}; FVU {m['valid_fvu']:.3f}, dead "
                  f"latents {m['dead_ratio']:.1%}; test NDCG@10 base {m['test_base_NDCG@10']:.4f} -> "
                  f"reconstructed {m['test_sae_NDCG@10']:.4f}")
    for message in m["warnings"]:  # a short demo SAE: the library says what a user should know about it
        console.print(f"[yellow]note: {message}[/]")
    stats, _ = probe(sae_run, data, profiles=4096)
    d = stats.cohens_d
    console.print(f"popularity probe: {int((d > 0).sum())} neurons fire more for popular-only users, "
                  f"{int((d < 0).sum())} for unpopular-only users (max |Cohen's d| {abs(d).max():.2f})")
    rows = popularity_sweep(sae_run, data.test, stats, alphas=(0.0, 1.0, 2.0, 4.0), betas=(0.0, 2.0, 8.0))
    _print_sweep(console, rows, title="popularity steering (test split): PopSteer α vs re-weighting β")
    out = write_sweep(rows, unique_run_dir(sae_run.path, "sweep-popularity-test"), {"alphas": [0, 1, 2, 4]})
    console.print(f"accuracy vs long-tail trade-off plot: [bold]{out / 'tradeoff.png'}[/]")


def _print_sweep(console: Console, rows: list[dict], title: str) -> None:
    """A row per steering setting, every metric at k=10, short headers so the table fits 80 columns."""
    from seqrec.steering.sweep import SWEEP_METRICS

    headers = {"deep_lt_coverage@10": "deep-LT", "coverage@10": "cov.", "gini@10": "Gini", "arp@10": "ARP"}
    table = Table("method", "α/β", *(headers.get(m, m.removesuffix("@10")) for m in SWEEP_METRICS), title=title,
                  caption="all at k=10 · deep-LT: deep-long-tail coverage · cov.: catalogue coverage")
    for r in rows:
        table.add_row(r["method"], f"{r['strength']:g}",
                      *(f"{r[m]:.3g}" if m.startswith("arp") else f"{r[m]:.4f}" for m in SWEEP_METRICS))
    console.print(table)


SHORT = {"coverage@10": "cov.", "deep_lt_coverage@10": "deep-LT", "gini@10": "Gini"}


def _print_table(console: Console, results: dict[str, dict[str, float]], runs: dict) -> None:
    """A row per model, short headers so the table fits 80 columns."""
    headers = (SHORT.get(c, c.removesuffix("@10")) for c in COLUMNS)
    table = Table("model", *headers, "ep.", "s", title="test split (synthetic), all at k=10", box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0),
                  caption="cov.: catalogue coverage · deep-LT: deep-long-tail coverage · ep.: epochs · s: training "
                          "seconds")
    table.columns[0].no_wrap, table.columns[0].min_width = True, max(len(name) for name in results)
    for name, metrics in results.items():
        run = runs.get(name)
        extra = (str(run.metrics["epochs_run"]), f"{run.metrics['train_seconds']:.0f}") if run else ("-", "-")
        table.add_row(name, *(f"{metrics[c]:.4f}" for c in COLUMNS), *extra)
    console.print(table)


def _show_recommendations(console: Console, run_path: Path | None, data) -> None:  # noqa: ANN001
    run = load(run_path)
    user = data.user_map.external[0]
    history = run.recommender.histories[0][-5:]
    console.print(f"user {user}'s last items: " + "; ".join(data.catalog.title(int(i)) for i in history))
    table = Table("rank", "item", "title", "score", title=f"`seqrec recommend {run_path} --user {user}`")
    for row in run.recommender.recommend([user], k=5):
        table.add_row(str(row["rank"]), row["item"], row["title"], f"{row['score']:.2f}")
    console.print(table)
