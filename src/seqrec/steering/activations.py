"""User vectors of a frozen encoder (eval mode, no dropout): what an SAE trains on and what probes measure."""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.interactions import Sequences, concat_ranges
from seqrec.errors import SeqrecError
from seqrec.models.base import SequentialEncoder


def prefix_positions(sequences: Sequences, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` random training prefixes as (row, length): a row of length m has prefixes of length 1..m-1 (n = 0: all).

    Each prefix's next item, `items[offsets[row] + length]`, is a training target.  -> ([P], [P])
    """
    counts = np.maximum(sequences.lengths - 1, 0)  # prefixes per row
    total = int(counts.sum())
    if total == 0:
        raise SeqrecError("no training sequence has two items, so there are no prefixes to collect vectors from")
    flat = np.arange(total) if n <= 0 or n >= total else np.sort(rng.choice(total, size=n, replace=False))
    row = np.searchsorted(np.cumsum(counts), flat, side="right")  # which row each prefix comes from
    end = flat - (np.cumsum(counts) - counts)[row] + 1  # prefix length, 1..m-1
    return row, end


def cut_prefixes(sequences: Sequences, row: np.ndarray, end: np.ndarray, max_len: int) -> Sequences:
    """The prefixes (row, length), each cut to its last `max_len` items."""
    length = np.minimum(end, max_len)
    starts = sequences.offsets[row] + end - length
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    return Sequences(offsets, sequences.items[concat_ranges(starts, length)])


def sample_prefixes(sequences: Sequences, n: int, rng: np.random.Generator, max_len: int) -> Sequences:
    """`n` random training prefixes (uniform over all prefixes; n = 0: all), cut to the last `max_len`."""
    return cut_prefixes(sequences, *prefix_positions(sequences, n, rng), max_len)


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


@torch.no_grad()
def training_instances(model: SequentialEncoder, sequences: Sequences, n: int, rng: np.random.Generator,
                       batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user vector, next item, row) of `n` training prefixes (0 = all): what a controller on a frozen model
    trains on.

    Causal encoders read every position of each row in one pass (positions older than max_len are dropped);
    others encode sampled prefixes one by one.  -> x [M, D] float32, targets [M], rows [M] on CPU
    """
    model.eval()
    if not getattr(model, "causal", False):
        row, end = prefix_positions(sequences, n, rng)
        x = user_vectors(model, cut_prefixes(sequences, row, end, model.max_len))
        return x, torch.from_numpy(sequences.items[sequences.offsets[row] + end]), torch.from_numpy(row)
    inputs = sequences.truncate(1).padded(model.max_len)  # [R, L]
    targets = sequences.padded(model.max_len)  # [R, L]; position i's next item, aligned with inputs
    xs, ts, rs = [], [], []
    for start in range(0, len(inputs), batch_size):
        items = torch.from_numpy(inputs[start : start + batch_size])
        real = items != 0  # [B, L]
        if not real.any():
            continue
        hidden = model.encode(items.to(model.device)).float().cpu()  # [B, L, D]
        xs.append(hidden[real])
        ts.append(torch.from_numpy(targets[start : start + batch_size])[real])
        rs.append((torch.arange(len(items))[:, None] + start).expand_as(items)[real])
    x, t, r = torch.cat(xs), torch.cat(ts), torch.cat(rs)
    if 0 < n < len(x):
        keep = torch.from_numpy(np.sort(rng.choice(len(x), size=n, replace=False)))
        x, t, r = x[keep], t[keep], r[keep]
    return x, t, r
