"""The numbers the accuracy-curve and rare-target benchmarks print, on hand-made inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_curve_summary_takes_the_first_epoch_at_each_target_and_the_best_valid_epoch() -> None:
    curve = [{"epoch": e, "train_seconds": 10.0 * e, "valid_NDCG@10": v, "test_NDCG@10": t}
             for e, v, t in [(1, 0.05, 0.04), (2, 0.12, 0.11), (3, 0.14, 0.131), (4, 0.13, 0.152), (5, 0.15, 0.149)]]
    summary = _module("accuracy_curve").summarise(curve, [0.10, 0.13, 0.15, 0.2])
    assert summary["reached"] == {"0.1": {"epoch": 2, "train_seconds": 20.0},
                                  "0.13": {"epoch": 3, "train_seconds": 30.0},
                                  "0.15": {"epoch": 4, "train_seconds": 40.0}, "0.2": None}
    assert (summary["best_valid_epoch"], summary["test_at_best_valid"], summary["max_test"]) == (5, 0.149, 0.152)
    assert (summary["epochs"], summary["train_seconds"]) == (5, 50.0)


def test_rare_target_slices_by_hand() -> None:
    gains = np.array([1.0, 0.5, 0.0, 0.25, 0.0])
    counts = np.array([0, 3, 10, 50, 0])  # training occurrences of each user's test item
    out = _module("rare_targets").rare_slices(gains, counts, [5, 20, 1000])
    assert out["rare <= 5 users"] == 3 and out["rare <= 5 NDCG@10"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert out["rare <= 20 users"] == 4 and out["rare <= 20 NDCG@10"] == pytest.approx(0.375)
    assert out["rare <= 1000 users"] == 5 and out["rare <= 1000 NDCG@10"] == pytest.approx(0.35)
    assert out["rare 0 users"] == 2 and out["rare 0 NDCG@10"] == pytest.approx(0.5)
    empty = _module("rare_targets").rare_slices(gains, counts + 100, [5])
    assert empty["rare <= 5 users"] == 0 and empty["rare <= 5 NDCG@10"] is None


def test_steering_suite_targets_values_on_5_to_50_percent_and_formats_mean_and_spread() -> None:
    from seqrec.data.catalog import ItemCatalog

    suite = _module("steering_suite")
    genres = [(), *[("Drama",)] * 12, *[("Comedy", "Drama")] * 3, ("Horror",), *[("Drama",)] * 3]  # 19 items
    catalog = ItemCatalog(num_items=19, attributes={"genre": genres})
    # Drama is on 18 of 19 items (too common), Comedy on 3 (15.8%), Horror on 1 (5.3%)
    assert suite.attribute_targets(catalog) == [("Comedy", 3 / 19), ("Horror", 1 / 19)]
    assert suite.mean_std([0.1, 0.3], "{:+.3f}") == "+0.200 ± 0.141"
    assert suite.mean_std([0.25]) == "0.250" and suite.mean_std([None]) == "–"


def test_steering_suite_recomputes_choices_from_the_rows() -> None:
    suite = _module("steering_suite")

    def row(method: str, strength: float, ndcg: float, cov: float) -> dict:
        return {"method": method, "strength": strength, "NDCG@10": ndcg, "deep_lt_coverage@10": cov,
                "gini@10": 1.0 - cov}

    valid = [row("base", 0, 0.2, 0.5), row("popsteer", 1, 0.195, 0.6), row("popsteer", 2, 0.17, 0.9),
             row("reweight", 4, 0.192, 0.55)]
    test = [row("base", 0, 0.21, 0.5), row("popsteer", 1, 0.2, 0.61), row("popsteer", 2, 0.18, 0.88),
            row("reweight", 4, 0.2, 0.57)]
    result = {"valid": {"rows": valid}, "test": {"rows": test}}
    suite.recompute({"popsteer": {"variants": {"v": result}}})
    assert result["chosen"]["popsteer"] == test[1] and result["chosen"]["reweight"] == test[3]  # α 2 fails 5%
    assert result["test"]["comparison"]["deep_lt_coverage@10"]["at_or_above"] is True


def test_steering_suite_tables_by_hand() -> None:
    suite = _module("steering_suite")

    def row(method: str, strength: float, ndcg: float, cov: float) -> dict:
        return {"method": method, "strength": strength, "NDCG@10": ndcg, "deep_lt_coverage@10": cov,
                "gini@10": 1.0 - cov}

    rows = [row("base", 0, 0.2, 0.5), row("popsteer", 1, 0.195, 0.6), row("reweight", 4, 0.19, 0.6)]
    variant = {"valid": {"rows": rows}, "test": {"rows": rows}}
    record = {"dataset": "toy", "seed": 0, "popsteer": {"variants": {"default": variant}}, "recftt": {
        "sae": {"valid_base_NDCG@10": 0.2, "valid_sae_NDCG@10": 0.19, "valid_fvu": 0.05},
        "targets": {"A": {"params": {"weight": 1.0}, "test": {"tuned_target": 0.625, "base_target": 0.5,
                                                              "tuned_overall": 0.196, "base_overall": 0.2}},
                    "B": {"params": {"weight": 5.0}, "test": {"tuned_target": 0.375, "base_target": 0.5,
                                                              "tuned_overall": 0.2, "base_overall": 0.2}}}}}
    suite.recompute(record)
    cells = suite.popsteer_table([record], "default")[2].split(" | ")
    # α 1: NDCG 0.195, coverage 0.6/0.5 = 1.2×, Gini 0.4; β 4 is 5% below the base: still inside the window
    assert cells[3:7] == ["1", "0.1950", "1.200", "0.400"] and cells[7:11] == ["4", "0.1900", "1.200", "0.400"]
    # PopSteer reaches 0.6 at 0.195, re-weighting at 0.19: margins grow linearly to 0.05 at 0.195, then the
    # window ends where PopSteer stops (half of it): mean 0.025, smallest 0
    assert cells[11] == "50%" and cells[12] == "+0.025 / +0.000" and cells[14] == "1 of 1"
    recftt = suite.recftt_table([record])[2].split(" | ")
    # target gains +25% and −25% (median 0%), overall −2% and 0%; the SAE costs 5% of valid NDCG@10
    assert recftt[3:10] == ["5.0%", "0.050", "+0.0%", "+0.0%", "-25.0%", "-1.0% / -2.0%", "1: 1, 5: 1 |"]
