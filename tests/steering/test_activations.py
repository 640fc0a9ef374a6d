"""User vectors for the SAE: sampled prefixes equal the encoder's own user vectors; every-position needs causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.splits import SplitData
from seqrec.errors import SeqrecError
from seqrec.models.base import build_model
from seqrec.steering.activations import position_vectors, sample_prefixes, user_vectors


def test_user_vectors_match_the_encoder_row_by_row(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    prefixes = sample_prefixes(tiny_data.train, 50, np.random.default_rng(0), max_len=10)
    got = user_vectors(model, prefixes, batch_size=7)  # batched by length, returned in row order
    with torch.no_grad():
        for row in (0, 13, 49):
            items = torch.from_numpy(prefixes[row][-10:])[None]
            assert torch.allclose(got[row], model.user_vector(items)[0], atol=1e-5)


def test_every_position_of_a_left_aligned_causal_encoder_is_a_prefix_vector(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec", positions="left", max_len=20), tiny_data.num_items).eval()
    rows = tiny_data.train.take(np.arange(3))
    every = position_vectors(model, rows, 0, np.random.default_rng(0))
    prefixes = sample_prefixes(rows, 0, np.random.default_rng(0), max_len=20)  # all prefixes, in row order
    assert len(every) == len(prefixes) == int((rows.lengths - 1).sum())
    assert torch.allclose(every, user_vectors(model, prefixes), atol=1e-5)


def test_every_position_needs_a_causal_encoder(tiny_data: SplitData) -> None:
    model = build_model(tiny_model_config("bert4rec"), tiny_data.num_items)
    with pytest.raises(SeqrecError, match="causal"):
        position_vectors(model, tiny_data.train, 10, np.random.default_rng(0))
