"""PopSteer: find SAE neurons that encode popularity with synthetic users, then steer them at inference.

Probe: popular-only and unpopular-only profiles (items drawn from the head / tail of the training popularity
distribution, same lengths as real training prefixes) -> per-neuron pre-activation mean/std -> Cohen's d.
Steer (Eq. 3/4): before ReLU/top-k, boost neurons with d < 0 by w·σ and dampen neurons with d > 0 by w·σ, with
w_j = α·(|d_j| − min|d|)/(max_selected|d| − min|d|) on the N neurons of largest |d|.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqrec.data.catalog import HEAD, TAIL
from seqrec.data.interactions import Sequences
from seqrec.data.splits import ItemStats
from seqrec.errors import SeqrecError
from seqrec.models.base import SequentialEncoder
from seqrec.steering.activations import sample_prefixes, user_vectors
from seqrec.steering.sae import TopKSAE

CONCEPTS = ("popularity",)


@dataclass
class NeuronStats:
    """Pre-activation statistics per SAE neuron on popular-only vs unpopular-only profiles.  Each [H]."""

    mean_pop: np.ndarray
    std_pop: np.ndarray
    mean_unpop: np.ndarray
    std_unpop: np.ndarray
    profiles: int = 0

    @property
    def cohens_d(self) -> np.ndarray:
        """(μ_pop − μ_unpop) / sqrt((σ_pop² + σ_unpop²) / 2); 0 where both deviations are 0.  [H]"""
        pooled = np.sqrt((self.std_pop**2 + self.std_unpop**2) / 2.0)
        diff = self.mean_pop - self.mean_unpop
        return np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 0)

    def save(self, path: Path) -> None:
        """`probe-popularity.npz` plus a readable CSV (neuron, means, stds, d) beside it."""
        np.savez(path, mean_pop=self.mean_pop, std_pop=self.std_pop, mean_unpop=self.mean_unpop,
                 std_unpop=self.std_unpop, profiles=self.profiles)
        with open(path.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["neuron", "mean_pop", "std_pop", "mean_unpop", "std_unpop", "cohens_d"])
            for j, row in enumerate(zip(self.mean_pop, self.std_pop, self.mean_unpop, self.std_unpop,
                                        self.cohens_d, strict=True)):
                writer.writerow([j, *(f"{v:.6g}" for v in row)])

    @classmethod
    def load(cls, path: Path) -> NeuronStats:
        z = np.load(path)
        return cls(z["mean_pop"], z["std_pop"], z["mean_unpop"], z["std_unpop"], int(z["profiles"]))


def check_concept(concept: str) -> None:
    if concept not in CONCEPTS:
        raise SeqrecError(f"unknown concept {concept!r}; available: {', '.join(CONCEPTS)}")


def popularity_profiles(train: Sequences, stats: ItemStats, n: int, max_len: int, seed: int = 0
                        ) -> tuple[Sequences, Sequences]:
    """`n` popular-only and `n` unpopular-only profiles with the lengths of `n` random training prefixes.

    Items are drawn uniformly with replacement from the head (label +1) and tail (label −1) items.
    """
    head, tail = np.flatnonzero(stats.labels == HEAD), np.flatnonzero(stats.labels == TAIL)
    head, tail = head[head > 0], tail[tail > 0]
    if len(head) == 0 or len(tail) == 0:
        raise SeqrecError(f"the popularity concept needs head and tail items; this dataset has {len(head)} head "
                          f"and {len(tail)} tail items (too few interactions or a flat popularity curve)")
    rng = np.random.default_rng(seed)
    lengths = sample_prefixes(train, n, rng, max_len).lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    return Sequences(offsets, rng.choice(head, total)), Sequences(offsets, rng.choice(tail, total))


@torch.no_grad()
def probe_popularity(model: SequentialEncoder, sae: TopKSAE, train: Sequences, stats: ItemStats,
                     profiles: int = 8192, seed: int = 0) -> NeuronStats:
    """Pre-activation mean and (population) std of every neuron on synthetic popular / unpopular users."""
    popular, unpopular = popularity_profiles(train, stats, profiles, model.max_len, seed)
    moments = []
    for seqs in (popular, unpopular):
        pre = sae.pre_activations(user_vectors(model, seqs).to(sae.W_dec.device)).double()  # [P, H]
        moments.append((pre.mean(0).cpu().numpy(), pre.std(0, unbiased=False).cpu().numpy()))
    (mp, sp), (mu, su) = moments
    return NeuronStats(mp, sp, mu, su, profiles=len(popular))


class PopularitySteering:
    """Eq. 3/4 as an intervention on SAE pre-activations: pre + shift, shift [H] fixed per (stats, α, N)."""

    def __init__(self, stats: NeuronStats, alpha: float, neurons: int | None = None) -> None:
        d = stats.cohens_d
        h = len(d)
        if not np.isfinite(alpha) or alpha < 0:
            raise SeqrecError(f"alpha must be a finite number >= 0; got {alpha}")
        neurons = h if neurons is None else neurons
        if not 1 <= neurons <= h:
            raise SeqrecError(f"neurons must be between 1 and the SAE's {h} latents; got {neurons}")
        magnitude = np.abs(d)
        candidates = np.flatnonzero(magnitude > 0)
        selected = candidates[np.argsort(-magnitude[candidates], kind="stable")[:neurons]]
        weights = np.zeros(h)
        if len(selected):
            low, high = magnitude[candidates].min(), magnitude[selected].max()
            weights[selected] = alpha * (magnitude[selected] - low) / max(high - low, 1e-12)
        # unpopular neurons (d < 0) are boosted by their spread on unpopular profiles, popular ones (d > 0)
        # dampened by their spread on popular profiles
        shift = np.where(d < 0, weights * stats.std_unpop, -weights * stats.std_pop)
        self.alpha, self.neurons, self.selected = alpha, neurons, selected
        self.shift = torch.from_numpy(shift).float()  # [H]

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:  # [B, H] -> [B, H]
        return pre + self.shift.to(pre.device)


class PopularityReweighting:
    """IPR-style baseline: divide each item's probability by 1 + β·pop/max_pop.

    Applied in log space (score − log(1 + β·pop/max_pop)) because raw scores can be negative, where multiplying
    by a factor below 1 would raise a popular item instead of lowering it.
    """

    def __init__(self, scorer: SequentialEncoder, pop_scores: np.ndarray, beta: float) -> None:
        if not np.isfinite(beta) or beta < 0:
            raise SeqrecError(f"the re-weighting strength must be a finite number >= 0; got {beta}")
        self.scorer, self.beta = scorer, beta
        self.max_len, self.device = scorer.max_len, scorer.device
        relative = torch.from_numpy(pop_scores / max(float(pop_scores.max()), 1e-12)).float()
        self.penalty = torch.log1p(beta * relative).to(self.device)  # [N+1]

    def eval(self) -> PopularityReweighting:
        self.scorer.eval()
        return self

    def score(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, N+1]
        return self.scorer.score(items).float() - self.penalty
