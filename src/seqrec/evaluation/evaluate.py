"""One `evaluate()` for every stage: full-catalogue ranking in user chunks, seen items masked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from seqrec.data.interactions import Sequences
from seqrec.data.splits import EvalSplit
from seqrec.errors import NonFiniteError, SeqrecError
from seqrec.evaluation.metrics import accuracy_metrics, attribute_metrics, beyond_accuracy

DEFAULT_KS = (5, 10, 20, 50)
MetricGroup = Literal["accuracy", "beyond-accuracy", "all"]


class Scorer(Protocol):
    """Anything that scores the whole catalogue from left-padded histories (an encoder or a wrapper)."""

    max_len: int
    device: torch.device

    def score(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, N+1]
        ...


@dataclass
class Ranking:
    """Per-user outcome of full ranking, in the split's user order."""

    ranks: torch.Tensor  # [E] 0-based rank of the target
    top: np.ndarray  # [E, K] internal item ids, best first


ChunkScorer = Callable[[np.ndarray, torch.Tensor], torch.Tensor]  # (rows [C], items [C, W]) -> scores [C, N+1]


@torch.no_grad()
def rank_split(scorer: Scorer, split: EvalSplit, k: int = 50, mask_seen: bool = True,
               chunk_size: int = 1024, max_len: int | None = None) -> Ranking:
    """Score every item for every user in chunks; mask seen items with -inf before ranks and top-k.

    `max_len` shortens the input window below the model's own (never beyond: positions were trained up to it).
    """
    max_len = scorer.max_len if max_len is None else max_len
    if not 1 <= max_len <= scorer.max_len:
        raise SeqrecError(f"max_len must be between 1 and the model's max_len {scorer.max_len}; got {max_len}")
    was_training = getattr(scorer, "training", False)
    if hasattr(scorer, "eval"):
        scorer.eval()  # type: ignore[attr-defined]
    ranking = rank_chunks(lambda rows, items: scorer.score(items), split, max_len, scorer.device, k,
                          mask_seen, chunk_size)
    if was_training:
        scorer.train()  # type: ignore[attr-defined]
    return ranking


@torch.no_grad()
def rank_chunks(score: ChunkScorer, split: EvalSplit, max_len: int, device: torch.device, k: int = 50,
                mask_seen: bool = True, chunk_size: int = 1024) -> Ranking:
    """Full ranking with any chunk scorer (e.g. one that reuses precomputed user vectors by row)."""
    lengths = np.minimum(split.histories.lengths, max_len)
    order = np.argsort(lengths, kind="stable")  # similar lengths per chunk -> less padding
    padded = torch.from_numpy(split.histories.padded(max_len))
    targets = torch.from_numpy(split.targets)
    ranks = torch.empty(len(split), dtype=torch.long)
    k = min(k, split.num_items)  # a cut-off above N lists the whole catalogue
    top = np.zeros((len(split), k), dtype=np.int64)
    for start in range(0, len(split), chunk_size):
        rows = order[start : start + chunk_size]
        width = max(int(lengths[rows].max()), 1)
        items = padded[rows][:, -width:].to(device)
        scores = score(rows, items).float()  # [C, N+1]
        require_finite(scores, split.users[rows])
        if mask_seen:
            mask_seen_items(scores, split.histories.take(rows))
        ranks[rows] = pessimistic_ranks(scores, targets[rows].to(device)).cpu()
        top[rows] = scores.topk(k, dim=1).indices.cpu().numpy()
    return Ranking(ranks, top)


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target with ties broken against it: every other item scoring >= the target is ahead.

    A constant scorer therefore ranks every target last among its equals (HR@k = 0), never first.
    scores [C, N+1], targets [C] -> [C]
    """
    target_scores = scores.gather(1, targets[:, None])  # [C, 1]
    return (scores >= target_scores).sum(1) - 1  # minus the target itself


def require_finite(scores: torch.Tensor, users: np.ndarray) -> None:
    """Raise when any real item (columns 1..N) has a NaN or infinite score; padding (column 0) is -inf by contract.

    scores [C, N+1]; users [C] internal user ids, for the message.
    """
    finite = torch.isfinite(scores[:, 1:]).all(dim=1)  # [C]
    if bool(finite.all()):
        return
    bad = (~finite).nonzero()[:, 0].cpu().numpy()
    raise NonFiniteError(
        f"the model gave NaN or infinite scores to {len(bad)} of {len(users)} users (first: internal user "
        f"{int(users[bad[0]])}); its weights or inputs are not finite numbers. A run trained with too high a "
        "learning rate (train.lr) or with non-finite input values (profiles, features) gives this; retrain it. "
        "Non-finite scores are never turned into a metric")


def mask_seen_items(scores: torch.Tensor, histories: Sequences) -> None:
    """Set every item of row r's history to -inf in `scores[r]`, in place (items older than max_len too).

    scores [R, N+1]; histories has R rows aligned with them.
    """
    rows = torch.from_numpy(histories.row_ids()).to(scores.device)
    scores[rows, torch.from_numpy(histories.items).to(scores.device)] = float("-inf")


def evaluate(scorer: Scorer, split: EvalSplit, ks: tuple[int, ...] = DEFAULT_KS,
             metrics: MetricGroup = "all", attributes: list[str] | None = None,
             mask_seen: bool = True, chunk_size: int = 1024, max_len: int | None = None) -> dict[str, float]:
    """Full-ranking metrics of `scorer` on `split`.

    accuracy: HR (= Recall, one target), NDCG, MRR at each k. beyond-accuracy: coverage, long-tail and
    deep-long-tail coverage, Gini, ARP. `attributes`: attribute values (e.g. ["Comedy"]) for ratio@k and
    HR/NDCG over users whose target has that value. `max_len` (default: the model's) is the input window.
    """
    if len(split) == 0:
        raise SeqrecError(f"the {split.name} split has no users to evaluate")
    if metrics not in ("accuracy", "beyond-accuracy", "all"):
        raise SeqrecError(f"metrics must be accuracy, beyond-accuracy or all; got {metrics!r}")
    ks = tuple(sorted(set(ks)))
    if not ks or min(ks) < 1:
        raise SeqrecError(f"cut-offs k must be positive integers; got {list(ks)}")
    ranking = rank_split(scorer, split, k=max(ks), mask_seen=mask_seen, chunk_size=chunk_size, max_len=max_len)
    return ranking_metrics(ranking, split, ks, metrics, attributes)


def ranking_metrics(ranking: Ranking, split: EvalSplit, ks: tuple[int, ...] = DEFAULT_KS,
                    metrics: MetricGroup = "all", attributes: list[str] | None = None) -> dict[str, float]:
    """The metrics of `evaluate` from a finished ranking (top lists at least max(ks) long)."""
    out: dict[str, float] = {}
    if metrics in ("accuracy", "all"):
        out |= accuracy_metrics(ranking.ranks, ks)
    if metrics in ("beyond-accuracy", "all"):
        stats = split.item_stats
        for k in ks:
            out |= beyond_accuracy(ranking.top, k, stats.labels, stats.pop_scores)
    for value in attributes or []:
        has_value = split.catalog.has_value(value)
        out |= attribute_metrics(ranking.ranks, ranking.top, split.targets, has_value, value, ks)
    return out
