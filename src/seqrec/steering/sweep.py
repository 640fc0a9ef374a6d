"""Accuracy–popularity trade-off: PopSteer at several α next to the re-weighting baseline, as a table and a plot."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqrec.data.splits import EvalSplit
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.files import dumps_json
from seqrec.run_folders import write_atomically
from seqrec.steering.popsteer import NeuronStats, PopularityReweighting, PopularitySteering
from seqrec.steering.sae_run import SAERun
from seqrec.steering.steered import ScoringMode

SWEEP_METRICS = ("NDCG@10", "HR@10", "deep_lt_coverage@10", "coverage@10", "gini@10", "arp@10")
DEFAULT_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def popularity_sweep(sae_run: SAERun, split: EvalSplit, stats: NeuronStats, alphas: Sequence[float],
                     betas: Sequence[float] = DEFAULT_BETAS, neurons: int | None = None,
                     mode: ScoringMode = "delta", mask_seen: bool = True, **steering: Any) -> list[dict]:
    """One row per setting: the base model, PopSteer at each α, re-weighting at each β.  Metrics at k=10.

    `steering`: further options of `PopularitySteering` (stage, per_user)."""
    def measure(method: str, strength: float, scorer) -> dict:  # noqa: ANN001
        metrics = evaluate(scorer, split, ks=(10,), mask_seen=mask_seen)
        return {"method": method, "strength": strength, **{m: metrics[m] for m in SWEEP_METRICS}}

    base = sae_run.base.recommender
    rows = [measure("base", 0.0, base)]
    for alpha in alphas:
        steered = sae_run.steered(mode, PopularitySteering(stats, alpha, neurons, **steering))
        rows.append(measure("popsteer", alpha, steered))
    for beta in betas:
        rows.append(measure("reweight", beta, PopularityReweighting(base.model, split.item_stats.pop_scores, beta)))
    return rows


def plot_tradeoff(rows: list[dict], path: str | Path, y: str = "NDCG@10", keep: float = 0.8) -> Path:
    """Accuracy against long-tail exposure (deep-LT coverage) and concentration (Gini): one curve per method.

    Only settings that keep at least `keep` × the base accuracy are drawn (the useful region); the title says how
    many were left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(r for r in rows if r["method"] == "base")
    shown = [r for r in rows if r["method"] != "base" and r[y] >= keep * base[y]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0), dpi=120, sharey=True)
    labels = {"popsteer": "PopSteer (α)", "reweight": "popularity re-weighting (β)"}
    for ax, x in zip(axes, ("deep_lt_coverage@10", "gini@10"), strict=True):
        for method, label in labels.items():
            points = [r for r in shown if r["method"] == method]
            if points:
                ax.plot([r[x] for r in points], [r[y] for r in points], marker="o", markersize=4, label=label)
                for r in points:
                    ax.annotate(f"{r['strength']:g}", (r[x], r[y]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.plot([base[x]], [base[y]], marker="*", markersize=12, color="black", linestyle="none", label="base")
        ax.set_xlabel(x.replace("_", " ").replace("lt", "long-tail") + (" (lower is fairer)" if "gini" in x else ""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(y)
    axes[0].legend(fontsize=8)
    hidden = len(rows) - 1 - len(shown)
    note = f" ({hidden} settings below {keep:.0%} of base {y} not shown)" if hidden else ""
    fig.suptitle(f"accuracy vs popularity bias{note}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_sweep(rows: list[dict], path: Path, meta: dict) -> Path:
    """A new directory with sweep.csv, sweep.json (rows + settings) and tradeoff.png."""
    def write(tmp: Path) -> None:
        with open(tmp / "sweep.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["method", "strength", *SWEEP_METRICS])
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "sweep.json").write_text(dumps_json({"settings": meta, "rows": rows}, str(path / "sweep.json"), 1))
        plot_tradeoff(rows, tmp / "tradeoff.png")

    return write_atomically(path, write)


def saved_turn(sae_dir: Path, neurons: int | None, mode: str, stage: str = "pre") -> tuple[float, Path] | None:
    """The smallest α after which a saved sweep of this SAE run (same neurons, mode, stage) found the curve turning
    (`curves.turning_point`), with that sweep's folder; None when no saved sweep shows a turn."""
    from seqrec.steering.curves import turning_point

    found = []
    for file in sorted(Path(sae_dir).glob("sweep-*/sweep.json")):
        try:
            saved = json.loads(file.read_text())
            settings, rows = saved["settings"], saved["rows"]
            same = (settings.get("neurons"), settings.get("mode"), settings.get("stage", "pre"))
            if same != (neurons, mode, stage):
                continue
            turn = turning_point(rows)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SeqrecError):
            continue  # not a readable sweep: nothing to learn from it
        if turn is not None:
            found.append((turn, file.parent))
    return min(found, default=None)
