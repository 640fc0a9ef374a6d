"""The steered encoder at the seam: `delta` with no intervention is the base model exactly; `recon` is x̂."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.splits import SplitData
from seqrec.errors import SeqrecError
from seqrec.models.base import build_model
from seqrec.steering import AddToLatents, NeuronStats, PopularitySteering, SteeredEncoder, TopKSAE


def test_delta_mode_without_intervention_reproduces_base_scores(model_name: str, tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(model_name), tiny_data.num_items).eval()
    sae = TopKSAE(dim=16, latents=64, k=4)
    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    with torch.no_grad():
        base = model.score(items)
        assert torch.equal(SteeredEncoder(model, sae, "delta").score(items), base)
        zero_shift = PopularitySteering(NeuronStats(*(np.ones(64),) * 4), alpha=0.0)
        assert torch.equal(SteeredEncoder(model, sae, "delta", zero_shift).score(items), base)


def test_recon_mode_scores_with_the_reconstruction(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    sae = TopKSAE(dim=16, latents=64, k=4)
    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    with torch.no_grad():
        x_hat = sae(model.user_vector(items)).x_hat
        scores = SteeredEncoder(model, sae, "recon").score(items)
        expected = x_hat @ model.item_embeddings().T
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5) and (scores[:, 0] == float("-inf")).all()


def test_delta_mode_moves_the_vector_by_the_code_change(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    sae = TopKSAE(dim=16, latents=64, k=4)
    shift = torch.zeros(64)
    shift[5] = 10.0  # force latent 5 into every top-k

    def steer(pre: torch.Tensor) -> torch.Tensor:
        return pre + shift

    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    with torch.no_grad():
        x = model.user_vector(items)
        z, z_steered = sae(x).z, sae(x, steer).z
        assert (z_steered[:, 5] > 0).all()
        got = SteeredEncoder(model, sae, "delta", AddToLatents([5], 10.0, stage="pre")).user_vector(items)
    assert torch.allclose(got, x + (z_steered - z) @ sae.W_dec, atol=1e-5)


def test_dimension_mismatch_and_bad_mode_are_errors(tiny_data: SplitData) -> None:
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    with pytest.raises(SeqrecError, match="16"):
        SteeredEncoder(model, TopKSAE(dim=8, latents=16, k=2))
    with pytest.raises(SeqrecError, match="scoring mode"):
        SteeredEncoder(model, TopKSAE(dim=16, latents=16, k=2), mode="sideways")  # type: ignore[arg-type]
