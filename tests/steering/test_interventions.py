"""Interventions: each built-in through `SteeredEncoder` gives exactly the numbers of the formula it replaces;
pre- and post-top-k edits differ as they should; the registry; a new intervention defined here works end to end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.evaluation.evaluate import evaluate
from seqrec.models.base import SequentialEncoder, build_model
from seqrec.steering import (
    AddToLatents,
    LatentController,
    NeuronStats,
    PopularitySteering,
    SAERun,
    ScaleLatents,
    SetLatents,
    SteeredEncoder,
    TopKSAE,
    build_intervention,
    register_intervention,
)
from seqrec.steering.activations import user_vectors
from seqrec.steering.interventions import Stage


@dataclass
class ClampLatents:
    """Caps the chosen latents at `ceiling` after top-k (a new intervention: these lines plus one registration)."""

    latents: torch.Tensor
    ceiling: float
    stage: Stage = "post"

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, S]
        return acts.clamp_max(self.ceiling) - acts


register_intervention("clamp", ClampLatents)


def model_and_sae(data: SplitData) -> tuple[SequentialEncoder, TopKSAE]:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), data.num_items).eval()
    sae = TopKSAE(dim=16, latents=64, k=4).eval()
    with torch.no_grad():
        sae.encoder.bias.normal_(0.0, 0.3)  # spread the top-k over many latents
    return model, sae


def probe_stats(latents: int) -> NeuronStats:
    rng = np.random.default_rng(0)
    return NeuronStats(rng.normal(size=latents), rng.uniform(0.1, 1.0, latents), rng.normal(size=latents),
                       rng.uniform(0.1, 1.0, latents))


@pytest.mark.parametrize("neurons", [None, 10])
def test_popsteer_equals_shifting_the_pre_activations(tiny_data: SplitData, neurons: int | None) -> None:
    model, sae = model_and_sae(tiny_data)
    steer = PopularitySteering(probe_stats(64), alpha=2.5, neurons=neurons)
    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    with torch.no_grad():
        x = model.user_vector(items)
        shifted = sae(x, lambda pre: pre + steer.shift)  # Eq. 3/4 on every neuron (zero shift where unselected)
        delta = x + (shifted.z - sae(x).z) @ sae.W_dec
        assert torch.equal(SteeredEncoder(model, sae, "delta", steer).user_vector(items), delta)
        assert torch.equal(SteeredEncoder(model, sae, "recon", steer).user_vector(items), shifted.x_hat)
        assert not torch.equal(delta, x)


def test_controller_equals_the_recftt_formula(tiny_data: SplitData) -> None:
    model, sae = model_and_sae(tiny_data)
    controller = LatentController([40, 3, 1, 7, 20], sae.latents)
    torch.manual_seed(1)
    with torch.no_grad():
        controller.multiplier.copy_(torch.randn(5))
        controller.bias.copy_(torch.randn(5))
    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    with torch.no_grad():
        x = model.user_vector(items)
        code = sae(x)
        z_s = x.new_zeros(len(x), 5).scatter_add_(1, controller.slot[code.index].clamp_min(0),
                                                  code.values * (controller.slot[code.index] >= 0))  # [B, S]
        expected = x + ((controller.multiplier - 1.0) * z_s + controller.bias) @ sae.W_dec[controller.latents]
        assert torch.equal(SteeredEncoder(model, sae, "delta", controller).user_vector(items), expected)


def test_the_sweep_edit_equals_scaling_one_latent_per_row(tiny_data: SplitData) -> None:
    model, sae = model_and_sae(tiny_data)
    with torch.no_grad():
        x = user_vectors(model, tiny_data.valid.histories)
        code = sae(x)
        users, slot = (code.values > 0).nonzero(as_tuple=True)  # every (user, active latent)
        latents, values = code.index[users, slot], code.values[users, slot]
        steered = SteeredEncoder(model, sae, "delta")
        for s in (10.0, 0.1):
            expected = x[users] + (s - 1.0) * values[:, None] * sae.W_dec[latents]
            got = steered.steer(x[users], code.rows(users), [ScaleLatents.one_per_row(latents, s)])
            assert torch.equal(got, expected)


def hand_sae() -> TopKSAE:
    """Identity encoder and decoder, top-1: latent j reads and writes coordinate j."""
    sae = TopKSAE(dim=16, latents=16, k=1)
    with torch.no_grad():
        sae.encoder.weight.copy_(torch.eye(16))
        sae.W_dec.copy_(torch.eye(16))
    return sae.eval()


@pytest.mark.parametrize(("edit", "stage", "expected"), [
    (ScaleLatents([0], 0.5), "post", [1.5, 1.0]),  # z0 3 -> 1.5
    (ScaleLatents([0], 0.1), "pre", [0.0, 2.0]),  # pre0 3 -> 0.3 loses top-1 to latent 1 (1.0)
    (AddToLatents([1], 5.0), "post", [3.0, 6.0]),  # an inactive latent gains 5
    (AddToLatents([1], 5.0), "pre", [0.0, 7.0]),  # latent 1 (6) wins top-1, latent 0 (3) drops out
    (SetLatents([1], 4.0), "post", [3.0, 5.0]),
    (SetLatents([1], 4.0), "pre", [0.0, 5.0]),
])
def test_plain_edits_before_and_after_top_k(tiny_data: SplitData, edit, stage: Stage,
                                            expected: list[float]) -> None:
    edit.stage = stage
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    x = torch.zeros(1, 16)
    x[0, :2] = torch.tensor([3.0, 1.0])  # code: latent 0 = 3
    u = SteeredEncoder(model, hand_sae(), "delta", edit).steer(x)
    torch.testing.assert_close(u[0, :2], torch.tensor(expected))
    assert (u[0, 2:] == 0).all()


def test_post_edits_add_up_and_recon_decodes_the_edited_code(tiny_data: SplitData) -> None:
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items).eval()
    x = torch.zeros(1, 16)
    x[0, :2] = torch.tensor([3.0, 1.0])
    edits = [ScaleLatents([0], 0.5), AddToLatents([1], 2.0)]
    torch.testing.assert_close(SteeredEncoder(model, hand_sae(), "delta", edits).steer(x)[0, :2],
                               torch.tensor([1.5, 3.0]))
    torch.testing.assert_close(SteeredEncoder(model, hand_sae(), "recon", edits).steer(x)[0, :2],
                               torch.tensor([1.5, 2.0]))  # x̂ of z̃ = (1.5, 2): the residual (0, 1) is dropped


def test_a_trainable_intervention_gets_gradients_through_the_encoder(tiny_data: SplitData) -> None:
    model, sae = model_and_sae(tiny_data)
    controller = LatentController(list(range(64)), sae.latents)
    steered = SteeredEncoder(model, sae, "delta", controller)
    assert list(steered.trainable) == [controller]
    items = torch.from_numpy(tiny_data.test.histories.padded(10))
    steered.score(items)[:, 1:].sum().backward()
    assert controller.bias.grad is not None and controller.bias.grad.abs().sum() > 0
    assert sae.W_dec.grad is None


def test_registry_builds_by_name_and_lists_the_valid_names() -> None:
    edit = build_intervention("scale", latents=[3, 7], factor=0.0)
    assert isinstance(edit, ScaleLatents) and edit.latents.tolist() == [3, 7]
    assert isinstance(build_intervention("controller", latents=[1], num_latents=4), LatentController)
    with pytest.raises(ConfigError, match="unknown intervention 'nudge'; available: add, clamp, controller, "
                                          "popsteer, scale, set"):
        build_intervention("nudge")
    with pytest.raises(ConfigError, match="intervention 'add'"):
        build_intervention("add", latents=[1], strength=2.0)


def test_bad_latents_and_stages_are_config_errors(tiny_data: SplitData) -> None:
    model, sae = model_and_sae(tiny_data)
    with pytest.raises(ConfigError, match="below the SAE's 64 latents"):
        SteeredEncoder(model, sae, "delta", AddToLatents([64], 1.0))
    with pytest.raises(ConfigError, match="ids >= 0"):
        ScaleLatents([-1], 2.0)
    with pytest.raises(ConfigError, match="'pre' or 'post'"):
        SteeredEncoder(model, sae, "delta", AddToLatents([1], 1.0, stage="after"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="latents for 2 rows, the batch has 3"):
        SteeredEncoder(model, sae, "delta").steer(torch.zeros(3, 16), interventions=ScaleLatents([[1], [2]], 2.0))


def test_a_new_intervention_works_end_to_end(sae_run: SAERun, steer_data: SplitData) -> None:
    sae = sae_run.sae
    clamp = build_intervention("clamp", latents=torch.arange(sae.latents), ceiling=0.5)
    recommender = sae_run.steered("delta", clamp)
    model = sae_run.base.model
    items = torch.from_numpy(steer_data.test.histories.padded(model.max_len))
    with torch.no_grad():
        x = model.user_vector(items)
        z = sae(x).z
        expected = (x + (z.clamp_max(0.5) - z) @ sae.W_dec) @ model.item_embeddings().T
        scores = recommender.model.score(items)
    assert (z > 0.5).any()  # the clamp changes something
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:])
    metrics = evaluate(recommender, steer_data.test, ks=(10,), metrics="accuracy")
    assert 0.0 <= metrics["NDCG@10"] <= 1.0
