"""PopSteer: find SAE neurons that encode popularity with synthetic users, then steer them at inference.

Probe: popular-only and unpopular-only profiles (items drawn from the head / tail of the training popularity
distribution, same lengths as real training prefixes) -> per-neuron pre-activation mean/std -> Cohen's d.
Steer (Eq. 3/4): before ReLU/top-k, boost neurons with d < 0 by w·σ and dampen neurons with d > 0 by w·σ, with
w_j = α·(|d_j| − min|d|)/(max_selected|d| − min|d|) on the N neurons of largest |d|.
The statistics are cached in the SAE run as `probe-<concept>.npz` together with the settings that produced them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.data.catalog import HEAD, TAIL
from seqrec.data.interactions import Sequences
from seqrec.data.splits import ItemStats
from seqrec.errors import RunError, SeqrecError
from seqrec.files import write_file_atomically, write_text_atomically
from seqrec.models.base import SequentialEncoder
from seqrec.steering.activations import sample_prefixes, user_vectors
from seqrec.steering.interventions import STAGES, Stage, register_intervention
from seqrec.steering.sae import TopKSAE

CONCEPTS = ("popularity",)
DEFAULT_STAGE: Stage = "pre"  # where the popularity shift acts by default (see PopularitySteering)
STAT_ARRAYS = ("mean_pop", "std_pop", "mean_unpop", "std_unpop")
PROBE_FIX = "delete it and probe again (`seqrec sae probe SAE_RUN`)"
# what np.load raises on a truncated, emptied or otherwise damaged .npz
NPZ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass
class NeuronStats:
    """Pre-activation statistics per SAE neuron on popular-only vs unpopular-only profiles.  Each [H]."""

    mean_pop: np.ndarray
    std_pop: np.ndarray
    mean_unpop: np.ndarray
    std_unpop: np.ndarray
    profiles: int = 0  # profiles per polarity actually used (fewer than asked when the data has fewer prefixes)
    settings: dict[str, Any] = field(default_factory=dict)  # what produced them (probe_settings); {} = unknown

    @property
    def cohens_d(self) -> np.ndarray:
        """(μ_pop − μ_unpop) / sqrt((σ_pop² + σ_unpop²) / 2); 0 where both deviations are 0.  [H]"""
        pooled = np.sqrt((self.std_pop**2 + self.std_unpop**2) / 2.0)
        diff = self.mean_pop - self.mean_unpop
        return np.divide(diff, pooled, out=np.zeros_like(diff), where=pooled > 0)

    def describe(self) -> str:
        """The settings in words, e.g. "8,192 profiles per polarity (seed 0; 12 head / 40 tail items)"."""
        if not _valid_settings(self.settings):
            return f"{self.profiles:,} profiles per polarity (other settings not recorded)"
        s = self.settings
        kind = "embedding-matched" if s.get("matched") else "random items"
        return (f"{self.profiles:,} profiles per polarity ({kind}; asked for {s['profiles']:,}; seed {s['seed']}; "
                f"{s['head_items']} head / {s['tail_items']} tail items)")

    def save(self, path: Path) -> None:
        """`probe-popularity.npz` (with the settings) plus a readable CSV (neuron, means, stds, d), each atomically."""

        def write_npz(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the temporary name
                np.savez(f, mean_pop=self.mean_pop, std_pop=self.std_pop, mean_unpop=self.mean_unpop,
                         std_unpop=self.std_unpop, profiles=self.profiles, settings=json.dumps(self.settings))

        write_file_atomically(path, write_npz)
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(["neuron", "mean_pop", "std_pop", "mean_unpop", "std_unpop", "cohens_d"])
        for j, row in enumerate(zip(self.mean_pop, self.std_pop, self.mean_unpop, self.std_unpop,
                                    self.cohens_d, strict=True)):
            writer.writerow([j, *(f"{v:.6g}" for v in row)])
        write_text_atomically(path.with_suffix(".csv"), out.getvalue())

    @classmethod
    def load(cls, path: Path, latents: int | None = None) -> NeuronStats:
        """Read a saved probe; a damaged one (or one with another neuron count than `latents`) raises RunError."""
        try:
            with np.load(path) as z:
                arrays = [np.asarray(z[name], dtype=np.float64) for name in STAT_ARRAYS]
                profiles = int(z["profiles"])
                settings = json.loads(str(z["settings"])) if "settings" in z.files else {}  # older probes: none
        except NPZ_ERRORS as exc:
            raise RunError(f"{path} is damaged or truncated ({type(exc).__name__}: {exc}); {PROBE_FIX}") from None
        h = arrays[0].shape[0] if arrays[0].ndim == 1 else 0
        if any(a.shape != (h,) for a in arrays) or h == 0 or (latents is not None and h != latents):
            shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(STAT_ARRAYS, arrays, strict=True))
            raise RunError(f"{path} does not fit this SAE ({shapes}; the SAE has {latents} latents); {PROBE_FIX}")
        if not all(np.isfinite(a).all() for a in arrays) or (arrays[1] < 0).any() or (arrays[3] < 0).any():
            raise RunError(f"{path} holds non-finite means or negative deviations; {PROBE_FIX}")
        if profiles < 1 or not (settings == {} or _valid_settings(settings)):
            raise RunError(f"{path} has damaged settings ({settings!r}, {profiles} profiles); {PROBE_FIX}")
        return cls(*arrays, profiles=profiles, settings=settings)


def _valid_settings(settings: Any) -> bool:
    """Settings as `probe_settings` writes them."""
    types = {"profiles": int, "seed": int, "labels": str, "head_items": int, "tail_items": int}
    return isinstance(settings, dict) and all(isinstance(settings.get(k), t) for k, t in types.items())


def labels_digest(labels: np.ndarray) -> str:
    """A short fingerprint of the head/mid/tail labels the probe drew its profiles from."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int8).tobytes()).hexdigest()[:16]


def label_settings(stats: ItemStats) -> dict[str, Any]:
    """The head/tail labels a popularity probe draws from: fingerprint and counts."""
    return {"labels": labels_digest(stats.labels), "head_items": int((stats.labels[1:] == HEAD).sum()),
            "tail_items": int((stats.labels[1:] == TAIL).sum())}


def probe_settings(stats: ItemStats, profiles: int, seed: int, matched: bool = False) -> dict[str, Any]:
    """Everything besides the SAE and the base run that a popularity probe depends on."""
    return {"profiles": int(profiles), "seed": int(seed), "matched": bool(matched), **label_settings(stats)}


def settings_mismatch(cached: dict[str, Any], wanted: dict[str, Any]) -> str:
    """How the cached settings differ from `wanted` in profiles, seed or labels (None = any), in words; "" if not."""
    cached = {"matched": False, **cached}  # probes saved before matched profiles existed drew random ones
    diffs = [f"{key} {cached.get(key, 'not recorded')} (asked for {wanted[key]})"
             for key in ("profiles", "seed", "matched")
             if wanted.get(key) is not None and cached.get(key) != wanted[key]]
    if wanted.get("labels") is not None and cached.get("labels") != wanted["labels"]:
        diffs.append(f"head/tail items {cached.get('head_items', '?')}/{cached.get('tail_items', '?')} "
                     f"(now {wanted.get('head_items', '?')}/{wanted.get('tail_items', '?')}, or other items)")
    return ", ".join(diffs)


def check_concept(concept: str) -> None:
    if concept not in CONCEPTS:
        raise SeqrecError(f"unknown concept {concept!r}; available: {', '.join(CONCEPTS)}")


def popularity_profiles(train: Sequences, stats: ItemStats, n: int, max_len: int, seed: int = 0,
                        item_vectors: np.ndarray | None = None) -> tuple[Sequences, Sequences]:
    """`n` popular-only and `n` unpopular-only profiles from `n` random training prefixes.

    Random (PopSteer): items drawn uniformly with replacement from the head (label +1) and tail (label −1) items,
    at the prefixes' lengths. Matched (PopSteer 2.0, given `item_vectors` [N+1, D]): each prefix keeps its
    sequence, with every item replaced by its most similar head (tail) item by dot product, so the profiles
    look like real users that happen to consume only popular (unpopular) items.
    """
    head, tail = np.flatnonzero(stats.labels == HEAD), np.flatnonzero(stats.labels == TAIL)
    head, tail = head[head > 0], tail[tail > 0]
    if len(head) == 0 or len(tail) == 0:
        raise SeqrecError(f"the popularity concept needs head and tail items; this dataset has {len(head)} head "
                          f"and {len(tail)} tail items (too few interactions or a flat popularity curve)")
    rng = np.random.default_rng(seed)
    prefixes = sample_prefixes(train, n, rng, max_len)
    offsets = np.concatenate([[0], np.cumsum(prefixes.lengths)]).astype(np.int64)
    if item_vectors is not None:
        items = prefixes.items
        return (Sequences(offsets, nearest(item_vectors, head)[items]),
                Sequences(offsets, nearest(item_vectors, tail)[items]))
    total = int(offsets[-1])
    return Sequences(offsets, rng.choice(head, total)), Sequences(offsets, rng.choice(tail, total))


def nearest(vectors: np.ndarray, candidates: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """For every item, the candidate with the largest dot product (candidates map to themselves).  -> [N+1]"""
    out = np.zeros(len(vectors), dtype=np.int64)
    pool = vectors[candidates].T  # [D, C]
    for start in range(0, len(vectors), chunk):
        out[start : start + chunk] = candidates[np.argmax(vectors[start : start + chunk] @ pool, axis=1)]
    out[candidates] = candidates
    return out


@torch.no_grad()
def probe_popularity(model: SequentialEncoder, sae: TopKSAE, train: Sequences, stats: ItemStats,
                     profiles: int = 8192, seed: int = 0, matched: bool = False) -> NeuronStats:
    """Pre-activation mean and (population) std of every neuron on synthetic popular / unpopular users (random
    or, `matched`, embedding-matched profiles; see `popularity_profiles`)."""
    vectors = model.item_embeddings().detach().float().cpu().numpy() if matched else None
    popular, unpopular = popularity_profiles(train, stats, profiles, model.max_len, seed, vectors)
    moments = []
    for seqs in (popular, unpopular):
        pre = sae.pre_activations(user_vectors(model, seqs).to(sae.W_dec.device)).double()  # [P, H]
        moments.append((pre.mean(0).cpu().numpy(), pre.std(0, unbiased=False).cpu().numpy()))
    (mp, sp), (mu, su) = moments
    return NeuronStats(mp, sp, mu, su, profiles=len(popular),
                       settings=probe_settings(stats, profiles, seed, matched))


class PopularitySteering:
    """Eq. 3/4 as an intervention: a shift of the selected neurons, fixed per (stats, α, N).

    stage "pre" (the paper): added to the pre-activations before ReLU and top-k, so steering changes which
    latents win. stage "post": added only to the latents already in the user's top-k (never below 0), so each
    user keeps their own latents and only their strengths move. `per_user` (pre only) scales the shift by the
    user's RMS pre-activation over the selected neurons relative to the probe profiles' RMS, so users with weak
    activations are not overwritten by a shift sized for the average user.
    """

    def __init__(self, stats: NeuronStats, alpha: float, neurons: int | None = None, stage: Stage = DEFAULT_STAGE,
                 per_user: bool = False) -> None:
        d = stats.cohens_d
        h = len(d)
        if not np.isfinite(alpha) or alpha < 0:
            raise SeqrecError(f"alpha must be a finite number >= 0; got {alpha}")
        neurons = h if neurons is None else neurons
        if not 1 <= neurons <= h:
            raise SeqrecError(f"neurons must be between 1 and the SAE's {h} latents; got {neurons}")
        if stage not in STAGES:
            raise SeqrecError(f"the popularity shift acts at stage 'pre' or 'post'; got {stage!r}")
        if per_user and stage != "pre":
            raise SeqrecError("per-user scaling applies to the pre-activations (stage 'pre')")
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
        square = (stats.mean_pop**2 + stats.std_pop**2 + stats.mean_unpop**2 + stats.std_unpop**2) / 2.0
        self.alpha, self.neurons, self.selected = alpha, neurons, selected
        self.stage, self.per_user = stage, per_user
        self.reference = float(np.sqrt(square[selected].mean())) if len(selected) else 1.0  # probe RMS
        self.shift = torch.from_numpy(shift).float()  # [H]
        self.latents = torch.from_numpy(selected).long()  # [S]

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [S] or [B, S]
        shift = self.shift[self.latents].to(acts.device)  # [S]
        if self.stage == "post":
            return torch.where(acts > 0, torch.maximum(shift, -acts), torch.zeros_like(acts))
        if self.per_user:
            rms = acts.float().pow(2).mean(1, keepdim=True).sqrt()  # [B, 1]
            return shift * (rms / max(self.reference, 1e-12))
        return shift


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


register_intervention("popsteer", PopularitySteering)
