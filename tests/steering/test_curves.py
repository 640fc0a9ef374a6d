"""Curves compared at equal NDCG@10: interpolation, margins and the window by hand; the turning point; the
validation choice of a strength."""

from __future__ import annotations

import pytest

from seqrec.errors import SeqrecError
from seqrec.steering.curves import choose_strength, compare_curves, curve, turning_point, value_at


def row(method: str, strength: float, ndcg: float, cov: float, gini: float) -> dict:
    return {"method": method, "strength": strength, "NDCG@10": ndcg, "deep_lt_coverage@10": cov, "gini@10": gini}


BASE = row("base", 0.0, 0.20, 0.50, 0.80)


def test_value_at_interpolates_between_strengths() -> None:
    points = curve([BASE, row("popsteer", 1.0, 0.18, 0.70, 0.60)], "popsteer")
    assert [p["strength"] for p in points] == [0.0, 1.0]
    assert value_at(points, 0.19, "deep_lt_coverage@10") == pytest.approx(0.60)
    assert value_at(points, 0.19, "gini@10") == pytest.approx(0.70)
    assert value_at(points, 0.17, "deep_lt_coverage@10") is None  # below the curve's reach


def test_a_curve_that_passes_a_level_twice_gives_the_better_value() -> None:
    # accuracy falls, rises back and falls again: 0.19 is passed on three segments
    points = curve([BASE, row("popsteer", 1, 0.18, 0.6, 0.7), row("popsteer", 2, 0.20, 0.9, 0.5),
                    row("popsteer", 3, 0.16, 0.4, 0.9)], "popsteer")
    assert value_at(points, 0.19, "deep_lt_coverage@10") == pytest.approx(0.775)  # max(0.55, 0.75, 0.775)
    assert value_at(points, 0.19, "gini@10") == pytest.approx(0.6)  # min(0.75, 0.6, 0.6)


def test_margins_and_window_by_hand() -> None:
    # PopSteer reaches 0.19 with coverage 0.70 (re-weighting 0.60): linear in NDCG on both, so the coverage margin
    # grows linearly from 0 at the base to 0.10 at 0.19 (mean 0.05); Gini: 0.60 vs 0.70, margin mean 0.05 too
    rows = [BASE, row("popsteer", 1.0, 0.19, 0.70, 0.60), row("reweight", 4.0, 0.19, 0.60, 0.70),
            row("reweight", 8.0, 0.17, 0.80, 0.50)]
    result = compare_curves(rows, max_drop=0.05)
    assert result["window"] == pytest.approx([0.19, 0.20])
    assert result["coverage"] == pytest.approx(1.0)
    for metric in ("deep_lt_coverage@10", "gini@10"):
        assert result[metric]["mean_margin"] == pytest.approx(0.05)
        assert result[metric]["min_margin"] == pytest.approx(0.0, abs=1e-9)
        assert result[metric]["at_or_above"]


def test_below_the_baseline_and_a_short_window() -> None:
    # PopSteer only swept down to 0.195 (half the 5% window), and it is worse than re-weighting there
    rows = [BASE, row("popsteer", 0.5, 0.195, 0.52, 0.79), row("reweight", 8.0, 0.19, 0.60, 0.70)]
    result = compare_curves(rows, max_drop=0.05)
    assert result["window"] == pytest.approx([0.195, 0.20])
    assert result["coverage"] == pytest.approx(0.5)
    cov = result["deep_lt_coverage@10"]
    assert cov["min_margin"] == pytest.approx(0.52 - 0.55) and not cov["at_or_above"]
    assert result["gini@10"]["min_margin"] == pytest.approx(-(0.79 - 0.75))


def test_turning_point_is_the_last_strength_before_a_metric_gets_worse() -> None:
    rising = [BASE, row("popsteer", 1, 0.19, 0.6, 0.7), row("popsteer", 2, 0.18, 0.7, 0.6)]
    assert turning_point(rising) is None
    turned = [*rising, row("popsteer", 4, 0.15, 0.65, 0.65)]  # coverage falls and Gini rises after α 2
    assert turning_point(turned) == 2
    gini_first = [*rising, row("popsteer", 3, 0.17, 0.75, 0.62), row("popsteer", 4, 0.15, 0.6, 0.7)]
    assert turning_point(gini_first) == 2  # Gini turns after α 2 while coverage still rises to α 3
    assert turning_point([BASE, row("popsteer", 1, 0.19, 0.4, 0.9)]) == 0  # worse from the first step


def test_choose_strength_keeps_the_accuracy_window() -> None:
    rows = [BASE, row("popsteer", 1, 0.195, 0.6, 0.7), row("popsteer", 2, 0.189, 0.9, 0.5),
            row("reweight", 4, 0.19, 0.55, 0.75)]
    assert choose_strength(rows, "popsteer")["strength"] == 1  # α 2 is 5.5% below the base
    assert choose_strength(rows, "popsteer", max_drop=0.1)["strength"] == 2
    assert choose_strength(rows, "reweight")["strength"] == 4
    assert choose_strength(rows, "popsteer", max_drop=0.0) is None
    with pytest.raises(SeqrecError, match="no base row"):
        choose_strength(rows[1:], "popsteer")


def test_a_flat_segment_offers_both_of_its_ends() -> None:
    points = curve([BASE, row("popsteer", 1.0, 0.20, 0.70, 0.60)], "popsteer")  # α 1 changed no ranking
    assert value_at(points, 0.20, "deep_lt_coverage@10") == pytest.approx(0.70)
    assert value_at(points, 0.20, "gini@10") == pytest.approx(0.60)


def test_the_mean_margin_is_the_area_over_the_width() -> None:
    # margin on coverage: 0 at the base, 0.1 at NDCG 0.195, 0 at 0.19 (a triangle): area 0.0005 over width 0.01
    rows = [BASE, row("popsteer", 1, 0.195, 0.70, 0.60), row("popsteer", 2, 0.19, 0.70, 0.60),
            row("reweight", 8, 0.19, 0.70, 0.60)]
    assert compare_curves(rows, levels=3)["deep_lt_coverage@10"]["mean_margin"] == pytest.approx(0.05)


def test_comparisons_refuse_what_they_cannot_measure() -> None:
    rows = [BASE, row("popsteer", 1.0, 0.19, 0.70, 0.60)]
    with pytest.raises(SeqrecError, match="no 'reweight' rows; its methods: popsteer"):
        compare_curves(rows)
    with pytest.raises(SeqrecError, match="no 'reweigh' rows"):
        choose_strength(rows, "reweigh")
    full = [*rows, row("reweight", 4.0, 0.19, 0.60, 0.70)]
    with pytest.raises(SeqrecError, match="max_drop must be in"):
        compare_curves(full, max_drop=-0.1)
    with pytest.raises(SeqrecError, match="levels must be at least 2"):
        compare_curves(full, levels=1)
    with pytest.raises(SeqrecError, match="no direction known for 'NDCG@10'"):
        choose_strength(full, "popsteer", metric="NDCG@10")
    at_base = compare_curves(full, max_drop=0.0)  # a window of one level: nothing to say "at or above" about
    assert at_base["deep_lt_coverage@10"]["at_or_above"] is None


def test_a_dip_within_the_tolerance_is_not_a_turn() -> None:
    rows = [BASE, row("popsteer", 1, 0.19, 0.6, 0.7), row("popsteer", 2, 0.18, 0.5995, 0.6999)]
    assert turning_point(rows) is None
