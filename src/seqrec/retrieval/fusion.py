"""Fuse an encoder state with its retrieved neighbours: attention over keys, weighted sum of values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Similarity = Literal["cosine", "dot"]


@dataclass
class Fused:
    """Result of `fuse`."""

    hidden: torch.Tensor  # [P, D] (1-α_eff)·h + α_eff·K
    attention: torch.Tensor  # [P, k] weights over kept neighbours (0 on dropped/padded; rows with none kept are all 0)
    kept: torch.Tensor  # [P, k] bool: mask & quality >= threshold
    quality: torch.Tensor  # [P, k] cosine(query, S_j) (0 where padded)


def _cosine(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:  # [P, D], [P, k, D] -> [P, k]
    return (F.normalize(query, dim=-1).unsqueeze(1) * F.normalize(keys, dim=-1)).sum(-1)


def neighbour_similarity(query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                         kind: Similarity) -> torch.Tensor:
    """Similarity of each query to its neighbours' keys.  [P, D], [P, k, D], [P, k] -> [P, k], -inf where ~mask"""
    if kind == "cosine":
        sim = _cosine(query, keys)
    elif kind == "dot":
        sim = (query.unsqueeze(1) * keys).sum(-1)
    else:
        raise ValueError(f"similarity must be 'cosine' or 'dot', got {kind!r}")
    return sim.masked_fill(~mask, float("-inf"))


def masked_softmax(logits: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Softmax over kept entries of the last axis; 0 elsewhere and on rows with none kept (finite gradients)."""
    filled = logits.masked_fill(~kept, torch.finfo(logits.dtype).min)  # finite, so all-dropped rows give no NaN
    return torch.softmax(filled, dim=-1) * kept


def fuse(h: torch.Tensor, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *,
         alpha: float, temperature: float, similarity: Similarity = "cosine",
         quality_threshold: float = 0.0) -> Fused:
    """Mix h with the attention-weighted sum of neighbour values.

    h, query [P, D]; keys, values [P, k, D]; mask [P, k] (False = padding).
    The attention is softmax(sim(query, S_j) / temperature) over kept neighbours, where a neighbour is kept
    when it is real and cosine(query, S_j) >= quality_threshold; a threshold <= -1 disables the filter.
    Rows with no kept neighbour return h unchanged; alpha == 0 returns h exactly.
    """
    cosine = _cosine(query, keys)  # [P, k]
    quality = cosine.masked_fill(~mask, 0.0)
    kept = mask & (quality >= quality_threshold) if quality_threshold > -1 else mask.clone()
    sim = (cosine.masked_fill(~kept, float("-inf")) if similarity == "cosine"  # the cosine computed once
           else neighbour_similarity(query, keys, kept, similarity))
    attention = masked_softmax(sim / temperature, kept)  # [P, k]
    if alpha == 0:
        return Fused(hidden=h, attention=attention, kept=kept, quality=quality)
    knowledge = torch.einsum("pk,pkd->pd", attention, values)  # [P, D]
    mixed = (1 - alpha) * h + alpha * knowledge
    hidden = torch.where(kept.any(-1, keepdim=True), mixed, h)  # α_eff = 0 on rows with no kept neighbour
    return Fused(hidden=hidden, attention=attention, kept=kept, quality=quality)
