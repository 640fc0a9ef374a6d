"""What an SAE latent means: the users that activate it most and the items its decoder direction scores highest."""

from __future__ import annotations

import torch

from seqrec.data.splits import EvalSplit
from seqrec.errors import SeqrecError
from seqrec.steering.activations import user_vectors
from seqrec.steering.sae_run import SAERun


def check_latent(sae_run: SAERun, latent: int) -> None:
    if not 0 <= latent < sae_run.sae.latents:
        raise SeqrecError(f"latent must be between 0 and {sae_run.sae.latents - 1}; got {latent}")


@torch.no_grad()
def latent_items(sae_run: SAERun, latent: int, n: int = 10) -> list[dict]:
    """Items whose output embedding aligns best with the latent's decoder row (what firing it promotes)."""
    check_latent(sae_run, latent)
    rec = sae_run.base.recommender
    scores = rec.model.item_embeddings().float() @ sae_run.sae.W_dec[latent].to(rec.device)  # [N+1]
    scores[0] = float("-inf")
    top = scores.topk(min(n, rec.model.num_items))
    return [{"rank": r + 1, "item": rec.item_map.to_external([int(i)])[0], "title": rec.catalog.title(int(i)),
             "score": float(s)} for r, (i, s) in enumerate(zip(top.indices.tolist(), top.values.tolist(),
                                                                 strict=True))]


@torch.no_grad()
def top_users(sae_run: SAERun, split: EvalSplit, latent: int, n: int = 10, recent: int = 3) -> list[dict]:
    """Users of `split` whose sparse code gives the latent its largest activations, with their latest items."""
    check_latent(sae_run, latent)
    rec = sae_run.base.recommender
    vectors = user_vectors(rec.model, split.histories).to(rec.device)
    activation = sae_run.sae(vectors).z[:, latent]  # [E]
    top = activation.topk(min(n, len(activation)))
    rows = []
    for value, row in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        if value <= 0:
            break
        last = split.histories[row][-recent:][::-1]
        rows.append({"user": rec.user_map.to_external([int(split.users[row])])[0], "activation": value,
                     "recent_items": [rec.catalog.title(int(i)) or rec.item_map.to_external([int(i)])[0]
                                      for i in last]})
    return rows
