"""Full-ranking evaluation: ranks, seen-item masking, chunking, user order, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.catalog import ItemCatalog, popularity_labels
from seqrec.data.interactions import Sequences
from seqrec.data.splits import EvalSplit, ItemStats, SplitData
from seqrec.errors import SeqrecError
from seqrec.evaluation.baselines import MostPopular
from seqrec.evaluation.evaluate import evaluate, rank_split
from seqrec.models import build_model

INF = float("-inf")
# Six items; max_len 3. User 0's history is longer than max_len: item 1 is seen but outside the model's input.
HISTORIES = [[1, 2, 3, 4], [5], [2, 6]]
TARGETS = [5, 3, 1]
SCORES = {  # what the scorer returns for each (trimmed) input history, columns 0..6
    (2, 3, 4): [INF, 9, 8, 7, 6, 5, 4],
    (5,): [INF, 1, 2, 3, 4, 5, 6],
    (2, 6): [INF, 3, 6, 1, 2, 0, 5],
}
# masked: user 0 ranks 5 among {5: 5, 6: 4} -> 0; user 1 ranks 3 among {1, 2, 3, 4, 6} -> 2 (4 and 6 above);
# user 2 ranks 1 (score 3) among {1, 3, 4, 5} -> 0.  unmasked: 4, 3 and 2 items score higher.
MASKED_RANKS, UNMASKED_RANKS = [0, 2, 0], [4, 3, 2]


class FixedScorer:
    """Scores looked up by the non-padding input items; records the inputs it was given."""

    def __init__(self, max_len: int = 3) -> None:
        self.max_len = max_len
        self.device = torch.device("cpu")
        self.inputs: list[list[tuple[int, ...]]] = []

    def score(self, items: torch.Tensor) -> torch.Tensor:
        keys = [tuple(int(i) for i in row if i) for row in items]
        self.inputs.append(keys)
        return torch.tensor([SCORES[key] for key in keys])


def hand_split(histories: list[list[int]] = HISTORIES, targets: list[int] = TARGETS) -> EvalSplit:
    counts = np.array([0, 3, 3, 2, 2, 1, 1])
    stats = ItemStats(counts, popularity_labels(counts))
    catalog = ItemCatalog(6, titles=["", "a", "b", "c", "d", "e", "f"],
                          attributes={"genre": [(), ("X",), ("Y",), ("X",), ("Y",), ("X",), ("Y",)]})
    return EvalSplit("test", np.arange(len(histories)), Sequences.from_lists(histories), np.array(targets), 6,
                     stats, catalog)


def test_ranks_and_top_k_by_hand() -> None:
    ranking = rank_split(FixedScorer(), hand_split(), k=2)
    assert ranking.ranks.tolist() == MASKED_RANKS
    assert ranking.top.tolist() == [[5, 6], [6, 4], [1, 4]]
    unmasked = rank_split(FixedScorer(), hand_split(), k=2, mask_seen=False)
    assert unmasked.ranks.tolist() == UNMASKED_RANKS
    assert unmasked.top.tolist() == [[1, 2], [6, 5], [2, 6]]


def test_metrics_by_hand() -> None:
    out = evaluate(FixedScorer(), hand_split(), ks=(1, 3), metrics="accuracy")
    assert out == pytest.approx({
        "HR@1": 2 / 3, "NDCG@1": 2 / 3, "MRR@1": 2 / 3,
        "HR@3": 1.0, "NDCG@3": (1 + 1 / math.log2(4) + 1) / 3, "MRR@3": (1 + 1 / 3 + 1) / 3,
    })
    out = evaluate(FixedScorer(), hand_split(), ks=(3, 5), metrics="accuracy", mask_seen=False)
    assert out == pytest.approx({
        "HR@3": 1 / 3, "NDCG@3": (1 / math.log2(4)) / 3, "MRR@3": (1 / 3) / 3,
        "HR@5": 1.0, "NDCG@5": (1 / math.log2(6) + 1 / math.log2(5) + 1 / math.log2(4)) / 3,
        "MRR@5": (1 / 5 + 1 / 4 + 1 / 3) / 3,
    })


def test_metric_groups_and_attributes() -> None:
    split = hand_split()
    assert set(evaluate(FixedScorer(), split, ks=(2,), metrics="beyond-accuracy")) == {
        "coverage@2", "lt_coverage@2", "deep_lt_coverage@2", "gini@2", "arp@2"}
    out = evaluate(FixedScorer(), split, ks=(2,), metrics="accuracy", attributes=["X"])
    # tops [5, 6], [6, 4], [1, 4]: X items are 1, 3, 5 -> 2 of 6; targets 5 (X, rank 0), 3 (X, rank 2), 1 (X, 0)
    assert out["X_ratio@2"] == pytest.approx(2 / 6)
    assert out["X_HR@2"] == pytest.approx(2 / 3)
    with pytest.raises(SeqrecError):
        evaluate(FixedScorer(), split, metrics="everything")  # type: ignore[arg-type]


def test_seen_items_never_in_top_k_even_beyond_max_len() -> None:
    split = hand_split()
    top = rank_split(FixedScorer(), split, k=2).top
    for row, history in enumerate(HISTORIES):
        assert not set(top[row]) & set(history)
    assert 1 not in top[0]  # outside the 3-item input window, still masked
    assert 1 in rank_split(FixedScorer(), split, k=2, mask_seen=False).top[0]


def test_the_model_sees_only_the_last_max_len_items_in_split_order() -> None:
    scorer = FixedScorer()
    ranks = rank_split(scorer, hand_split(), k=2, chunk_size=1).ranks
    # chunks go shortest history first (lengths 3, 1, 2 -> users 1, 2, 0); results come back in split order
    assert scorer.inputs == [[(5,)], [(2, 6)], [(2, 3, 4)]]
    assert ranks.tolist() == MASKED_RANKS


def test_chunk_size_does_not_change_results(model_name: str, tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(model_name, max_len=6), tiny_data.num_items)  # many histories > 6
    one = rank_split(model, tiny_data.test, k=10, chunk_size=1)
    some = rank_split(model, tiny_data.test, k=10, chunk_size=7)
    all_ = rank_split(model, tiny_data.test, k=10, chunk_size=1000)
    assert torch.equal(one.ranks, all_.ranks) and torch.equal(some.ranks, all_.ranks)
    assert np.array_equal(one.top, all_.top) and np.array_equal(some.top, all_.top)
    assert evaluate(model, tiny_data.test, ks=(5, 10), chunk_size=1) == evaluate(
        model, tiny_data.test, ks=(5, 10), chunk_size=1000)


def test_cut_offs_above_the_catalogue_size(tiny_data: SplitData) -> None:
    scorer = MostPopular(tiny_data.item_stats.counts)
    out = evaluate(scorer, tiny_data.test, ks=(10, 50))  # 40 items < 50
    assert out["HR@50"] == 1.0 and out["coverage@50"] >= out["coverage@10"]
    assert rank_split(scorer, tiny_data.test, k=50).top.shape == (len(tiny_data.test), 40)


def test_user_order_is_the_split_order(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    split = tiny_data.test
    assert not np.all(np.diff(split.histories.lengths) >= 0)  # the split is not already sorted by length
    ranking = rank_split(model, split, k=5, chunk_size=8)
    for row in (0, 17, len(split) - 1):
        alone = EvalSplit("test", split.users[row : row + 1], split.histories.take([row]), split.targets[row : row + 1],
                          split.num_items, split.item_stats, split.catalog)
        single = rank_split(model, alone, k=5)
        assert single.ranks.item() == ranking.ranks[row].item()
        assert single.top[0].tolist() == ranking.top[row].tolist()


def test_empty_split_raises() -> None:
    empty = hand_split(histories=[], targets=[])
    with pytest.raises(SeqrecError, match="test split has no users"):
        evaluate(FixedScorer(), empty)


def test_most_popular_scores_are_training_counts(tiny_data: SplitData) -> None:
    counts = np.bincount(tiny_data.train.items, minlength=tiny_data.num_items + 1)
    assert np.array_equal(tiny_data.item_stats.counts, counts)
    scorer = MostPopular(tiny_data.item_stats.counts)
    scores = scorer.score(torch.zeros(3, 1, dtype=torch.long))
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.equal(scores[:, 1:], torch.tensor(counts[1:], dtype=torch.float32).expand(3, -1))
    # its rank = other unseen items at least as popular as the target (ties rank against the target)
    split = tiny_data.test
    expected = []
    for row, target in enumerate(split.targets):
        unseen = np.setdiff1d(np.arange(1, tiny_data.num_items + 1), split.histories[row])
        others = unseen[unseen != target]
        expected.append(int((counts[others] >= counts[target]).sum()) if target in unseen else tiny_data.num_items)
    assert rank_split(scorer, split, k=10).ranks.tolist() == expected


class ConstantScorer:
    """Every item scores the same (a model whose weights are all zero); `value` may be NaN or infinite."""

    def __init__(self, value: float = 0.0, bad_row: int | None = None) -> None:
        self.max_len, self.device, self.value, self.bad_row = 3, torch.device("cpu"), value, bad_row

    def score(self, items: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(items.shape[0], 7)
        if self.bad_row is not None and len(items) > self.bad_row:
            scores[self.bad_row, 3] = self.value
        else:
            scores[:, 1:] = self.value
        scores[:, 0] = INF
        return scores


@pytest.mark.parametrize("mask_seen", [True, False])
def test_ties_rank_against_the_target(mask_seen: bool) -> None:
    """A constant scorer ranks each target after every other candidate: HR = NDCG = 0, never 1."""
    split = hand_split()
    ranking = rank_split(ConstantScorer(), split, k=2, mask_seen=mask_seen)
    # candidates with the target's score: 6 items minus (masked) seen ones; the target is last among them
    unseen = [6 - len(set(h)) for h in HISTORIES]
    assert ranking.ranks.tolist() == ([n - 1 for n in unseen] if mask_seen else [5, 5, 5])
    out = evaluate(ConstantScorer(), split, ks=(1, 2, 5), metrics="accuracy", mask_seen=mask_seen)
    assert out["HR@1"] == 0.0 and out["NDCG@1"] == 0.0
    # masked ranks 1, 4, 3; unmasked, 5 other items share the target's score: rank 5 is outside the top 5
    assert out["HR@2"] == pytest.approx(1 / 3 if mask_seen else 0.0)
    assert out["HR@5"] == (1.0 if mask_seen else 0.0)


def test_a_partial_tie_puts_the_target_after_its_equals() -> None:
    scores = torch.tensor([[INF, 3.0, 2.0, 2.0, 2.0, 1.0]])
    from seqrec.evaluation.evaluate import pessimistic_ranks

    assert pessimistic_ranks(scores, torch.tensor([3])).tolist() == [3]  # item 1 above; 2 and 4 tie with it
    assert pessimistic_ranks(scores, torch.tensor([1])).tolist() == [0]
    assert pessimistic_ranks(scores, torch.tensor([5])).tolist() == [4]


def test_all_zero_weights_give_zero_hit_rate(tiny_data: SplitData) -> None:
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    out = evaluate(model, tiny_data.test, ks=(10,), metrics="accuracy")
    assert out["HR@10"] == 0.0 and out["NDCG@10"] == 0.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("bad_row", [None, 1])
def test_non_finite_scores_are_an_error_not_a_metric(value: float, bad_row: int | None) -> None:
    from seqrec.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="NaN or infinite scores.*train.lr"):
        evaluate(ConstantScorer(value, bad_row), hand_split(), ks=(1,))


def test_nan_weights_are_an_error(tiny_data: SplitData) -> None:
    from seqrec.errors import NonFiniteError

    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError):
        evaluate(model, tiny_data.test, ks=(10,))
