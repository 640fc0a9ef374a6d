"""TopK sparse autoencoder over a recommender's user vectors (Gao et al. 2024; RecSAE / PopSteer presets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.config import check_finite
from seqrec.errors import ConfigError

PreActivationHook = Callable[[torch.Tensor], torch.Tensor]  # pre-activations [B, H] -> edited [B, H]


@dataclass
class SAEConfig:
    """Size, sparsity and training of a TopK SAE. `preset` fills k/scale/k_aux/aux_coef (0 = from preset)."""

    PRESETS: ClassVar[dict[str, dict]] = {
        # k_aux is a multiple of the input dimension d; aux_coef weighs the AuxK dead-latent loss
        "popsteer": {"k": 32, "scale": 64, "k_aux_per_dim": 2.0, "aux_coef": 0.5, "source": "last"},
        "recftt": {"k": 8, "scale": 16, "k_aux_per_dim": 0.5, "aux_coef": 1 / 32, "source": "all"},
    }
    preset: Literal["popsteer", "recftt"] = "popsteer"
    k: int = 0  # active latents per input
    scale: int = 0  # latents = scale * d
    k_aux: int = 0  # dead latents used by AuxK
    aux_coef: float = -1.0
    source: Literal["last", "all", ""] = ""  # last position of each training prefix | every position (causal)
    max_vectors: int = 100_000  # training vectors sampled from the source (0 = all)
    valid_vectors: int = 6_000  # held-out vectors for early stopping on FVU
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-3
    patience: int = 3  # epochs without validation-FVU improvement
    plateau: int = 0  # divide lr by 10 after this many epochs without a better valid FVU (PopSteer: 11); 0 = off
    seed: int = 42

    def __post_init__(self) -> None:
        check_finite(self, "sae")
        if self.preset not in self.PRESETS:
            raise ConfigError(f"sae.preset must be one of {', '.join(self.PRESETS)}; got {self.preset!r}")
        p = self.PRESETS[self.preset]
        self.k, self.scale = self.k or p["k"], self.scale or p["scale"]
        self.aux_coef = p["aux_coef"] if self.aux_coef < 0 else self.aux_coef
        self.source = self.source or p["source"]
        if self.source not in ("last", "all"):
            raise ConfigError(f"sae.source must be 'last' or 'all'; got {self.source!r}")
        for key in ("k", "scale", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"sae.{key} must be >= 1, got {getattr(self, key)}")
        if min(self.k_aux, self.max_vectors, self.patience, self.plateau) < 0 or self.valid_vectors < 1 or self.lr <= 0:
            raise ConfigError("sae.k_aux, max_vectors, patience and plateau must be >= 0; valid_vectors >= 1; lr > 0")
        if self.plateau and self.patience and self.plateau >= self.patience:
            raise ConfigError(f"sae.plateau ({self.plateau}) must be below sae.patience ({self.patience}): early "
                              "stopping would end training before the learning rate drops")

    def resolved_k_aux(self, dim: int) -> int:
        return self.k_aux or max(1, int(self.PRESETS[self.preset]["k_aux_per_dim"] * dim))


@dataclass
class SparseCode:
    """A top-k code: the k kept values per row and their latent ids.  values/index [B, k]"""

    values: torch.Tensor  # the k largest ReLU'd pre-activations per row
    index: torch.Tensor  # their latent indices

    def dense(self, latents: int) -> torch.Tensor:
        """values at index, zeros elsewhere.  -> [B, H]"""
        return self.values.new_zeros(len(self.values), latents).scatter(1, self.index, self.values)

    def rows(self, rows: torch.Tensor) -> SparseCode:
        """The code of some rows only.  rows [R] -> [R, k]"""
        return SparseCode(self.values[rows], self.index[rows])


@dataclass
class SAEOutput(SparseCode):
    """One forward pass: the top-k code plus pre [B, H] and x_hat [B, D]."""

    pre: torch.Tensor  # pre-activations W_enc(x - b_dec) + b_enc, before ReLU and top-k
    x_hat: torch.Tensor  # reconstruction z W_dec + b_dec

    @property
    def z(self) -> torch.Tensor:
        """The sparse code as a dense matrix: values at index, zeros elsewhere.  [B, H]"""
        return self.dense(self.pre.shape[1])

    def fired(self) -> torch.Tensor:
        """Which latents are non-zero for some row.  [H] bool"""
        out = torch.zeros(self.pre.shape[1], dtype=torch.bool, device=self.pre.device)
        out[self.index[self.values > 0]] = True
        return out


class TopKSAE(nn.Module):
    """x -> pre = W_enc(x - b_dec) + b_enc -> z = TopK(ReLU(pre)) -> x̂ = z W_dec + b_dec; decoder rows unit-norm."""

    def __init__(self, dim: int, latents: int, k: int) -> None:
        super().__init__()
        if not 1 <= k <= latents:
            raise ConfigError(f"sae.k must be between 1 and the number of latents ({latents}); got {k}")
        self.dim, self.latents, self.k = dim, latents, k
        self.encoder = nn.Linear(dim, latents)  # W_enc [H, D], b_enc [H]
        nn.init.zeros_(self.encoder.bias)
        self.W_dec = nn.Parameter(self.encoder.weight.detach().clone())  # tied init  [H, D]
        self.b_dec = nn.Parameter(torch.zeros(dim))  # pre-encoder bias  [D]
        self.normalize_decoder()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder row to unit L2 norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:  # [B, D] -> [B, H]
        return self.encoder(x - self.b_dec)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # [B, H] -> [B, D]
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor, hook: PreActivationHook | None = None) -> SAEOutput:
        """Encode, optionally edit the pre-activations (before ReLU/top-k), keep the top k, decode.  x [B, D]"""
        if hook is None and torch.is_grad_enabled():  # training: gradients only through the top k
            with torch.no_grad():
                pre = self.pre_activations(x)
            index = pre.topk(self.k, dim=1).indices
            values = self.select(x, index).relu()
        else:
            pre = self.pre_activations(x)
            if hook is not None:
                pre = hook(pre)
            values, index = pre.topk(self.k, dim=1)  # [B, k]
            values = values.relu()
        return SAEOutput(values, index, pre, self.decode_sparse(values, index) + self.b_dec)

    def select(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Pre-activations of the latents in `index` only (cheap to differentiate).  x [B, D], index [B, k]"""
        rows = F.embedding(index, self.encoder.weight)  # [B, k, D]; embedding backward is a fast index_add
        return torch.einsum("bd,bkd->bk", x - self.b_dec, rows) + F.embedding(index, self.encoder.bias[:, None])[..., 0]

    def decode_sparse(self, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """sum_k values[:, k] * W_dec[index[:, k]], without the bias.  [B, k] -> [B, D]"""
        return torch.einsum("bk,bkd->bd", values, F.embedding(index, self.W_dec))


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained: ||x̂ - x||² / ||x - mean(x)||² over the batch.  x, x_hat [B, D]"""
    return (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def auxk_loss(sae: TopKSAE, x: torch.Tensor, out: SAEOutput, dead: torch.Tensor, k_aux: int) -> torch.Tensor:
    """AuxK: the top-k_aux dead latents reconstruct the residual x - x̂, normalised like FVU.

    dead [H] bool. Scaled by min(n_dead / k_aux, 1). Follows Gao et al.: the target is the residual x - x̂
    (detached) and the auxiliary reconstruction has no decoder bias.
    """
    dead_index = dead.nonzero().squeeze(1)  # [n_dead]
    if len(dead_index) == 0:
        return x.new_zeros(())
    k = min(k_aux, len(dead_index))
    index = dead_index[out.pre[:, dead_index].detach().topk(k, dim=1).indices]  # only dead latents  [B, k]
    residual_hat = sae.decode_sparse(sae.select(x, index).relu(), index)  # [B, D]
    residual = (x - out.x_hat).detach()
    loss = (residual_hat - residual).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    return min(len(dead_index) / k_aux, 1.0) * loss
