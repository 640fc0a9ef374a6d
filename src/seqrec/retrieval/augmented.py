"""A trained encoder augmented with retrieved training prefixes: the same encoder seam, fused user vectors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqrec.errors import ConfigError
from seqrec.models.base import SequentialEncoder, TrainingSet
from seqrec.models.losses import Encode, ItemLoss, LossSum
from seqrec.models.terms import LossTerm
from seqrec.retrieval.config import RetrievalConfig
from seqrec.retrieval.fusion import Fused, fuse
from seqrec.retrieval.knowledge_base import KnowledgeBase
from seqrec.retrieval.retriever import Retriever

ENCODE_ROWS = 512  # training sequences encoded at a time when (re)building the knowledge base


@dataclass
class Retrieved:
    """Neighbours of P queries as tensors on the model's device."""

    keys: torch.Tensor  # [P, k, D] stored retriever outputs (constants)
    values: torch.Tensor  # [P, k, D] item embeddings of the neighbours' next items
    mask: torch.Tensor  # [P, k] bool, False = padding


@dataclass
class Augmentation:
    """The retriever's query, what it retrieved, and the fused vectors."""

    query: torch.Tensor  # [P, D]
    found: Retrieved
    fused: Fused


def prefix_lengths(full_lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Items in the prefix ending at each input column of right-aligned windows.  [B], L -> [B, L]

    A window of L input columns over a training sequence of n items holds items n-L-1 .. n-2 (0-based; the last
    item is only a target), so column c ends the prefix of n - L + c items.
    """
    columns = torch.arange(width, device=full_lengths.device)
    return full_lengths[:, None] - width + columns[None, :]


class RetrievalAugmented(SequentialEncoder):
    """`base` + a trainable retriever + a knowledge base of training prefixes (FTragrec, fixed to train).

    Scores are `fused_user_vector @ item_embeddings.T`; with alpha = 0 (or `use_for_predict` off) they are the
    base model's scores exactly.
    """

    def __init__(self, base: SequentialEncoder, config: RetrievalConfig) -> None:
        super().__init__(base.config, base.num_items)
        if not getattr(base, "causal", False):
            raise ConfigError(f"retrieval augments next-item encoders (duorec, sasrec); {base.config.name} is not")
        self.base = base
        self.retrieval = config
        self.causal = base.causal
        self.retriever = Retriever(base.config.hidden, config.retriever_layers, config.retriever_inner,
                                   config.retriever_dropout)
        self.knowledge: KnowledgeBase | None = None
        self._freeze()

    def _unfrozen(self) -> list[torch.nn.Parameter]:
        cfg = self.retrieval
        if cfg.unfreeze == "all":
            return list(self.base.parameters())
        if cfg.unfreeze == "none":
            return []
        layers = self.base.stack.layers  # type: ignore[union-attr]
        if cfg.unfreeze_layers > len(layers):
            raise ConfigError(f"retrieval.unfreeze_layers={cfg.unfreeze_layers} but the encoder has {len(layers)} "
                              "blocks; use at most that many, or unfreeze: all")
        top = [*layers[len(layers) - cfg.unfreeze_layers:], self.base.stack.final_norm]  # type: ignore[union-attr]
        return [p for module in top for p in module.parameters()]

    def _freeze(self) -> None:
        trainable = {id(p) for p in self._unfrozen()}
        for p in self.base.parameters():
            p.requires_grad_(id(p) in trainable)

    def parameter_groups(self, lr: float) -> list[dict]:
        groups = [{"params": list(self.retriever.parameters()), "lr": lr}]
        encoder = [p for p in self.base.parameters() if p.requires_grad]
        return groups + ([{"params": encoder, "lr": self.retrieval.encoder_lr}] if encoder else [])

    # the encoder seam: hidden states and item vectors are the base model's
    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        return self.base.encode(items)

    def encode_layers(self, items: torch.Tensor) -> list[torch.Tensor]:
        return self.base.encode_layers(items)

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.base.item_embeddings()

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, D]
        h = self.base.user_vector(items)
        if not self.retrieval.use_for_predict or self.retrieval.alpha == 0:
            return h
        # no user filter: the knowledge base holds training prefixes only, all earlier than any evaluated target
        return self.augment(h).fused.hidden

    def augment(self, h: torch.Tensor, users: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> Augmentation:
        """Retrieve for h (own-user entries only if strictly shorter than `lengths`) and fuse.  h [P, D]"""
        query = self.retriever(h)  # [P, D]
        found = self.retrieve(query, users, lengths)
        cfg = self.retrieval
        if cfg.value_norm == "match":  # V_j on the scale of h, so that alpha is the share it really gets
            scale = h.norm(dim=-1)[:, None, None] / found.values.norm(dim=-1, keepdim=True).clamp(min=1e-8)
            found.values = found.values * scale  # [P, k, D]
        fused = fuse(h, query if cfg.fusion_query == "retriever" else h, found.keys, found.values, found.mask,
                     alpha=cfg.alpha, temperature=cfg.temperature, similarity=cfg.similarity,
                     quality_threshold=cfg.quality_threshold)
        return Augmentation(query, found, fused)

    def retrieve(self, query: torch.Tensor, users: torch.Tensor | None = None,
                 lengths: torch.Tensor | None = None) -> Retrieved:
        """The top-k neighbours of each query under the leakage rule.  query [P, D]"""
        if self.knowledge is None:
            raise ConfigError("the knowledge base is not built yet; train the model or load a saved run")
        cfg = self.retrieval
        found = self.knowledge.search(query.detach().float().cpu().numpy(), cfg.top_k,
                                      None if users is None else users.cpu().numpy(),
                                      None if lengths is None else lengths.cpu().numpy(),
                                      over_fetch=cfg.over_fetch, exclude_user=cfg.same_user == "exclude")
        device = query.device
        rows = np.where(found.mask, found.ids, 0)  # [P, k] padding points at row 0, masked below
        keys = torch.from_numpy(self.knowledge.keys[rows]).to(device=device, dtype=query.dtype)
        targets = torch.from_numpy(np.where(found.mask, self.knowledge.targets[rows], 0)).to(device)
        return Retrieved(keys, self.item_embeddings()[targets], torch.from_numpy(found.mask).to(device))

    def recommendation_loss(self, batch: torch.Tensor, item_loss: ItemLoss, generator: torch.Generator,
                            encode: Encode) -> tuple[LossSum, torch.Tensor | None]:
        """The base model's own objective (its `encode` is the same)."""
        return self.base.recommendation_loss(batch, item_loss, generator, encode)

    def loss_terms(self, train: TrainingSet) -> list[LossTerm]:
        from seqrec.retrieval.objective import RetrievalLoss

        return [RetrievalLoss(self, train)]  # the retrieval terms replace any of the base model's own

    @torch.no_grad()
    def build_knowledge(self, train: TrainingSet) -> KnowledgeBase:
        """Encode every training prefix (eval mode) into a new knowledge base and use it."""
        was_training = self.training
        self.eval()
        keys, targets, users, lengths = [], [], [], []
        full = torch.from_numpy(train.lengths).to(train.sequences.device)
        for start in range(0, len(train.sequences), ENCODE_ROWS):
            rows = slice(start, start + ENCODE_ROWS)
            inputs, next_items = train.sequences[rows, :-1], train.sequences[rows, 1:]  # [C, W-1]
            real = (inputs != 0) & (next_items != 0)
            keys.append(self.retriever(self.base.encode(inputs)[real]).float().cpu())
            targets.append(next_items[real].cpu())
            users.append(train.users[rows, None].expand_as(real)[real].cpu())
            lengths.append(prefix_lengths(full[rows], inputs.shape[1])[real].cpu())
        self.train(was_training)
        return self.use_knowledge(torch.cat(keys).numpy(), torch.cat(targets).numpy(), torch.cat(users).numpy(),
                                  torch.cat(lengths).numpy())

    def use_knowledge(self, keys: np.ndarray, targets: np.ndarray, users: np.ndarray, lengths: np.ndarray
                      ) -> KnowledgeBase:
        """Index these entries (keys [M, D]; targets, users, lengths [M]) as the knowledge base."""
        cfg = self.retrieval
        use_gpu = cfg.gpu_index and self.device.type == "cuda"
        self.knowledge = KnowledgeBase.build(keys, targets, users, lengths, nlist=cfg.nlist, nprobe=cfg.nprobe,
                                             exact_below=cfg.exact_below, use_gpu=use_gpu)
        if cfg.top_k > len(self.knowledge):
            raise ConfigError(f"retrieval.top_k={cfg.top_k} exceeds the knowledge base ({len(self.knowledge)} "
                              "training prefixes); lower it")
        return self.knowledge

    def save_extras(self, folder: Path) -> None:
        """Write the knowledge base next to the weights."""
        if self.knowledge is not None:
            self.knowledge.save(folder)

    def load_extras(self, folder: Path, rebuild_index: bool = False) -> None:
        self.knowledge = KnowledgeBase.load(folder, rebuild=rebuild_index, num_items=self.num_items,
                                            use_gpu=self.retrieval.gpu_index and self.device.type == "cuda")
