"""The retrieval terms added to the base model's CE: CE of the fused vector and the retriever alignment."""

from __future__ import annotations

import time

import torch

from seqrec.models.base import TrainingSet
from seqrec.models.losses import LossSum, chunked_softmax_ce
from seqrec.models.terms import LossTerm, Step, mean_term
from seqrec.retrieval.augmented import RetrievalAugmented, prefix_lengths
from seqrec.retrieval.losses import (
    js_divergence,
    kl_divergence,
    recommendation_distribution,
    retrieval_distribution,
)

LOSS_CHUNK = 1024


class RetrievalLoss(LossTerm):
    """enhanced_weight·CE(h_enh) + kl_weight·D(P_ret ‖ P_rec) at every real position (or a sample of them).

    P_ret is the retriever's distribution over the neighbours it retrieved, P_rec (detached) how much each
    neighbour's next item, mixed into h, favours the true next item. Builds the knowledge base on creation and
    re-encodes it every `refresh_every` epochs.
    """

    name = "retrieval_loss"

    def __init__(self, model: RetrievalAugmented, train: TrainingSet) -> None:
        super().__init__()
        self.model = model
        self.train_set = train
        self.full_lengths = torch.from_numpy(train.lengths).to(train.sequences.device)
        self.softmax = chunked_softmax_ce(LOSS_CHUNK)
        model.build_knowledge(train)
        self._reset_log()

    def _reset_log(self) -> None:
        self.log = {"enhanced_loss": 0.0, "divergence": 0.0, "kept_neighbours": 0.0, "steps": 0}

    def _positions(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Real positions, or `query_positions` of them drawn per row.  -> bool [B, L]"""
        real = (inputs != 0) & (targets != 0)
        n = self.model.retrieval.query_positions
        if not n:
            return real
        draw = torch.rand(real.shape, generator=self.train_set.generator).to(real.device).masked_fill(~real, 2.0)
        ranks = draw.argsort(dim=1).argsort(dim=1)  # [B, L] rank of each position's draw within its row
        return real & (ranks < n)

    def forward(self, step: Step) -> LossSum:
        assert step.targets is not None, "retrieval augmentation trains next-item models"
        return mean_term(self.loss(step.users, step.inputs, step.targets, step.hidden))

    def loss(self, users: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
             hidden: torch.Tensor) -> torch.Tensor:
        """Weighted enhanced loss + divergence (means over the chosen positions).  [B], [B, L] x2, [B, L, D]"""
        cfg, model = self.model.retrieval, self.model
        chosen = self._positions(inputs, targets)  # [B, L]
        rows = self.train_set.rows_of(users)
        lengths = prefix_lengths(self.full_lengths[rows], inputs.shape[1])[chosen]  # [P]
        owners = users[:, None].expand_as(chosen)[chosen]  # [P]
        h, y = hidden[chosen], targets[chosen]  # [P, D], [P]
        out = model.augment(h, owners, lengths)
        fused, items = out.fused, model.item_embeddings()
        enhanced = self.softmax(fused.hidden, y, items) / max(len(y), 1)
        p_ret = fused.attention if cfg.fusion_query == "retriever" else retrieval_distribution(
            out.query, out.found.keys, fused.kept, temperature=cfg.temperature, similarity=cfg.similarity)
        p_rec = recommendation_distribution(h, out.found.values, items[y], fused.kept,
                                            alpha=cfg.alpha, kind=cfg.target, temperature=cfg.target_temperature)
        divergence = (kl_divergence if cfg.divergence == "kl" else js_divergence)(p_ret, p_rec, fused.kept)
        self.log["enhanced_loss"] += float(enhanced.detach())
        self.log["divergence"] += float(divergence.detach())
        self.log["kept_neighbours"] += float(fused.kept.sum(1).float().mean()) if len(y) else 0.0
        self.log["steps"] += 1
        return cfg.enhanced_weight * enhanced + cfg.kl_weight * divergence

    def end_epoch(self, epoch: int) -> dict[str, float]:
        steps = max(self.log.pop("steps"), 1)
        out = {k: v / steps for k, v in self.log.items()}
        self._reset_log()
        every = self.model.retrieval.refresh_every
        if every and epoch % every == 0:
            start = time.perf_counter()
            self.model.build_knowledge(self.train_set)
            out["refresh_seconds"] = time.perf_counter() - start
        return out

    def checkpoint_state(self) -> dict:
        """The parameters and the knowledge base as last encoded (a refresh may be epochs behind the weights)."""
        kb = self.model.knowledge
        arrays = {} if kb is None else {name: torch.from_numpy(getattr(kb, name))
                                        for name in ("keys", "targets", "users", "lengths")}
        return {**super().checkpoint_state(), "knowledge": arrays}

    def restore_checkpoint_state(self, state: dict) -> None:
        super().restore_checkpoint_state(state)
        if state["knowledge"]:
            self.model.use_knowledge(*(state["knowledge"][name].numpy()
                                       for name in ("keys", "targets", "users", "lengths")))

    def end_training(self) -> None:
        """Re-encode with the restored best weights, so the saved knowledge base matches the saved retriever."""
        self.model.build_knowledge(self.train_set)
