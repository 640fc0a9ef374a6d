"""Settings of retrieval augmentation (FTragrec): knowledge base, retriever, fusion, losses, unfreezing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from seqrec.config import check_finite
from seqrec.errors import ConfigError

CHOICES = {
    "same_user": ("earlier", "exclude"),
    "similarity": ("cosine", "dot"),
    "fusion_query": ("retriever", "hidden"),
    "divergence": ("kl", "js"),
    "target": ("sigmoid", "softmax"),
    "unfreeze": ("none", "top", "all"),
    "value_norm": ("match", "raw"),
}


@dataclass
class RetrievalConfig:
    """Retrieval-augmented fine-tuning of a trained encoder (off while `base_run` is empty).

    Loss: CE(h) + enhanced_weight·CE(h_enh) + kl_weight·D(P_ret ‖ P_rec), h_enh = (1-α)·h + α·Σ_j a_j V_j with
    a = softmax(sim(query, S_j)/temperature) over neighbours whose cosine to the query >= quality_threshold.
    `fusion_query: retriever` lets the fusion train the retriever (the original used the raw h: `hidden`).
    `value_norm: match` rescales each neighbour's item vector V_j to the norm of h before mixing: item embeddings
    are ~30× shorter than encoder states, so with `raw` (the original) α = 0.15 barely moves any score.
    """

    base_run: str = ""  # run directory of the DuoRec/SASRec to augment
    top_k: int = 5
    over_fetch: int = 4  # candidates fetched per neighbour before the leakage filter (refetched if too few survive)
    nlist: int = 0  # IVF lists; 0 = min(128, max(1, N // 39))
    nprobe: int = 10
    exact_below: int = 10_000  # exact inner-product search below this many entries
    same_user: Literal["earlier", "exclude"] = "earlier"  # a user's own strictly shorter prefixes, or none
    retriever_layers: int = 1
    retriever_inner: int = 256
    retriever_dropout: float = 0.1
    temperature: float = 0.07
    similarity: Literal["cosine", "dot"] = "cosine"
    fusion_query: Literal["retriever", "hidden"] = "retriever"
    alpha: float = 0.15
    value_norm: Literal["match", "raw"] = "match"  # rescale neighbour item vectors to the norm of h, or keep them
    quality_threshold: float = 0.6  # cosine; <= -1 keeps every neighbour
    enhanced_weight: float = 0.5
    kl_weight: float = 0.03
    divergence: Literal["kl", "js"] = "kl"
    target: Literal["sigmoid", "softmax"] = "sigmoid"  # P_rec: normalised sigmoid (the paper's) or softmax
    target_temperature: float = 1.0  # target: softmax
    refresh_every: int = 10  # re-encode the knowledge base every N epochs; 0 = never
    unfreeze: Literal["none", "top", "all"] = "top"  # encoder parts trained with the retriever
    unfreeze_layers: int = 1  # unfreeze: top
    encoder_lr: float = 1e-4  # learning rate of the unfrozen encoder parts
    query_positions: int = 0  # retrieval-augmented positions per sequence and batch; 0 = every position
    use_for_predict: bool = True  # False scores with the plain encoder
    gpu_index: bool = True  # faiss on the GPU when faiss has one and the model is on CUDA

    @property
    def enabled(self) -> bool:
        return bool(self.base_run)

    def __post_init__(self) -> None:
        check_finite(self, "retrieval")
        for key, valid in CHOICES.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"retrieval.{key} must be one of {', '.join(valid)}; got {getattr(self, key)!r}")
        for key in ("top_k", "over_fetch", "nprobe", "retriever_layers", "retriever_inner", "unfreeze_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"retrieval.{key} must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"retrieval.alpha must be in [0, 1], got {self.alpha}")
        if min(self.temperature, self.target_temperature, self.encoder_lr) <= 0:
            raise ConfigError("retrieval.temperature, target_temperature and encoder_lr must be > 0")
        if min(self.nlist, self.exact_below, self.refresh_every, self.query_positions, self.enhanced_weight,
               self.kl_weight) < 0:
            raise ConfigError("retrieval.nlist, exact_below, refresh_every, query_positions, enhanced_weight and "
                              "kl_weight must be >= 0")
        if not 0.0 <= self.retriever_dropout < 1.0:
            raise ConfigError(f"retrieval.retriever_dropout must be in [0, 1), got {self.retriever_dropout}")
