"""Ranking metrics as small pure functions of target ranks and top-k lists.

`ranks` are 0-based positions of each user's target in the ranked catalogue (0 = first).
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.catalog import HEAD, TAIL


def hit_rate(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """1 if the target is in the top k.  [E] -> [E]"""
    return (ranks < k).float()


def ndcg(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """1 / log2(rank + 2) inside the top k, else 0 (one relevant item, so IDCG = 1).  [E] -> [E]"""
    return torch.where(ranks < k, 1.0 / torch.log2(ranks.float() + 2.0), torch.zeros_like(ranks, dtype=torch.float))


def mrr(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """1 / (rank + 1) inside the top k, else 0.  [E] -> [E]"""
    return torch.where(ranks < k, 1.0 / (ranks.float() + 1.0), torch.zeros_like(ranks, dtype=torch.float))


ACCURACY = {"HR": hit_rate, "NDCG": ndcg, "MRR": mrr}


def accuracy_metrics(ranks: torch.Tensor, ks: tuple[int, ...], prefix: str = "") -> dict[str, float]:
    """Mean HR/NDCG/MRR at every k."""
    if len(ranks) == 0:
        return {}
    return {f"{prefix}{name}@{k}": fn(ranks, k).mean().item() for k in ks for name, fn in ACCURACY.items()}


def recommendation_counts(top: np.ndarray, num_items: int) -> np.ndarray:
    """How often each item appears in the lists.  top [E, k] internal ids -> [N+1]"""
    return np.bincount(top.ravel(), minlength=num_items + 1)


def gini(counts: np.ndarray) -> float:
    """Gini index of recommendation counts over all items (zeros included): 0 = equal, ->1 = concentrated."""
    c = np.sort(counts.astype(np.float64))
    n, total = len(c), c.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(2.0 * (i * c).sum() / (n * total) - (n + 1) / n)


def beyond_accuracy(top: np.ndarray, k: int, labels: np.ndarray, pop_scores: np.ndarray) -> dict[str, float]:
    """Catalogue coverage, long-tail (non-head) and deep-long-tail (tail) coverage, Gini and ARP of top-k lists.

    top [E, >=k] internal ids; labels/pop_scores [N+1] (index 0 = padding, ignored). ARP averages each user's
    mean item popularity over users.
    """
    lists = top[:, :k]
    num_items = len(labels) - 1
    counts = recommendation_counts(lists, num_items)[1:]
    shown = counts > 0
    real_labels = labels[1:]
    non_head, tail = real_labels != HEAD, real_labels == TAIL
    return {
        f"coverage@{k}": float(shown.mean()),
        f"lt_coverage@{k}": float(shown[non_head].sum() / max(non_head.sum(), 1)),
        f"deep_lt_coverage@{k}": float(shown[tail].sum() / max(tail.sum(), 1)),
        f"gini@{k}": gini(counts),
        f"arp@{k}": float(pop_scores[lists].mean(axis=1).mean()) if len(lists) else 0.0,
    }


def attribute_metrics(ranks: torch.Tensor, top: np.ndarray, targets: np.ndarray, has_value: np.ndarray,
                      value: str, ks: tuple[int, ...]) -> dict[str, float]:
    """Share of attribute items in the top-k (ratio@k) and HR/NDCG over users whose target has the attribute.

    has_value [N+1] bool; top [E, >=max(ks)]; targets [E].
    """
    out = {f"{value}_ratio@{k}": float(has_value[top[:, :k]].mean()) for k in ks}
    with_attr = torch.from_numpy(has_value[targets])
    for k in ks:
        if with_attr.any():
            out[f"{value}_HR@{k}"] = hit_rate(ranks[with_attr], k).mean().item()
            out[f"{value}_NDCG@{k}"] = ndcg(ranks[with_attr], k).mean().item()
    return out
