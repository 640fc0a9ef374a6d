"""Ranking and beyond-accuracy metrics on hand-computed cases (definitions in docs/conventions.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.catalog import HEAD, MID, TAIL
from seqrec.data.splits import ItemStats
from seqrec.evaluation.metrics import (
    accuracy_metrics,
    attribute_metrics,
    beyond_accuracy,
    gini,
    hit_rate,
    mrr,
    ndcg,
    recommendation_counts,
)

RANKS = torch.tensor([0, 1, 4, 9, 10, 100])


def test_per_user_values() -> None:
    assert hit_rate(RANKS, 5).tolist() == [1, 1, 1, 0, 0, 0]
    assert mrr(RANKS, 10).tolist() == pytest.approx([1, 1 / 2, 1 / 5, 1 / 10, 0, 0])
    assert ndcg(RANKS, 10).tolist() == pytest.approx([1, 1 / math.log2(3), 1 / math.log2(6), 1 / math.log2(11), 0, 0])


@pytest.mark.parametrize(("k", "hr", "ndcg_sum", "mrr_sum"), [
    (1, 1, 1.0, 1.0),
    (5, 3, 1 + 1 / math.log2(3) + 1 / math.log2(6), 1 + 1 / 2 + 1 / 5),
    (10, 4, 1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11), 1 + 1 / 2 + 1 / 5 + 1 / 10),
])
def test_accuracy_means(k: int, hr: int, ndcg_sum: float, mrr_sum: float) -> None:
    out = accuracy_metrics(RANKS, (k,))
    assert out == pytest.approx({f"HR@{k}": hr / 6, f"NDCG@{k}": ndcg_sum / 6, f"MRR@{k}": mrr_sum / 6}, rel=1e-6)


def test_accuracy_keys_and_empty_input() -> None:
    assert list(accuracy_metrics(RANKS, (1, 5), prefix="valid_")) == [
        "valid_HR@1", "valid_NDCG@1", "valid_MRR@1", "valid_HR@5", "valid_NDCG@5", "valid_MRR@5"]
    assert accuracy_metrics(torch.tensor([], dtype=torch.long), (10,)) == {}


@pytest.mark.parametrize(("counts", "expected"), [
    ([1, 1, 1, 1], 0.0),
    ([0, 0, 0, 4], 0.75),  # 2·(4·4)/(4·4) − 5/4
    ([4, 0, 0, 0], 0.75),  # order does not matter
    ([1, 2, 3], 2 / 9),  # 2·(1 + 4 + 9)/(3·6) − 4/3
    ([0, 0, 0], 0.0),
    ([], 0.0),
])
def test_gini(counts: list[int], expected: float) -> None:
    assert gini(np.array(counts)) == pytest.approx(expected, abs=1e-12)


# Six items: 1, 2 head; 3, 4 mid; 5, 6 tail. Training counts 10, 6, 2, 1, 1, 0 (20 in all).
LABELS = np.array([MID, HEAD, HEAD, MID, MID, TAIL, TAIL])
COUNTS = np.array([0, 10, 6, 2, 1, 1, 0])
TOP = np.array([[1, 2], [1, 3], [2, 5]])  # three users' top-2 lists


def test_pop_scores_are_training_shares() -> None:
    assert ItemStats(COUNTS, LABELS).pop_scores.tolist() == pytest.approx([0, 0.5, 0.3, 0.1, 0.05, 0.05, 0])


def test_recommendation_counts() -> None:
    assert recommendation_counts(TOP, 6).tolist() == [0, 2, 2, 1, 0, 1, 0]


def test_beyond_accuracy_at_2() -> None:
    out = beyond_accuracy(TOP, 2, LABELS, ItemStats(COUNTS, LABELS).pop_scores)
    assert out == pytest.approx({
        "coverage@2": 4 / 6,  # items 1, 2, 3, 5
        "lt_coverage@2": 2 / 4,  # non-head items 3, 4, 5, 6: 3 and 5 shown
        "deep_lt_coverage@2": 1 / 2,  # tail items 5, 6: 5 shown
        "gini@2": 2 * 29 / (6 * 6) - 7 / 6,  # counts 2, 2, 1, 0, 1, 0 sorted: 0, 0, 1, 1, 2, 2
        "arp@2": ((0.5 + 0.3) / 2 + (0.5 + 0.1) / 2 + (0.3 + 0.05) / 2) / 3,
    })


def test_beyond_accuracy_at_1_uses_only_the_first_column() -> None:
    out = beyond_accuracy(TOP, 1, LABELS, ItemStats(COUNTS, LABELS).pop_scores)
    assert out == pytest.approx({
        "coverage@1": 2 / 6,
        "lt_coverage@1": 0.0,
        "deep_lt_coverage@1": 0.0,
        "gini@1": 2 * 17 / (6 * 3) - 7 / 6,  # counts 2, 1, 0, 0, 0, 0 sorted: 0, 0, 0, 0, 1, 2
        "arp@1": (0.5 + 0.5 + 0.3) / 3,
    })


def test_arp_is_a_mean_of_per_user_means() -> None:
    pop = np.array([0.0, 0.9, 0.1, 0.0])
    top = np.array([[1, 1], [2, 3]])
    assert beyond_accuracy(top, 2, np.zeros(4, dtype=np.int8), pop)["arp@2"] == pytest.approx((0.9 + 0.05) / 2)


def test_attribute_metrics() -> None:
    has_value = np.array([False, False, True, True, False, False, False])  # items 2 and 3 are comedies
    targets = np.array([2, 4, 3])
    ranks = torch.tensor([1, 0, 5])
    out = attribute_metrics(ranks, TOP, targets, has_value, "Comedy", (1, 2))
    assert out == pytest.approx({
        "Comedy_ratio@1": 1 / 3,  # first items 1, 1, 2
        "Comedy_ratio@2": 3 / 6,  # 1, 2 | 1, 3 | 2, 5
        "Comedy_HR@1": 0.0,  # users 0 and 2 have a comedy target, at ranks 1 and 5
        "Comedy_NDCG@1": 0.0,
        "Comedy_HR@2": 1 / 2,
        "Comedy_NDCG@2": (1 / math.log2(3)) / 2,
    })


def test_attribute_metrics_without_attribute_targets_reports_only_ratios() -> None:
    has_value = np.array([False, True, False, False, False, False, False])
    out = attribute_metrics(torch.tensor([0, 0, 0]), TOP, np.array([2, 4, 3]), has_value, "Drama", (2,))
    assert out == {"Drama_ratio@2": pytest.approx(2 / 6)}
