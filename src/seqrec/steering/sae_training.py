"""Fit a TopK SAE on fixed user vectors: FVU + AuxK, dead-latent tracking, early stopping on validation FVU."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seqrec.steering.sae import SAEConfig, TopKSAE, auxk_loss, fvu
from seqrec.training.callbacks import EarlyStopping, ProgressBar
from seqrec.training.loop import Loop, Record


@dataclass
class SAEFit:
    """The best SAE (lowest validation FVU) and one record per epoch."""

    sae: TopKSAE
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


@torch.no_grad()
def evaluate_fvu(sae: TopKSAE, vectors: torch.Tensor, batch_size: int = 8192) -> tuple[float, float]:
    """FVU over all of `vectors` (not a batch mean) and the share of latents that never fire on them."""
    sae.eval()
    sq_err, fired = 0.0, torch.zeros(sae.latents, dtype=torch.bool, device=vectors.device)
    for start in range(0, len(vectors), batch_size):
        out = sae(vectors[start : start + batch_size])
        sq_err += float((out.x_hat - vectors[start : start + batch_size]).pow(2).sum())
        fired |= out.fired()
    total = float((vectors - vectors.mean(0)).pow(2).sum())
    return sq_err / max(total, 1e-12), 1.0 - float(fired.float().mean())


def fit_sae(train: torch.Tensor, valid: torch.Tensor, config: SAEConfig, progress: bool = True) -> SAEFit:
    """Train a TopK SAE on `train` vectors [M, D]; select the epoch with the lowest FVU on `valid` [V, D].

    AuxK is off in epoch 1 (no dead set yet); afterwards latents that fired on no training vector during the
    previous epoch count as dead. Decoder rows are renormalised after every step.
    """
    torch.manual_seed(config.seed)
    dim = train.shape[1]
    sae = TopKSAE(dim, config.scale * dim, config.k).to(train.device)
    k_aux = config.resolved_k_aux(dim)
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr)
    schedule = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=config.plateau - 1)
                if config.plateau else None)  # torch's patience counts the bad epochs it lets pass
    dead: list[torch.Tensor | None] = [None]  # latents silent in the previous epoch

    def run_epoch(epoch: int) -> Record:
        lr = optimizer.param_groups[0]["lr"]
        train_fvu, train_aux, fired = train_epoch(sae, optimizer, train, config, dead[0], k_aux)
        dead[0] = ~fired
        valid_fvu, _ = evaluate_fvu(sae, valid)
        if schedule is not None:
            schedule.step(valid_fvu)
        return {"epoch": epoch, "train_fvu": train_fvu, "train_auxk": train_aux, "valid_fvu": valid_fvu,
                "dead_ratio": float(dead[0].float().mean()), "lr": lr}

    selection = EarlyStopping(sae, "valid_fvu", "min", config.patience)
    bar = ProgressBar("SAE", lambda r: f"valid FVU {r['valid_fvu']:.4f} (best {selection.best_score:.4f}) "
                                       f"dead {r['dead_ratio']:.1%}", enabled=progress)
    loop = Loop(config.epochs, [selection, bar])
    loop.run(run_epoch)
    sae.eval()
    return SAEFit(sae, loop.history, selection.best_epoch, loop.elapsed)


def train_epoch(sae: TopKSAE, optimizer: torch.optim.Optimizer, train: torch.Tensor, config: SAEConfig,
                dead: torch.Tensor | None, k_aux: int) -> tuple[float, float, torch.Tensor]:
    """One shuffled pass: mean FVU, mean AuxK, and which latents fired ([H] bool)."""
    sae.train()
    fired = torch.zeros(sae.latents, dtype=torch.bool, device=train.device)
    totals, steps = [0.0, 0.0], 0
    order = torch.randperm(len(train), device=train.device)
    for i in range(0, len(train), config.batch_size):
        x = train[order[i : i + config.batch_size]]  # [B, D]
        if len(x) < 2:  # FVU needs a batch variance
            continue
        out = sae(x)
        recon = fvu(x, out.x_hat)
        aux = auxk_loss(sae, x, out, dead, k_aux) if dead is not None else recon.new_zeros(())
        optimizer.zero_grad(set_to_none=True)
        (recon + config.aux_coef * aux).backward()
        optimizer.step()
        sae.normalize_decoder()
        fired |= out.fired()
        totals[0] += recon.item()
        totals[1] += aux.item()
        steps += 1
    return totals[0] / max(steps, 1), totals[1] / max(steps, 1), fired
