"""Plots people look at: learning curves of one or more runs."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Histories = Mapping[str, Sequence[dict[str, Any]]]


def plot_learning_curves(histories: Histories, path: str | Path, metric: str = "valid_NDCG@10",
                         x: str = "epoch") -> Path:
    """Validation metric against epochs (or `elapsed_seconds`) for each named run, saved as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(learning_curve_png(histories, metric, x))
    return path


def learning_curve_png(histories: Histories, metric: str = "valid_NDCG@10", x: str = "epoch") -> bytes:
    """PNG bytes of `metric` against `x`, one line per named run (runs without the metric are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, history in histories.items():
        points = [(r[x], r[metric]) for r in history if _plottable(r.get(x)) and _plottable(r.get(metric))]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if x == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("wall-clock seconds" if x == "elapsed_seconds" else x)
    ax.set_ylabel(metric.replace("valid_", "validation ").replace("_", " "))
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def has_curve(histories: Histories, metric: str, x: str = "epoch") -> bool:
    """Whether any run has at least one point of `metric` to plot."""
    return any(_plottable(r.get(x)) and _plottable(r.get(metric)) for h in histories.values() for r in h)


def _plottable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
