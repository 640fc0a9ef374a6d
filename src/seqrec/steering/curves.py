"""Accuracy–exposure curves compared at equal accuracy: PopSteer (α) against popularity re-weighting (β).

A curve is one method's sweep rows (plus the base model, strength 0) as points (NDCG@10, metric). Two methods are
compared on a grid of NDCG@10 levels inside a window below the base (default: within 5%): at each level each
curve's metric is read by linear interpolation between neighbouring strengths, and the margin is PopSteer's
value minus re-weighting's, signed so that positive means PopSteer is better (more deep-long-tail coverage,
lower Gini). The mean margin over the window is the area between the curves (trapezoids over the levels) divided
by the window's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqrec.errors import SeqrecError

ACCURACY = "NDCG@10"
BETTER = {"deep_lt_coverage@10": 1.0, "coverage@10": 1.0, "gini@10": -1.0, "arp@10": -1.0}  # +1: higher is better
COMPARED = ("deep_lt_coverage@10", "gini@10")
TURN_TOLERANCE = 1e-3  # a metric must get worse by more than this to count as the curve turning


def check_metric(metric: str) -> None:
    if metric not in BETTER:
        raise SeqrecError(f"no direction known for {metric!r}; compared metrics: {', '.join(BETTER)}")


def check_method(rows: Sequence[dict], method: str) -> None:
    """`method` must have rows: a misspelled method or a sweep without it would compare the base with itself."""
    present = sorted({r["method"] for r in rows} - {"base"})
    if method not in present:
        raise SeqrecError(f"the sweep has no {method!r} rows; its methods: {', '.join(present) or 'none'}")


def base_row(rows: Sequence[dict]) -> dict:
    for row in rows:
        if row["method"] == "base":
            return row
    raise SeqrecError("the sweep has no base row to compare against")


def curve(rows: Sequence[dict], method: str) -> list[dict]:
    """The base row (as strength 0) and `method`'s rows, by increasing strength; a measured strength 0 replaces
    the base row."""
    own = sorted((r for r in rows if r["method"] == method), key=lambda r: r["strength"])
    if own and own[0]["strength"] == 0:
        return own
    return [{**base_row(rows), "method": method, "strength": 0.0}, *own]


def value_at(points: Sequence[dict], level: float, metric: str) -> float | None:
    """`metric` where the curve passes NDCG@10 = `level` (linear between neighbouring strengths; the better value
    where it passes more than once); None where it never does."""
    check_metric(metric)
    sign = BETTER[metric]
    found: list[float] = []
    for a, b in zip(points, points[1:], strict=False):
        lo, hi = sorted((a[ACCURACY], b[ACCURACY]))
        if not lo <= level <= hi:
            continue
        if hi == lo:  # a flat segment: both ends are at this accuracy
            found += [a[metric], b[metric]]
            continue
        t = (level - a[ACCURACY]) / (b[ACCURACY] - a[ACCURACY])
        found.append(a[metric] + t * (b[metric] - a[metric]))
    if not found and len(points) == 1 and points[0][ACCURACY] == level:
        found.append(points[0][metric])
    return max(found, key=lambda v: sign * v) if found else None


def compare_curves(rows: Sequence[dict], method: str = "popsteer", baseline: str = "reweight",
                   max_drop: float = 0.05, levels: int = 51) -> dict:
    """`method` against `baseline` at equal NDCG@10 within `max_drop` of the base.

    Per compared metric: the mean (area ÷ width) and the smallest margin over the levels both curves reach
    (positive: `method` is better), and whether `method` is at or above the baseline at every level (None when
    the curves share no accuracy range to compare over). The window is cut where either curve stops (a method
    never swept down to the 5% line is compared where it was measured); `window` says which NDCG@10 range was
    compared and `coverage` what share of the asked window that is.
    """
    if not 0 <= max_drop < 1:
        raise SeqrecError(f"max_drop must be in [0, 1), got {max_drop}")
    if levels < 2:
        raise SeqrecError(f"levels must be at least 2, got {levels}")
    check_method(rows, method)
    check_method(rows, baseline)
    base = base_row(rows)[ACCURACY]
    ours, theirs = curve(rows, method), curve(rows, baseline)
    floor = (1.0 - max_drop) * base
    low = max(floor, min(p[ACCURACY] for p in ours), min(p[ACCURACY] for p in theirs))
    high = min(base, max(p[ACCURACY] for p in ours), max(p[ACCURACY] for p in theirs))
    result: dict = {"method": method, "baseline": baseline, "max_drop": max_drop,
                    "window": [low, high] if low <= high else None,
                    "coverage": (high - low) / (base - floor) if low <= high and base > floor else 0.0}
    grid = np.linspace(low, high, levels) if low < high else np.array([high] if low == high else [])
    for metric in COMPARED:
        at, margins = [], []
        for level in grid:
            a, b = value_at(ours, float(level), metric), value_at(theirs, float(level), metric)
            if a is not None and b is not None:
                at.append(float(level))
                margins.append(BETTER[metric] * (a - b))
        if not margins:
            result[metric] = None
            continue
        width = at[-1] - at[0]
        mean = (sum((m + n) / 2 * (y - x) for x, y, m, n in zip(at, at[1:], margins, margins[1:], strict=False))
                / width if width > 0 else float(np.mean(margins)))
        result[metric] = {"mean_margin": float(mean), "min_margin": float(np.min(margins)),
                          "at_or_above": bool(np.min(margins) >= -1e-9) if width > 0 else None,
                          "levels": len(margins)}
    return result


def turning_point(rows: Sequence[dict], method: str = "popsteer",
                  metrics: Sequence[str] = COMPARED) -> float | None:
    """The strength after which a stronger setting makes any of `metrics` worse again, by more than
    `TURN_TOLERANCE` (deep-long-tail coverage falls, Gini rises): the curve has turned and stronger steering only
    costs. None while every metric improves (or stays) with strength."""
    check_method(rows, method)
    points = curve(rows, method)
    turns = []
    for metric in metrics:
        check_metric(metric)
        sign = BETTER[metric]
        for a, b in zip(points, points[1:], strict=False):
            if sign * (b[metric] - a[metric]) < -TURN_TOLERANCE:
                turns.append(a["strength"])
                break
    return min(turns) if turns else None


def choose_strength(rows: Sequence[dict], method: str, max_drop: float = 0.05,
                    metric: str = "deep_lt_coverage@10") -> dict | None:
    """The `method` row with the best `metric` whose NDCG@10 is within `max_drop` of the base (ties: the milder
    strength); None when no setting is."""
    check_metric(metric)
    check_method(rows, method)
    floor = (1.0 - max_drop) * base_row(rows)[ACCURACY]
    ok = [r for r in rows if r["method"] == method and r[ACCURACY] >= floor]
    sign = BETTER[metric]
    return max(ok, key=lambda r: (sign * r[metric], -r["strength"]), default=None)
