"""Training objectives as pure functions of (model, batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqrec.models.base import SequentialEncoder


def full_softmax_ce(hidden: torch.Tensor, targets: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over all real items (padding excluded).  hidden [P, D], targets [P] in 1..N, items [N+1, D]"""
    logits = hidden @ item_embeddings[1:].T  # [P, N]
    return F.cross_entropy(logits.float(), targets - 1)


def next_item_loss(model: SequentialEncoder, batch: torch.Tensor, last_only: bool = False) -> torch.Tensor:
    """Shifted-sequence loss: position t predicts item t+1, at every real position (or the last only).

    batch [B, L+1] left-padded training sequences.
    """
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = model.encode(inputs)  # [B, L, D]
    if last_only:
        hidden, inputs, targets = hidden[:, -1:], inputs[:, -1:], targets[:, -1:]
    real = (targets != 0) & (inputs != 0)
    return full_softmax_ce(hidden[real], targets[real], model.item_embeddings())


def cloze_mask(items: torch.Tensor, mask_prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Positions to mask: each real item with probability `mask_prob`, and the last item of rows with none.

    items [B, L] left-padded -> bool [B, L]
    """
    real = items != 0
    draw = torch.rand(items.shape, generator=generator, device="cpu").to(items.device)
    masked = (draw < mask_prob) & real
    none = ~masked.any(dim=1)
    masked[:, -1] |= none & real[:, -1]
    return masked


def cloze_loss(model: SequentialEncoder, batch: torch.Tensor, mask_prob: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """BERT4Rec masked-item loss: predict each masked item from both sides.  batch [B, L]"""
    masked = cloze_mask(batch, mask_prob, generator)
    inputs = torch.where(masked, torch.full_like(batch, model.mask_token), batch)  # type: ignore[attr-defined]
    hidden = model.encode(inputs)  # [B, L, D]
    return full_softmax_ce(hidden[masked], batch[masked], model.item_embeddings())
