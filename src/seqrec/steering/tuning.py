"""RecFTT targeted tuning: a per-latent multiplier and bias over selected SAE latents, trained with a ranking loss
plus a pairwise loss that puts target-attribute items above the rest; the encoder and the SAE stay frozen.

    z̃_S = m ⊙ z_S + b,   u′ = x + (z̃ − z)·W_dec = x + ((m − 1) ⊙ z_S + b)·W_dec[S]

At initialisation (m = 1, b = 0) u′ = x exactly, so the tuned model starts as the base model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.config import check_finite
from seqrec.data.interactions import Sequences
from seqrec.data.splits import EvalSplit
from seqrec.errors import ConfigError
from seqrec.evaluation.evaluate import rank_chunks, ranking_metrics
from seqrec.models.base import SequentialEncoder
from seqrec.steering.activations import user_vectors
from seqrec.steering.interventions import Stage, decoder_change, register_intervention
from seqrec.steering.sae import SparseCode, TopKSAE
from seqrec.training.callbacks import EarlyStopping, ProgressBar
from seqrec.training.loop import Loop, Record


@dataclass
class TuneConfig:
    """What to tune toward and how. `select`: a validation metric key, or "target" (see `selection_score`)."""

    targets: list[str] = field(default_factory=list)  # attribute values to raise
    suppress: list[str] = field(default_factory=list)  # attribute values to lower
    latents: int = 100  # x: latents chosen per attribute and direction (up to 2x per attribute)
    use_choose: bool = True  # read `sae choose`'s controller_<attribute>.json from the sweep folder when present
    weight: float = 0.1  # λ, weight of the attribute loss
    lr: float = 1e-3
    weight_decay: float = 1e-6
    epochs: int = 50
    batch_size: int = 1024
    patience: int = 5
    max_instances: int = 0  # training prefixes used (0 = all)
    select: str = "target"
    max_drop: float = 0.02  # "target" selection: overall valid NDCG@10 may fall at most this fraction
    seed: int = 42

    def __post_init__(self) -> None:
        check_finite(self, "tune")
        if not self.targets and not self.suppress:
            raise ConfigError("name at least one attribute to raise (--target) or to lower (--suppress)")
        if overlap := set(self.targets) & set(self.suppress):
            raise ConfigError(f"an attribute cannot be raised and lowered at once: {', '.join(sorted(overlap))}")
        for key in ("latents", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"tune.{key} must be >= 1, got {getattr(self, key)}")
        if self.weight < 0 or self.lr <= 0 or self.weight_decay < 0 or min(self.patience, self.max_instances) < 0:
            raise ConfigError("tune.weight, weight_decay, patience and max_instances must be >= 0 and lr > 0")
        if not 0 <= self.max_drop < 1:
            raise ConfigError(f"tune.max_drop must be in [0, 1), got {self.max_drop}")

    @property
    def attributes(self) -> list[str]:
        return [*self.targets, *self.suppress]


class LatentController(nn.Module):
    """RecFTT's trainable post-stage intervention: z̃_S = m ⊙ z_S + b with m (init 1) and b (init 0) learnt.

    The bias applies to every user, also where a latent is not in the top k.
    """

    stage: Stage = "post"

    def __init__(self, latents: list[int], num_latents: int) -> None:
        super().__init__()
        if not latents:
            raise ConfigError("the controller needs at least one latent")
        index = torch.tensor(sorted(set(latents)), dtype=torch.long)
        if int(index.min()) < 0 or int(index.max()) >= num_latents:
            raise ConfigError(f"latent ids must be in [0, {num_latents}); got {latents}")
        slot = torch.full((num_latents,), -1, dtype=torch.long)
        slot[index] = torch.arange(len(index))
        self.register_buffer("latents", index)  # [S]
        self.register_buffer("slot", slot)  # [H] position in S, -1 when not controlled (part of saved controllers)
        self.multiplier = nn.Parameter(torch.ones(len(index)))
        self.bias = nn.Parameter(torch.zeros(len(index)))

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, S]
        return (self.multiplier - 1.0) * acts + self.bias


register_intervention("controller", LatentController)


def ranking_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """RecFTT's ranking loss: −log Σ_j σ(s⁺ − s⁻_j)·softmax(s⁻)_j (BPR for one negative).  pos [B], neg [B, n]"""
    weights = neg.softmax(dim=1)
    return -((torch.sigmoid(pos[:, None] - neg) * weights).sum(1).clamp(1e-8, 1 - 1e-8)).log().mean()


def pairwise_loss(pos: torch.Tensor, neg: torch.Tensor, applies: torch.Tensor) -> torch.Tensor:
    """Mean −log σ(s⁺ − s⁻) over the rows where `applies`; 0 when none does.  [B], [B], [B] bool"""
    if not applies.any():
        return pos.new_zeros(())
    return -F.logsigmoid(pos[applies] - neg[applies]).mean()


class NegativeSampler:
    """Uniform negatives from an allowed item set, re-drawn (a few rounds) when the user has seen them."""

    def __init__(self, seen: Sequences, num_items: int, rng: np.random.Generator) -> None:
        self.num_items, self.rng = num_items, rng
        self.keys = np.unique(seen.row_ids().astype(np.int64) * (num_items + 1) + seen.items)  # sorted (row, item)

    def seen(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = rows * (self.num_items + 1) + items
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[at] == keys

    def sample(self, rows: np.ndarray, allowed: np.ndarray, rounds: int = 5) -> np.ndarray:
        """One negative per row from the items where allowed [N+1] is True (never padding)."""
        pool = np.flatnonzero(allowed[1:]) + 1
        out = pool[self.rng.integers(len(pool), size=len(rows))]
        for _ in range(rounds):
            again = np.flatnonzero(self.seen(rows, out))
            if len(again) == 0:
                break
            out[again] = pool[self.rng.integers(len(pool), size=len(again))]
        return out


@dataclass
class Instances:
    """Training prefixes with their frozen user vectors and sparse codes."""

    x: torch.Tensor  # [M, D]
    values: torch.Tensor  # [M, k]
    index: torch.Tensor  # [M, k]
    targets: torch.Tensor  # [M] next item
    rows: np.ndarray  # [M] training row (user) of each prefix

    @classmethod
    @torch.no_grad()
    def encode(cls, sae: TopKSAE, x: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor,
               batch_size: int = 8192) -> Instances:
        sae.eval()
        codes = [sae(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return cls(x, torch.cat([c.values for c in codes]), torch.cat([c.index for c in codes]), targets.to(x.device),
                   rows.numpy())


@dataclass
class SplitVectors:
    """A split's frozen user vectors and codes: the controller is evaluated without re-running the encoder."""

    split: EvalSplit
    x: torch.Tensor  # [E, D]
    values: torch.Tensor  # [E, k]
    index: torch.Tensor  # [E, k]

    @classmethod
    @torch.no_grad()
    def encode(cls, model: SequentialEncoder, sae: TopKSAE, split: EvalSplit) -> SplitVectors:
        x = user_vectors(model, split.histories).to(model.device)
        code = sae(x)
        return cls(split, x, code.values, code.index)

    @torch.no_grad()
    def metrics(self, controller: LatentController | None, sae: TopKSAE, items: torch.Tensor, max_len: int,
                attributes: list[str], ks: tuple[int, ...] = (10,), mask_seen: bool = True) -> dict[str, float]:
        """Overall and per-attribute metrics with (or, for None, without) the controller."""

        def score(rows: np.ndarray, _: torch.Tensor) -> torch.Tensor:
            r = torch.from_numpy(rows).to(self.x.device)
            u = self.x[r]
            if controller is not None:
                u = u + decoder_change(controller, SparseCode(self.values[r], self.index[r]), sae.W_dec)
            scores = u @ items.T
            scores[:, 0] = float("-inf")
            return scores

        ranking = rank_chunks(score, self.split, max_len, self.x.device, k=max(ks), mask_seen=mask_seen)
        return ranking_metrics(ranking, self.split, ks, "accuracy", attributes)


def selection_score(metrics: dict[str, float], config: TuneConfig, base_ndcg: float) -> float:
    """Higher is better. "target": mean target NDCG@10 minus mean suppressed NDCG@10, among settings whose
    overall NDCG@10 stays within `max_drop` of the base (others score −inf); otherwise the named metric."""
    if config.select != "target":
        return metrics[config.select]
    if metrics["NDCG@10"] < (1.0 - config.max_drop) * base_ndcg:
        return float("-inf")
    up = [metrics.get(f"{a}_NDCG@10", 0.0) for a in config.targets]
    down = [metrics.get(f"{a}_NDCG@10", 0.0) for a in config.suppress]
    return float(np.mean(up) if up else 0.0) - float(np.mean(down) if down else 0.0)


@dataclass
class TuneFit:
    controller: LatentController
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


@dataclass
class TuningTask:
    """What a controller trains on and is selected by: frozen vectors, attribute membership and the protocol."""

    sae: TopKSAE
    items: torch.Tensor  # [N+1, D] output item embeddings
    train: Instances
    valid: SplitVectors
    membership: np.ndarray  # [N+1, A] bool over config.attributes (targets first, then suppressed)
    seen: Sequences  # training histories: never drawn as negatives
    max_len: int
    mask_seen: bool = True


def fit_controller(controller: LatentController, task: TuningTask, config: TuneConfig,
                   progress: bool = True) -> TuneFit:
    """Train the controller; keep the epoch with the best `selection_score` on validation (epoch 0 = identity)."""
    sae, items, train, valid, membership = task.sae, task.items, task.train, task.valid, task.membership
    seen, max_len, mask_seen = task.seen, task.max_len, task.mask_seen
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    sampler = NegativeSampler(seen, len(items) - 1, rng)
    n_up = len(config.targets)
    boost = membership[:, :n_up].any(1)  # [N+1] items of any target attribute
    lower = membership[:, n_up:].any(1)
    not_boost, everything = ~boost, np.ones(len(items), dtype=bool)
    any_boost, any_lower = bool(boost.any()), bool(lower.any())
    target_np = train.targets.cpu().numpy()
    optimizer = torch.optim.Adam(controller.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    device = items.device

    def validate(epoch: int, ctrl: LatentController | None, extra: dict[str, float]) -> dict[str, float]:
        m = valid.metrics(ctrl, sae, items, max_len, config.attributes, mask_seen=mask_seen)
        return {"epoch": epoch, **extra, **m}

    def scored(record: dict[str, float]) -> dict[str, float]:
        """The record with its selection score; None (not -inf, which JSON cannot hold) when it breaks max_drop."""
        score = selection_score(record, config, base_ndcg)
        return {**record, "selection": score if math.isfinite(score) else None}

    base = validate(0, None, {})
    base_ndcg = base["NDCG@10"]
    base = scored(base)

    def run_epoch(epoch: int) -> Record:
        controller.train()
        negatives = torch.from_numpy(sampler.sample(train.rows, everything)).to(device)
        has_boost = torch.from_numpy(boost[target_np]).to(device)
        neg_boost = torch.from_numpy(sampler.sample(train.rows, not_boost)).to(device) if any_boost else negatives
        has_lower = torch.from_numpy(~lower[target_np]).to(device)
        neg_lower = torch.from_numpy(sampler.sample(train.rows, lower)).to(device) if any_lower else negatives
        order = torch.randperm(len(train.x), device=device)
        totals = torch.zeros(2, device=device)  # summed on the device: no host sync per step
        for i in range(0, len(order), config.batch_size):
            b = order[i : i + config.batch_size]
            u = train.x[b] + decoder_change(controller, SparseCode(train.values[b], train.index[b]), sae.W_dec)
            pos = (u * items[train.targets[b]]).sum(1)
            rank = ranking_loss(pos, (u * items[negatives[b]]).sum(1)[:, None])
            attr = pos.new_zeros(())
            if any_boost:
                attr = attr + pairwise_loss(pos, (u * items[neg_boost[b]]).sum(1), has_boost[b])
            if any_lower:
                attr = attr + pairwise_loss(pos, (u * items[neg_lower[b]]).sum(1), has_lower[b])
            loss = rank + config.weight * attr
            if not torch.isfinite(loss):
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals += torch.stack([rank.detach(), attr.detach()])
        totals = totals.cpu().numpy()
        steps = max(1, -(-len(order) // config.batch_size))
        controller.eval()
        losses = {"rank_loss": float(totals[0] / steps), "attribute_loss": float(totals[1] / steps)}
        return scored(validate(epoch, controller, losses))

    def score(record: Record) -> float:
        return -math.inf if record["selection"] is None else record["selection"]

    selection = EarlyStopping(controller, score, "max", config.patience)
    selection.start_from(score(base), base)  # epoch 0: the untuned model, which training must beat
    bar = ProgressBar("tune", lambda r: f"valid NDCG@10 {r['NDCG@10']:.4f} (base {base_ndcg:.4f}) "
                                        f"best epoch {selection.best_epoch}", enabled=progress)
    loop = Loop(config.epochs, [selection, bar])
    loop.run(run_epoch)
    controller.eval()
    return TuneFit(controller, [base, *loop.history], selection.best_epoch, loop.elapsed)
