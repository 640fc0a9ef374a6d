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
