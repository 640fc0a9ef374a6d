"""RecFTT: latent-sweep math and parity with a per-latent loop, latent selection, the controller (identity at
init, hand-computed change), the losses, negative sampling, and tuning toward a genre on synthetic data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.interactions import Sequences
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError, RunError, SeqrecError
from seqrec.evaluation.evaluate import mask_seen_items
from seqrec.models.base import build_model
from seqrec.runs import Run
from seqrec.steering import SAERun, SteeredEncoder, TopKSAE
from seqrec.steering.activations import training_instances, user_vectors
from seqrec.steering.attributes import attribute_matrix
from seqrec.steering.interventions import decoder_change
from seqrec.steering.latent_sweep import LatentSweep, choose_latents, latent_sweep, load_sweep, ratio_key
from seqrec.steering.recftt import select_latents, sweep_latents, tune
from seqrec.steering.sae import SparseCode
from seqrec.steering.tuned_run import load_tuned_run
from seqrec.steering.tuning import (
    LatentController,
    NegativeSampler,
    TuneConfig,
    pairwise_loss,
    ranking_loss,
)


def planted_sae(model, membership: np.ndarray, latents: int = 12, k: int = 2) -> TopKSAE:
    """Latent 0 is active for every user (large bias) and decodes to the mean embedding of the attribute's items."""
    torch.manual_seed(0)
    dim = model.config.hidden
    sae = TopKSAE(dim, latents, k)
    with torch.no_grad():
        items = model.item_embeddings().float()
        direction = items[torch.from_numpy(membership[:, 0])].mean(0) - items[1:].mean(0)
        sae.W_dec[0] = direction / direction.norm()
        sae.encoder.weight[0] = 0.0
        sae.encoder.bias[0] = 5.0
    return sae.eval()


def test_the_latent_sweep_refuses_non_finite_scores(base_run: Run, steer_data: SplitData,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from seqrec.errors import NonFiniteError

    model = base_run.model.eval()
    membership = attribute_matrix(steer_data.catalog, ["Comedy"])
    sae = planted_sae(model, membership)
    nan_items = torch.full_like(model.item_embeddings(), float("nan"))
    monkeypatch.setattr(model, "item_embeddings", lambda: nan_items)
    with pytest.raises(NonFiniteError):
        latent_sweep(model, sae, steer_data.valid, ["Comedy"], membership, top=10)


def test_planted_latent_has_the_top_contribution_score(base_run: Run, steer_data: SplitData) -> None:
    model = base_run.model.eval()
    membership = attribute_matrix(steer_data.catalog, ["Comedy", "Drama"])
    sae = planted_sae(model, membership)
    sweep = latent_sweep(model, sae, steer_data.valid, ["Comedy", "Drama"], membership, top=10)
    assert sweep.case_counts[0] == len(steer_data.valid)  # active for every user
    assert int(np.argmax(sweep.scores[:, 0])) == 0
    assert sweep.regulation_scores("Comedy")[0]["latent_id"] == 0
    assert sweep.ratios[0, 0, 0] > sweep.base_ratios[0, 0] > sweep.ratios[1, 0, 0]  # ×10 > none > ×0.1


def test_sweep_equals_a_per_latent_loop(base_run: Run, steer_data: SplitData) -> None:
    model = base_run.model.eval()
    membership = attribute_matrix(steer_data.catalog, ["Comedy", "Horror"])
    sae = planted_sae(model, membership, latents=6, k=3)
    split, top = steer_data.valid, 7
    sweep = latent_sweep(model, sae, split, ["Comedy", "Horror"], membership, scales=(4.0, 0.5), top=top,
                         chunk_size=50)
    with torch.no_grad():
        x = user_vectors(model, split.histories)
        code = sae(x)
        z = code.z  # [E, H]
        items = model.item_embeddings().float()
        for j in range(sae.latents):
            users = (z[:, j] > 0).nonzero().squeeze(1)
            assert sweep.case_counts[j] == len(users)
            for s_i, s in enumerate((4.0, 0.5)):
                if len(users) == 0:
                    assert np.all(sweep.ratios[s_i, j] == 0)
                    continue
                u = x[users] + (s - 1) * z[users, j : j + 1] * sae.W_dec[j]
                scores = u @ items.T
                scores[:, 0] = float("-inf")
                mask_seen_items(scores, split.histories.take(users.numpy()))
                shares = membership[scores.topk(top, dim=1).indices.numpy()].mean(1).mean(0)  # [C]
                np.testing.assert_allclose(sweep.ratios[s_i, j], shares, atol=1e-5)


def hand_sweep() -> LatentSweep:
    ratios = np.zeros((2, 5, 1))
    ratios[0, :, 0] = [0.5, 0.2, 0.1, 0.3, 0.9]  # ×10
    ratios[1, :, 0] = [0.1, 0.2, 0.4, 0.1, 0.0]  # ×0.1  -> scores 0.4, 0, -0.3, 0.2, 0.9
    return LatentSweep(["Sci-Fi"], (10.0, 0.1), ratios, np.zeros((5, 1)), np.array([3, 2, 4, 1, 0]))


def test_choose_keeps_top_positive_and_negative_active_latents() -> None:
    sweep = hand_sweep()
    np.testing.assert_allclose(sweep.scores[:, 0], [0.4, 0.0, -0.3, 0.2, 0.9])
    assert choose_latents(sweep, "Sci-Fi", 1) == ([0], [2])  # latent 4 scores 0.9 but is never active
    assert choose_latents(sweep, "Sci-Fi", 5) == ([0, 3], [2])  # zero scores are dropped
    with pytest.warns(UserWarning, match="asked for 5"):
        assert select_latents(sweep, ["Sci-Fi"], 5)[0] == [0, 2, 3]
    with pytest.raises(SeqrecError, match="did not measure 'Drama'"):
        choose_latents(sweep, "Drama", 1)


def test_regulation_scores_use_recftt_fields_best_first() -> None:
    rows = hand_sweep().regulation_scores("Sci-Fi")
    assert [r["latent_id"] for r in rows] == [0, 3, 1, 2]  # latent 1 kept: its ratios are non-zero
    assert set(rows[0]) == {"latent_id", "score", "avg_ratio_x10", "avg_ratio_x0_1", "case_count"}
    assert rows[0]["score"] == pytest.approx(0.4) and rows[0]["case_count"] == 3
    assert ratio_key(10.0) == "avg_ratio_x10" and ratio_key(0.1) == "avg_ratio_x0_1"


def test_controller_change_by_hand() -> None:
    W_dec = torch.eye(4)  # latent j decodes to unit vector e_j
    ctrl = LatentController([3, 1], num_latents=4)
    with torch.no_grad():
        ctrl.multiplier.copy_(torch.tensor([2.0, 0.5]))  # slots follow sorted ids: latent 1, latent 3
        ctrl.bias.copy_(torch.tensor([0.1, -0.2]))
    values, index = torch.tensor([[3.0, 4.0]]), torch.tensor([[1, 2]])  # latent 1 = 3, latent 2 = 4 (uncontrolled)
    delta = decoder_change(ctrl, SparseCode(values, index), W_dec)
    # latent 1: (2-1)*3 + 0.1 = 3.1; latent 3: inactive, bias only: -0.2; latent 2 uncontrolled
    torch.testing.assert_close(delta, torch.tensor([[0.0, 3.1, 0.0, -0.2]]))


def test_tuned_encoder_equals_base_at_init(base_run: Run, sae_run: SAERun, steer_data: SplitData) -> None:
    model = base_run.model.eval()
    tuned = SteeredEncoder(model, sae_run.sae, "delta", LatentController([0, 5, 9], sae_run.sae.latents)).eval()
    items = torch.from_numpy(steer_data.test.histories.padded(model.max_len))
    with torch.no_grad():
        assert torch.equal(tuned.score(items), model.score(items))


def test_losses_on_hand_made_scores() -> None:
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[0.0], [1.0]])
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(1)))) / 2
    assert ranking_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    # two negatives: softmax-weighted sigmoids
    two = ranking_loss(torch.tensor([1.0]), torch.tensor([[0.0, 2.0]])).item()
    w = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    sig = 1 / (1 + np.exp(-np.array([1.0, -1.0])))
    assert two == pytest.approx(-math.log((w * sig).sum()), rel=1e-6)
    applies = torch.tensor([True, False])
    assert pairwise_loss(pos, torch.tensor([1.0, 5.0]), applies).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert pairwise_loss(pos, pos, torch.tensor([False, False])).item() == 0.0


def test_negative_sampler_avoids_seen_items_and_stays_in_the_allowed_set() -> None:
    seen = Sequences.from_lists([[1, 2, 3], [4]])
    sampler = NegativeSampler(seen, num_items=6, rng=np.random.default_rng(0))
    allowed = np.array([False, True, True, True, True, False, True])  # items 1-4 and 6
    rows = np.repeat([0, 1], 500)
    out = sampler.sample(rows, allowed, rounds=20)
    assert set(out[:500]) == {4, 6} and set(out[500:]) == {1, 2, 3, 6}


def test_training_instances_pair_each_prefix_with_its_next_item(base_run: Run, steer_data: SplitData) -> None:
    model = base_run.model.eval()
    train = steer_data.train.take(np.arange(3))
    x, targets, rows = training_instances(model, train, 0, np.random.default_rng(0))
    first = train.items[train.offsets[0] : train.offsets[1]]
    n0 = min(len(first) - 1, model.max_len)
    assert targets[:n0].tolist() == first[len(first) - n0 :].tolist() and (rows[:n0] == 0).all()
    prefix = torch.from_numpy(first[-model.max_len - 1 : -1][None])  # the longest prefix, as the model reads it
    with torch.no_grad():  # (earlier positions are read inside the training window, as in training)
        torch.testing.assert_close(x[n0 - 1], model.user_vector(prefix)[0].float(), atol=1e-5, rtol=1e-5)
    bert = build_model(tiny_model_config("bert4rec"), steer_data.num_items).eval()
    xb, tb, rb = training_instances(bert, train, 5, np.random.default_rng(0))
    assert xb.shape == (5, 16) and all(t in train.items[train.offsets[r] + 1 : train.offsets[r + 1]]
                                       for t, r in zip(tb.tolist(), rb.tolist(), strict=True))


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least one attribute"):
        TuneConfig()
    with pytest.raises(ConfigError, match="raised and lowered"):
        TuneConfig(targets=["Comedy"], suppress=["Comedy"])
    with pytest.raises(ConfigError, match="latents"):
        TuneConfig(targets=["Comedy"], latents=0)


def test_unknown_attribute_lists_the_available_ones(steer_data: SplitData) -> None:
    with pytest.raises(SeqrecError, match="unknown item attribute 'Western'; available: .*Comedy"):
        attribute_matrix(steer_data.catalog, ["Western"])


@pytest.fixture(scope="module")
def tuned(sae_run: SAERun, steer_data: SplitData):
    sweep = sweep_latents(sae_run, ["Comedy", "Drama"], steer_data, top=20)
    config = TuneConfig(targets=["Comedy"], latents=8, weight=2.0, lr=2e-2, epochs=15, batch_size=256,
                        select="Comedy_ratio@10")
    return sweep, tune(sae_run, config, data=steer_data, sweep=sweep, progress=False)


def test_tuning_raises_the_target_attribute(tuned) -> None:
    _, run = tuned
    for split in ("valid", "test"):
        base, after = run.metrics[split]["base"], run.metrics[split]["tuned"]
        assert after["Comedy_ratio@10"] > base["Comedy_ratio@10"] + 0.02
    assert run.metrics["best_epoch"] >= 1 and run.history[0]["epoch"] == 0


def test_sweep_and_tuned_runs_are_saved_and_reload(tuned, sae_run: SAERun, steer_data: SplitData) -> None:
    sweep, run = tuned
    assert sweep.path is not None and sweep.path.parent == sae_run.path
    assert load_sweep(sweep.path).regulation_scores("Comedy") == sweep.regulation_scores("Comedy")
    rows = json.loads((sweep.path / "Comedy_regulation_scores.json").read_text())
    assert rows == json.loads(json.dumps(sweep.regulation_scores("Comedy")))
    assert (sweep.path / "latent_scores.csv").read_text().startswith("latent,case_count,Comedy,Drama")
    assert run.path is not None and run.path.name.startswith("tune-Comedy") and run.path.parent == sae_run.path
    loaded = load_tuned_run(run.path)
    items = torch.from_numpy(steer_data.test.histories.padded(loaded.sae_run.base.model.max_len))
    with torch.no_grad():
        torch.testing.assert_close(loaded.recommender.score(items), run.recommender.score(items))
        assert not torch.equal(loaded.recommender.score(items), sae_run.base.model.score(items))
    assert load_tuned_run(run.path).metrics == json.loads(json.dumps(run.metrics))


def test_a_tuned_run_never_overwrites(tuned, sae_run: SAERun, steer_data: SplitData, tmp_path) -> None:
    sweep, run = tuned
    config = TuneConfig(targets=["Comedy"], latents=2, epochs=1, batch_size=512)
    again = tune(sae_run, config, data=steer_data, sweep=sweep, progress=False)
    assert again.path != run.path and again.path.name.startswith("tune-Comedy-")
    with pytest.raises(RunError, match="not a tuned run"):
        load_tuned_run(tmp_path)
