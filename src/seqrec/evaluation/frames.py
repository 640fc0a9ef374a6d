"""Metrics and recommendations as pandas DataFrames (pandas is imported only when these are called)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from seqrec.errors import SeqrecError


def metrics_frame(metrics: Mapping[str, Any]) -> Any:
    """A long DataFrame of metrics: columns split (when given per split), metric, k, value.

    Takes the dict of `evaluate` ({"HR@10": 0.1, ...}) or a run's metrics ({"valid": {...}, "test": {...}, ...},
    other keys ignored). `frame.pivot_table(index="metric", columns="k", values="value")` gives a wide table.
    """
    pd = _pandas()
    splits = {k: v for k, v in metrics.items() if k in ("valid", "test") and isinstance(v, Mapping)}
    groups = splits or {None: metrics}
    rows = []
    for split, values in groups.items():
        for key, value in values.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name, _, cut = str(key).partition("@")
            rows.append({"split": split, "metric": name, "k": int(cut) if cut.isdigit() else None,
                         "value": float(value)})
    frame = pd.DataFrame(rows, columns=["split", "metric", "k", "value"])
    frame["k"] = frame["k"].astype("Int64")
    return frame if splits else frame.drop(columns="split")


def recommendations_frame(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows of `Recommender.recommend` as a DataFrame: user, rank, item, score, title."""
    pd = _pandas()
    return pd.DataFrame(list(rows), columns=["user", "rank", "item", "score", "title"])


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise SeqrecError("DataFrames need pandas: pip install 'seqrec[data]' (or pip install pandas)") from None
    return pandas
