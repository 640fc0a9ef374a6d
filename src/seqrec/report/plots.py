"""Plots people look at: learning curves of one or more runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot_learning_curves(histories: Mapping[str, Sequence[dict[str, float]]], path: str | Path,
                         metric: str = "valid_NDCG@10", x: str = "epoch") -> Path:
    """Validation metric against epochs (or `elapsed_seconds`) for each named run, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, history in histories.items():
        points = [(r[x], r[metric]) for r in history if metric in r]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xlabel("wall-clock seconds" if x == "elapsed_seconds" else x)
    ax.set_ylabel(metric.replace("valid_", "validation "))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
