"""Alignment losses: the retriever's neighbour distribution against the recommender's preference."""

from __future__ import annotations

from typing import Literal

import torch

from seqrec.retrieval.fusion import Similarity, masked_softmax, neighbour_similarity


def recommendation_distribution(h: torch.Tensor, values: torch.Tensor, target_embedding: torch.Tensor,
                                kept: torch.Tensor, *, alpha: float, kind: Literal["sigmoid", "softmax"] = "sigmoid",
                                temperature: float = 1.0) -> torch.Tensor:
    """How much each neighbour, mixed into h, favours the true item; a detached target.  -> [P, k]

    h [P, D], values [P, k, D], target_embedding [P, D] (= E[y]), kept [P, k].  The score of neighbour j is
    <(1-α)h + αV_j, E[y]>; "sigmoid" normalises sigmoid(score) over kept j, "softmax" takes softmax(score/τ).
    Rows sum to 1 over kept neighbours (all 0 when none is kept).
    """
    with torch.no_grad():
        mixed = (1 - alpha) * h.unsqueeze(1) + alpha * values  # [P, k, D]
        score = (mixed * target_embedding.unsqueeze(1)).sum(-1)  # [P, k]
        if kind == "sigmoid":
            s = torch.sigmoid(score) * kept
            return s / (s.sum(-1, keepdim=True) + 1e-8)
        if kind == "softmax":
            return masked_softmax(score / temperature, kept)
        raise ValueError(f"kind must be 'sigmoid' or 'softmax', got {kind!r}")


def _row_kl(p: torch.Tensor, q: torch.Tensor, kept: torch.Tensor, eps: float) -> torch.Tensor:  # -> [P]
    terms = p * torch.log((p + eps) / (q + eps))  # [P, k]
    return torch.where(kept, terms, torch.zeros_like(terms)).sum(-1)


def _mean_over_rows(per_row: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Mean over rows with at least one kept neighbour; 0 (still in the graph) when there are none."""
    rows = kept.any(-1)
    return (per_row * rows).sum() / rows.sum().clamp(min=1)


def kl_divergence(p_ret: torch.Tensor, p_rec: torch.Tensor, kept: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KL(P_ret || P_rec) summed over kept neighbours, averaged over rows with any.  [P, k] x2 -> scalar"""
    return _mean_over_rows(_row_kl(p_ret, p_rec, kept, eps), kept)


def js_divergence(p_ret: torch.Tensor, p_rec: torch.Tensor, kept: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Jensen-Shannon divergence ½KL(P_ret||M) + ½KL(P_rec||M), M = (P_ret+P_rec)/2.  [P, k] x2 -> scalar"""
    m = (p_ret + p_rec) / 2
    per_row = 0.5 * _row_kl(p_ret, m, kept, eps) + 0.5 * _row_kl(p_rec, m, kept, eps)
    return _mean_over_rows(per_row, kept)


def retrieval_distribution(query: torch.Tensor, keys: torch.Tensor, kept: torch.Tensor, *, temperature: float,
                           similarity: Similarity = "cosine") -> torch.Tensor:
    """Softmax over kept neighbours of sim(query, S_j)/τ, 0 elsewhere (= `Fused.attention`).  -> [P, k]"""
    return masked_softmax(neighbour_similarity(query, keys, kept, similarity) / temperature, kept)
