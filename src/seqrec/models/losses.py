"""Recommendation objectives as pure functions of (model, batch), over a choice of item loss.

An item loss scores hidden states against target items: the softmax cross-entropies (full, chunked, sampled with
logQ correction) or the negative-sampling losses of the original models (BCE, BPR, gBCE).

Every loss returns a `LossSum` (sum over predicted positions, their count) so that data-parallel training can
divide by the global count and match a single process exactly.
"""

from __future__ import annotations

import math
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


class ItemLoss(Protocol):
    """Summed loss of hidden states against target items.  hidden [P, D], targets [P] in 1..N, items [N+1, D]"""

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


def chunked_softmax_ce(chunk: int) -> ItemLoss:
    """Full-softmax CE computed `chunk` positions at a time (same value and gradients as `full_softmax_ce`)."""

    def loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # the function casts logits to fp32 itself
            dtype = torch.promote_types(hidden.dtype, items.dtype)
            return ChunkedSoftmaxCE.apply(hidden.to(dtype), items[1:].to(dtype), targets - 1, chunk)

    return loss


def sampled_softmax_ce(item_probs: torch.Tensor, negatives: int,
                       generator: torch.Generator | None = None) -> ItemLoss:
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


NegativeLossKind = Literal["bce", "bpr", "gbce"]
MAX_SHARED = 32  # consecutive positions that share one draw of negatives, at most


def shared_block(negatives: int) -> int:
    """Positions per draw: 1 (every position its own) up to 8 negatives, then negatives / 8, at most 32.

    Sharing a draw among neighbouring positions (mostly of one sequence) turns the [P, K, D] gather into a
    batched matmul over [P/G, K, D], so memory and time stay near 8·D per position whatever K is; each position
    still sees K uniform negatives.
    """
    return max(1, min(MAX_SHARED, negatives // 8))


def sampled_scores(hidden: torch.Tensor, items: torch.Tensor, ids: torch.Tensor, size: int) -> torch.Tensor:
    """Each position against the negatives of its block of `size` (G) positions.

    hidden [P, D], items [N+1, D], ids [ceil(P/G), K] -> [P, K]
    """
    blocks, k = ids.shape
    padded = F.pad(hidden, (0, 0, 0, blocks * size - len(hidden)))  # [P', D]
    scores = torch.bmm(padded.view(blocks, size, -1), items[ids].transpose(1, 2))  # [P/G, G, K]
    return scores.reshape(blocks * size, k)[: len(hidden)]


def gbce_beta(negatives: int, num_items: int, t: float) -> float:
    """gSASRec's power on the positive probability: β = α(t(1 − 1/α) + 1/α), α = negatives / (N − 1).

    t = 0 gives β = 1 (plain BCE); t = 1 gives β = α, fully calibrated for uniform sampling.
    """
    alpha = negatives / max(num_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def negative_sampling_loss(kind: NegativeLossKind, num_items: int, negatives: int,
                           generator: torch.Generator | None = None, t: float = 0.75,
                           item_probs: torch.Tensor | None = None) -> ItemLoss:
    """Binary losses over each position's own sampled negatives (drawn uniformly, or from `item_probs` [N]).

    bce: −log σ(s⁺) − Σ_k log(1 − σ(s⁻_k)) (the original SASRec with one negative);
    bpr: −log σ(s⁺ − s⁻) with one negative (BPR-MF's pairwise loss, as in ReChorus);
    gbce: −β·log σ(s⁺) − Σ_k log(1 − σ(s⁻_k)), β from `gbce_beta` (gSASRec, Petrov & Macdonald 2023).
    A negative that equals its position's target is left out of the sum. Neighbouring positions share draws
    (`shared_block`). For bce and gbce every logit is shifted by log(β / K): the common score at which the positive's
    and the K negatives' gradients balance. Without it the model must first move every score down to that level
    (about −6.7 for gBCE with 256 negatives on 3,416 items), and gBCE stayed at popularity level for 10 epochs on
    ml-1m-sas (docs/benchmarks.md); a shift shared by all items never changes a ranking. With one BCE negative the
    shift is 0.
    """
    if kind == "bpr" and negatives != 1:
        raise ValueError("bpr compares the target with exactly one negative")
    beta = gbce_beta(negatives, num_items, t) if kind == "gbce" else 1.0
    offset = math.log(beta / negatives)  # bce with one negative: 0
    cpu_probs = None if item_probs is None else item_probs.detach().cpu()

    share = shared_block(negatives)

    def loss(hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        shape = (-(-len(targets) // share), negatives)  # one draw per block of `share` positions
        if cpu_probs is None:
            drawn = torch.randint(1, num_items + 1, shape, generator=generator)
        else:
            drawn = torch.multinomial(cpu_probs, shape[0] * negatives, replacement=True,
                                      generator=generator).view(shape) + 1
        neg = drawn.to(hidden.device)  # [P/G, K]
        kept = neg.repeat_interleave(share, dim=0)[: len(targets)] != targets[:, None]  # [P, K]
        positive = _wide((hidden * items[targets]).sum(-1))  # [P]
        negative = _wide(sampled_scores(hidden, items, neg, share))  # [P, K]
        if kind == "bpr":
            return (F.softplus(negative[:, 0] - positive) * kept[:, 0]).sum()
        positive, negative = positive + offset, negative + offset
        return beta * F.softplus(-positive).sum() + (F.softplus(negative) * kept).sum()

    return loss


def next_item_loss(model: SequentialEncoder, batch: torch.Tensor, last_only: bool = False,
                   item_loss: ItemLoss = full_softmax_ce, encode: Encode | None = None) -> LossSum:
    """Shifted-sequence loss: position t predicts item t+1, at every real position (or the last only).

    batch [B, L+1] left-padded training sequences; `encode` replaces `model.encode` (e.g. to keep other layers).
    """
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = (encode or model.encode)(inputs)  # [B, L, D]
    if last_only:
        hidden, inputs, targets = hidden[:, -1:], inputs[:, -1:], targets[:, -1:]
    real = (targets != 0) & (inputs != 0)
    return LossSum(item_loss(hidden[real], targets[real], model.item_embeddings()), real.sum())


def cloze_mask(items: torch.Tensor, mask_prob: float, generator: torch.Generator | None = None,
               mask_last: float = 0.0) -> torch.Tensor:
    """Positions to mask: each real item with probability `mask_prob`, and the last item of rows with none.

    With `mask_last` > 0, a row's last item is also masked with that probability: the position the model is
    asked about when it recommends (the mask appended after the history). items [B, L] left-padded -> bool [B, L]
    """
    real = items != 0
    draw = torch.rand(items.shape, generator=generator, device="cpu").to(items.device)
    masked = (draw < mask_prob) & real
    if mask_last > 0:
        last = torch.rand(len(items), generator=generator, device="cpu").to(items.device) < mask_last
        masked[:, -1] |= last & real[:, -1]
    none = ~masked.any(dim=1)
    masked[:, -1] |= none & real[:, -1]
    return masked


def cloze_loss(model: SequentialEncoder, batch: torch.Tensor, mask_prob: float,
               generator: torch.Generator | None = None, item_loss: ItemLoss = full_softmax_ce,
               encode: Encode | None = None, mask_last: float = 0.0) -> LossSum:
    """BERT4Rec masked-item loss: predict each masked item from both sides.  batch [B, L]"""
    masked = cloze_mask(batch, mask_prob, generator, mask_last)
    inputs = torch.where(masked, torch.full_like(batch, model.mask_token), batch)  # type: ignore[attr-defined]
    hidden = (encode or model.encode)(inputs)  # [B, L, D]
    return LossSum(item_loss(hidden[masked], batch[masked], model.item_embeddings()), masked.sum())


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
