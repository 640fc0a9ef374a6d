"""User vectors of a frozen encoder (eval mode, no dropout): what an SAE trains on and what probes measure."""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.interactions import Sequences, concat_ranges
from seqrec.errors import SeqrecError
from seqrec.models.base import SequentialEncoder


def sample_prefixes(sequences: Sequences, n: int, rng: np.random.Generator, max_len: int) -> Sequences:
    """`n` random training prefixes (each one's next item is a training target), cut to the last `max_len`.

    A row of length m has prefixes of length 1..m-1; sampling is uniform over all prefixes (n = 0: all).
    """
    counts = np.maximum(sequences.lengths - 1, 0)  # prefixes per row
    total = int(counts.sum())
    if total == 0:
        raise SeqrecError("no training sequence has two items, so there are no prefixes to collect vectors from")
    flat = np.arange(total) if n <= 0 or n >= total else np.sort(rng.choice(total, size=n, replace=False))
    row = np.searchsorted(np.cumsum(counts), flat, side="right")  # which row each prefix comes from
    end = flat - (np.cumsum(counts) - counts)[row] + 1  # prefix length, 1..m-1
    length = np.minimum(end, max_len)
    starts = sequences.offsets[row] + end - length
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    return Sequences(offsets, sequences.items[concat_ranges(starts, length)])


@torch.no_grad()
def user_vectors(model: SequentialEncoder, sequences: Sequences, batch_size: int = 512) -> torch.Tensor:
    """`model.user_vector` of every row, batched by similar length.  -> [R, D] float32 on CPU"""
    model.eval()
    lengths = np.minimum(sequences.lengths, model.max_len)
    order = np.argsort(lengths, kind="stable")
    padded = sequences.padded(model.max_len)
    out = torch.empty(len(sequences), model.config.hidden)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(int(lengths[rows].max()), 1)
        items = torch.from_numpy(padded[rows][:, -width:]).to(model.device)
        out[torch.from_numpy(rows)] = model.user_vector(items).float().cpu()
    return out


@torch.no_grad()
def position_vectors(model: SequentialEncoder, sequences: Sequences, n: int, rng: np.random.Generator,
                     batch_size: int = 256) -> torch.Tensor:
    """Hidden states at every real position of each training input (causal encoders), `n` sampled (0 = all).

    The input of a row is every item but its last (whose position has no training target).  -> [M, D]
    """
    if not getattr(model, "causal", False):
        raise SeqrecError(f"sae.source=all needs a causal encoder; {model.config.name} sees future items "
                          "(use sae.source=last)")
    model.eval()
    inputs = sequences.truncate(1)
    padded = inputs.padded(model.max_len)
    chunks = []
    for start in range(0, len(inputs), batch_size):
        items = torch.from_numpy(padded[start : start + batch_size]).to(model.device)
        hidden = model.encode(items).float()  # [B, L, D]
        chunks.append(hidden[items != 0].cpu())
    vectors = torch.cat(chunks)
    if 0 < n < len(vectors):
        vectors = vectors[torch.from_numpy(np.sort(rng.choice(len(vectors), size=n, replace=False)))]
    return vectors
