"""The profile head: reconstruction error by hand, projections, missing profiles, the combined objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.distill.config import DistillConfig
from seqrec.distill.guide import ProfileGuide
from seqrec.distill.store import ProfileTable
from seqrec.errors import ConfigError
from seqrec.models.base import build_model
from seqrec.training.trainer import combine_terms

HIDDEN = 4


def _guide(vectors: np.ndarray, present: np.ndarray, model_name: str = "sasrec", **cfg: object) -> ProfileGuide:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(model_name, hidden=HIDDEN, heads=1), 20)
    config = DistillConfig(profiles=["p.json"], **{"projection": "none", **cfg})  # type: ignore[arg-type]
    return ProfileGuide(config, model, ProfileTable(vectors.astype(np.float32), present))


def _states() -> tuple[torch.Tensor, torch.Tensor]:
    hidden = torch.zeros(3, 2, HIDDEN)  # users 0, 1, 2; one real item each (left-padded)
    hidden[:, 1] = torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 3.0, 0]])
    real = torch.tensor([[False, True]] * 3)
    return hidden, real


def test_mse_by_hand_and_users_without_profiles_add_nothing() -> None:
    vectors = np.zeros((3, 1, HIDDEN))
    vectors[0, 0] = [1.0, 1.0, 0, 0]  # error (0 + 1) / 4
    vectors[2, 0] = [0, 0, 1.0, 0]  # error 4 / 4
    guide = _guide(vectors, np.array([[True], [False], [True]]))
    hidden, real = _states()
    total, count = guide.error(hidden, real, torch.tensor([0, 1, 2]))
    assert count.item() == 2
    assert total.item() == pytest.approx(0.25 + 1.0)
    hidden[1] += 50.0  # the user without a profile never changes the loss
    assert guide.error(hidden, real, torch.tensor([0, 1, 2]))[0].item() == pytest.approx(1.25)


def test_cosine_loss_is_zero_for_parallel_vectors() -> None:
    vectors = np.zeros((3, 1, HIDDEN))
    vectors[:, 0] = [[5.0, 0, 0, 0], [0, 1.0, 0, 0], [0, -1.0, 0, 0]]
    guide = _guide(vectors, np.ones((3, 1), dtype=bool), loss="cosine")
    total, count = guide.error(*_states(), torch.tensor([0, 1, 2]))
    assert total.item() == pytest.approx(0 + 0 + 1.0) and count.item() == 3


def test_several_profiles_average_the_present_ones() -> None:
    vectors = np.zeros((3, 2, HIDDEN))
    vectors[0] = [[1.0, 0, 0, 0], [3.0, 0, 0, 0]]
    guide = _guide(vectors, np.array([[True, True], [True, False], [False, False]]))
    target = guide.target(guide.profiles[:2], guide.present[:2])
    torch.testing.assert_close(target[0], torch.tensor([2.0, 0, 0, 0]))
    torch.testing.assert_close(target[1], torch.zeros(HIDDEN))  # only its (zero) first profile counts


@pytest.mark.parametrize(("projection", "trainable"), [("down", "down"), ("up", "up")])
def test_projections_map_between_sizes_and_learn(projection: str, trainable: str) -> None:
    vectors = np.random.default_rng(0).normal(size=(3, 2, 6))
    guide = _guide(vectors, np.ones((3, 2), dtype=bool), projection=projection, profile_pooling="attention")
    total, _ = guide.error(*_states(), torch.tensor([0, 1, 2]))
    total.backward()
    assert getattr(guide, trainable).weight.grad.abs().sum() > 0
    assert guide.profile_score.weight.grad.abs().sum() > 0


def test_projection_none_needs_the_models_size() -> None:
    with pytest.raises(ConfigError, match="projection none needs profiles of the model's size"):
        _guide(np.zeros((3, 1, 6)), np.ones((3, 1), dtype=bool))


def test_layers_index_blocks_and_the_output(model_name: str) -> None:
    model = build_model(tiny_model_config(model_name), 20).eval()
    items = torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]])
    layers = model.encode_layers(items)
    torch.testing.assert_close(layers[-1], model.encode(items))
    assert len(layers) == getattr(model.config, "blocks", 0) + 1
    with pytest.raises(ConfigError, match=f"distill.layer {len(layers)} does not exist"):
        ProfileGuide(DistillConfig(profiles=["p"], layer=len(layers)), model,
                     ProfileTable(np.zeros((2, 1, 16), np.float32), np.ones((2, 1), bool)))


def _objective(config: DistillConfig, rec: float = 6.0, guide: float = 0.5):
    rec_total = torch.tensor(rec, requires_grad=True)
    guide_total = torch.tensor(guide, requires_grad=True)
    sums = torch.tensor([rec, guide, 3.0, 2.0])  # global totals, then counts: 3 positions, 2 profiled users
    model = build_model(tiny_model_config("sasrec", hidden=HIDDEN, heads=1), 20)
    term = ProfileGuide(config, model, ProfileTable(np.zeros((1, 1, HIDDEN), np.float32), np.ones((1, 1), bool)))
    loss, logged = combine_terms(torch.stack([rec_total, guide_total]), torch.tensor([3.0, 2.0]), sums, [term])
    value = logged["guide_loss"]
    loss.backward()
    return loss, value, rec_total.grad, guide_total.grad


def test_alpha_mixes_the_two_means() -> None:
    loss, value, g_rec, g_guide = _objective(DistillConfig(profiles=["p"], alpha=0.25))
    assert value.item() == pytest.approx(0.25)
    assert loss.item() == pytest.approx(0.75 * 2.0 + 0.25 * 0.25)
    assert (g_rec.item(), g_guide.item()) == pytest.approx((0.75 / 3, 0.25 / 2))


def test_balance_makes_the_guide_term_worth_alpha_times_the_recommendation_loss() -> None:
    loss, _, _, g_guide = _objective(DistillConfig(profiles=["p"], alpha=0.4, balance=True))
    beta = 2.0 / 0.25  # L_rec / L_guide
    assert loss.item() == pytest.approx(0.6 * 2.0 + 0.4 * 2.0, rel=1e-6)
    assert g_guide.item() == pytest.approx(0.4 * beta / 2, rel=1e-6)


def test_rmse_gradient_is_the_gradient_of_the_root() -> None:
    _, value, _, g_guide = _objective(DistillConfig(profiles=["p"], alpha=1.0, loss="rmse"))
    assert value.item() == pytest.approx(0.5)  # sqrt(0.5 / 2)
    assert g_guide.item() == pytest.approx(1 / (2 * 0.5) / 2)  # d sqrt(s/n)/ds = 1 / (2 sqrt(s/n) n)
