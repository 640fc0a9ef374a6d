"""Recommendation objectives as pure functions of (model, batch), over a choice of softmax output.

Every loss returns a `LossSum` (sum over predicted positions, their count) so that data-parallel training can
divide by the global count and match a single process exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from seqrec.models.base import SequentialEncoder

SoftmaxKind = Literal["full", "chunked", "sampled"]
Encode = Callable[[torch.Tensor], torch.Tensor]  # items [B, L] -> hidden [B, L, D]


@dataclass
class LossSum:
    total: torch.Tensor  # [] sum of per-position losses
    count: torch.Tensor  # [] number of positions (long)

    @property
    def mean(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)


class SoftmaxLoss(Protocol):
    """Summed cross-entropy of hidden states against target items.  hidden [P, D], targets [P] in 1..N"""

    def __call__(self, hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        ...


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Logits in at least fp32 (bf16/fp16 widened, fp64 kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def full_softmax_ce(hidden: torch.Tensor, targets: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over all real items (padding excluded).  hidden [P, D], targets [P], items [N+1, D]"""
    logits = hidden @ item_embeddings[1:].T  # [P, N]
    return F.cross_entropy(_wide(logits), targets - 1, reduction="sum")


class ChunkedSoftmaxCE(torch.autograd.Function):
    """Exact full-softmax CE that never holds more than `chunk` rows of logits, forward or backward.

    The forward keeps only the log-partition per row; the backward recomputes each chunk's logits and
    turns them into gradients in place (softmax - one-hot), so peak memory is [chunk, N] instead of [P, N].
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # noqa: ANN001
                chunk: int) -> torch.Tensor:
        wide = torch.promote_types(hidden.dtype, torch.float32)
        lse = torch.empty(len(hidden), dtype=wide, device=hidden.device)  # [P]
        total = torch.zeros((), dtype=wide, device=hidden.device)
        for start in range(0, len(hidden), chunk):
            rows = slice(start, start + chunk)
            logits = _wide(hidden[rows] @ weight.T)  # [C, N]
            lse[rows] = torch.logsumexp(logits, dim=1)
            total += (lse[rows] - logits.gather(1, targets[rows, None])[:, 0]).sum()
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk = chunk
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        hidden, weight, targets, lse = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]  # a frozen item table needs no [N, D] gradient
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=lse.dtype, device=weight.device) if need_weight else None
        for start in range(0, len(hidden), ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            probs = _wide(hidden[rows] @ weight.T).sub_(lse[rows, None]).exp_()  # [C, N] softmax
            probs[torch.arange(len(probs), device=probs.device), targets[rows]] -= 1.0
            probs.mul_(grad)
            if grad_hidden is not None:
                grad_hidden[rows] = probs.to(weight.dtype) @ weight
            if grad_weight is not None:
                grad_weight += probs.T.to(hidden.dtype) @ hidden[rows]
        return grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype), None, None


def chunked_softmax_ce(chunk: int) -> SoftmaxLoss:
    """Full-softmax CE computed `chunk` positions at a time (same value and gradients as `full_softmax_ce`)."""

    def loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # the function casts logits to fp32 itself
            dtype = torch.promote_types(hidden.dtype, items.dtype)
            return ChunkedSoftmaxCE.apply(hidden.to(dtype), items[1:].to(dtype), targets - 1, chunk)

    return loss


def sampled_softmax_ce(item_probs: torch.Tensor, negatives: int,
                       generator: torch.Generator | None = None) -> SoftmaxLoss:
    """Sampled softmax with logQ correction: `negatives` items shared by the batch, drawn from `item_probs`.

    Every logit (target and negatives) is reduced by log q(item), which makes the sampled softmax a consistent
    estimate of the full one (Bengio & Senecal 2008; Yi et al. 2019). Negatives equal to a row's target are masked.
    item_probs [N] over items 1..N.
    """
    log_q = item_probs.clamp(min=1e-12).log()
    cpu_probs = item_probs.detach().cpu()

    def loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        drawn = torch.multinomial(cpu_probs, negatives, replacement=True, generator=generator)
        neg = drawn.to(hidden.device) + 1  # [K] item ids
        positive = (hidden * items[targets]).sum(-1) - log_q[targets - 1]  # [P]
        negative = hidden @ items[neg].T - log_q[neg - 1]  # [P, K]
        negative = negative.masked_fill(neg[None, :] == targets[:, None], float("-inf"))
        logits = _wide(torch.cat([positive[:, None], negative], dim=1))  # [P, 1+K], target in column 0
        return F.cross_entropy(logits, torch.zeros_like(targets), reduction="sum")

    return loss


def next_item_loss(model: SequentialEncoder, batch: torch.Tensor, last_only: bool = False,
                   softmax: SoftmaxLoss = full_softmax_ce, encode: Encode | None = None) -> LossSum:
    """Shifted-sequence loss: position t predicts item t+1, at every real position (or the last only).

    batch [B, L+1] left-padded training sequences; `encode` replaces `model.encode` (e.g. to keep other layers).
    """
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = (encode or model.encode)(inputs)  # [B, L, D]
    if last_only:
        hidden, inputs, targets = hidden[:, -1:], inputs[:, -1:], targets[:, -1:]
    real = (targets != 0) & (inputs != 0)
    return LossSum(softmax(hidden[real], targets[real], model.item_embeddings()), real.sum())


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
               generator: torch.Generator | None = None, softmax: SoftmaxLoss = full_softmax_ce,
               encode: Encode | None = None) -> LossSum:
    """BERT4Rec masked-item loss: predict each masked item from both sides.  batch [B, L]"""
    masked = cloze_mask(batch, mask_prob, generator)
    inputs = torch.where(masked, torch.full_like(batch, model.mask_token), batch)  # type: ignore[attr-defined]
    hidden = (encode or model.encode)(inputs)  # [B, L, D]
    return LossSum(softmax(hidden[masked], batch[masked], model.item_embeddings()), masked.sum())


def info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float = 1.0,
             similarity: Literal["dot", "cos"] = "dot") -> torch.Tensor:
    """DuoRec's InfoNCE: row i of `first` and row i of `second` are positives, the other 2B-2 rows negatives.

    Similarities of all 2B vectors (dot or cosine) / temperature, self-pairs removed, cross-entropy towards the
    positive, averaged over the 2B rows.  first, second [B, D] -> scalar
    """
    z = torch.cat([first, second])  # [2B, D]
    if similarity == "cos":
        z = F.normalize(z, dim=-1)
    logits = _wide(z @ z.T) / temperature  # [2B, 2B]
    logits = logits.fill_diagonal_(float("-inf"))
    b = len(first)
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)  # i <-> i + B
    return F.cross_entropy(logits, positive)
