"""PopSteer 2.0's item side: a TopK SAE over the item embedding table. The encoder reads the (steered) table at
its input, while items are still scored with the original table, so steering changes what the model makes of a
history, not which vectors it ranks.

    sae = fit_item_sae(model, SAEConfig(epochs=300))                # rows of the input table are the data
    stats = probe_items(model, sae, item_stats.pop_scores)          # popularity-weighted vs (1 − pop)-weighted
    rec = item_steered(run, sae, PopularitySteering(stats, alpha=1.0))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from seqrec.errors import SeqrecError
from seqrec.model_runs import Run
from seqrec.models.base import SequentialEncoder
from seqrec.models.blocks import SequenceEmbedding
from seqrec.recommender import Recommender
from seqrec.steering.popsteer import NeuronStats
from seqrec.steering.sae import SAEConfig, TopKSAE
from seqrec.steering.sae_training import fit_sae
from seqrec.steering.steered import Interventions, ScoringMode, SteeredEncoder


def input_embedding(model: SequentialEncoder) -> SequenceEmbedding:
    """The model's input item table; models without one (GRU4Rec) cannot be steered on the item side."""
    embed = getattr(model, "embed", None)
    if not isinstance(embed, SequenceEmbedding):
        raise SeqrecError(f"item-side steering needs a model that looks its inputs up in an item table (SASRec, "
                          f"BERT4Rec, DuoRec); {type(model).__name__} has none")
    return embed


def item_rows(model: SequentialEncoder) -> torch.Tensor:
    """The input vectors of the catalogue's items (no padding, no mask token).  -> [N, D]"""
    return input_embedding(model).table()[1 : model.num_items + 1].detach().float()


@contextmanager
def input_table(model: SequentialEncoder, table: torch.Tensor) -> Iterator[None]:
    """Let the model read `table` [T, D] instead of its own item table at its input, inside the block."""
    embed = input_embedding(model)
    previous, embed.input_override = embed.input_override, table
    try:
        yield
    finally:
        embed.input_override = previous


def fit_item_sae(model: SequentialEncoder, config: SAEConfig, progress: bool = False) -> TopKSAE:
    """A TopK SAE on the rows of the item table (every row is both training and validation data: the table is the
    whole population). Tables are small, so give it many epochs (PopSteer 2.0 trains it with the model)."""
    rows = item_rows(model)
    return fit_sae(rows, rows, config, progress=progress).sae


@torch.no_grad()
def probe_items(model: SequentialEncoder, sae: TopKSAE, pop_scores: np.ndarray) -> NeuronStats:
    """Per neuron, the pre-activation mean and std over items weighted by popularity (pop_score) and by
    1 − pop_score (PopSteer 2.0's item statistics).  pop_scores [N+1]"""
    pre = sae.pre_activations(item_rows(model).to(sae.W_dec.device)).double().cpu().numpy()  # [N, H]
    moments = []
    for weights in (pop_scores[1 : model.num_items + 1], 1.0 - pop_scores[1 : model.num_items + 1]):
        w = np.asarray(weights, dtype=np.float64)
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise SeqrecError("item popularity weights must be finite, >= 0 and not all 0")
        w = w / w.sum()
        mean = w @ pre
        moments.append((mean, np.sqrt(np.maximum(w @ (pre - mean) ** 2, 0.0))))
    (mp, sp), (mu, su) = moments
    return NeuronStats(mp, sp, mu, su, profiles=len(pre))


class ItemSteeredEncoder(SequentialEncoder):
    """`base` reading its input items through an item SAE and `interventions` (delta: row + (z̃ − z)·W_dec, the
    original table when nothing is steered; recon: the reconstruction). Scores use `base`'s own item vectors."""

    def __init__(self, base: SequentialEncoder, sae: TopKSAE, mode: ScoringMode = "delta",
                 interventions: Interventions = None) -> None:
        super().__init__(base.config, base.num_items)
        self.base, self.causal = base, base.causal
        with torch.no_grad():
            table = input_embedding(base).table().detach().clone()  # [T, D]
            rows = table[1 : base.num_items + 1].float()
            steered = SteeredEncoder(base, sae.to(table.device), mode, interventions).steer(rows)
            table[1 : base.num_items + 1] = steered.to(table.dtype)
        self.register_buffer("table", table, persistent=False)

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        with input_table(self.base, self.table):
            return self.base.encode(items)

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, D]
        with input_table(self.base, self.table):
            return self.base.user_vector(items)

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.base.item_embeddings()


def item_steered(run: Run, sae: TopKSAE, interventions: Interventions = None, mode: ScoringMode = "delta",
                 mask_seen: bool | None = None) -> Recommender:
    """The run's recommender with its input items passed through the item SAE and `interventions`."""
    rec = run.recommender
    model = ItemSteeredEncoder(rec.model, sae, mode, interventions)
    return Recommender(model, rec.user_map, rec.item_map, rec.histories, rec.catalog,
                       mask_seen=rec.mask_seen if mask_seen is None else mask_seen)
