"""PopSteer: profiles, Cohen's d, Eq. 3/4 weights, steering direction on planted popularity, the baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.data.catalog import HEAD, TAIL
from seqrec.data.splits import ItemStats, SplitData
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.steering import NeuronStats, PopularityReweighting, PopularitySteering, SAERun, probe
from seqrec.steering.activations import sample_prefixes
from seqrec.steering.popsteer import popularity_profiles


def test_cohens_d_on_a_planted_example() -> None:
    stats = NeuronStats(mean_pop=np.array([3.0, 0.0, 1.0, 2.0]), std_pop=np.array([1.0, 2.0, 0.0, 0.0]),
                        mean_unpop=np.array([1.0, 1.0, 1.0, 2.0]), std_unpop=np.array([1.0, 2.0, 0.0, 0.0]))
    # neuron 0: (3-1)/1 = 2 (popular); neuron 1: (0-1)/2 = -0.5 (unpopular); no spread at all -> 0
    assert np.allclose(stats.cohens_d, [2.0, -0.5, 0.0, 0.0])
    pooled = NeuronStats(np.array([1.0]), np.array([3.0]), np.array([0.0]), np.array([1.0]))
    assert pooled.cohens_d[0] == pytest.approx(1.0 / np.sqrt((9.0 + 1.0) / 2.0))


def test_steering_weights_by_hand() -> None:
    stats = NeuronStats(mean_pop=np.array([2.0, 0.0, 0.5, 0.0]), std_pop=np.array([1.0, 1.0, 1.0, 1.0]),
                        mean_unpop=np.array([0.0, 1.0, 0.0, 0.0]), std_unpop=np.array([1.0, 1.0, 1.0, 1.0]))
    # d = [2, -1, 0.5, 0]; N = 2 -> neurons 0 and 1; w0 = 2·(2-0.5)/(2-0.5) = 2, w1 = 2·(1-0.5)/1.5 = 2/3
    steer = PopularitySteering(stats, alpha=2.0, neurons=2)
    assert np.allclose(steer.shift.numpy(), [-2.0, 2.0 / 3.0, 0.0, 0.0], atol=1e-6)
    # all neurons (the default): neuron 2 joins with weight 0 (it has the smallest |d|)
    assert np.allclose(PopularitySteering(stats, alpha=2.0).shift.numpy(), [-2.0, 2.0 / 3.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize(("alpha", "neurons", "message"),
                         [(-1.0, None, "alpha"), (float("nan"), None, "alpha"), (1.0, 0, "neurons"),
                          (1.0, 5, "neurons")])
def test_out_of_range_alpha_or_neurons(alpha: float, neurons: int | None, message: str) -> None:
    stats = NeuronStats(*(np.ones(4),) * 4)
    with pytest.raises(SeqrecError, match=message):
        PopularitySteering(stats, alpha=alpha, neurons=neurons)


def test_profiles_use_only_head_or_tail_items_with_real_prefix_lengths(steer_data: SplitData) -> None:
    stats = steer_data.item_stats
    popular, unpopular = popularity_profiles(steer_data.train, stats, 500, max_len=20, seed=0)
    assert len(popular) == len(unpopular) == 500
    assert np.array_equal(popular.lengths, unpopular.lengths)
    assert (stats.labels[popular.items] == HEAD).all() and (stats.labels[unpopular.items] == TAIL).all()
    real = sample_prefixes(steer_data.train, 0, np.random.default_rng(0), max_len=20).lengths
    assert popular.lengths.min() >= 1 and popular.lengths.max() <= min(real.max(), 20)


def test_sample_prefixes_enumerates_every_prefix() -> None:
    from seqrec.data.interactions import Sequences

    seqs = Sequences.from_lists([[1, 2, 3], [4, 5]])
    every = sample_prefixes(seqs, 0, np.random.default_rng(0), max_len=10)
    assert [list(every[i]) for i in range(len(every))] == [[1], [1, 2], [4]]
    cut = sample_prefixes(seqs, 0, np.random.default_rng(0), max_len=1)
    assert [list(cut[i]) for i in range(len(cut))] == [[1], [2], [4]]


def test_a_concept_without_tail_items_is_an_error(steer_data: SplitData) -> None:
    flat = ItemStats(steer_data.item_stats.counts, np.zeros_like(steer_data.item_stats.labels))
    with pytest.raises(SeqrecError, match="head and tail"):
        popularity_profiles(steer_data.train, flat, 10, max_len=20)


def test_probe_finds_popularity_neurons_and_steering_raises_the_tail_share(sae_run: SAERun,
                                                                           steer_data: SplitData) -> None:
    stats, computed = probe(sae_run, steer_data, profiles=1024)
    d = stats.cohens_d
    assert computed and (d > 0).any() and (d < 0).any() and np.abs(d).max() > 1.0
    labels = steer_data.item_stats.labels

    def tail_share(alpha: float) -> float:
        rec = sae_run.steered("recon", PopularitySteering(stats, alpha))
        with torch.no_grad():
            scores = rec.score(torch.from_numpy(steer_data.test.histories.padded(20)))
        return float((labels[scores.topk(10).indices.numpy()] == TAIL).mean())

    shares = [tail_share(a) for a in (0.0, 2.0, 6.0)]
    assert shares[0] < shares[1] < shares[2], shares
    again, computed_again = probe(sae_run, steer_data, profiles=1024)  # read back from the SAE run
    assert not computed_again and np.allclose(again.cohens_d, d)


def test_reweighting_baseline(sae_run: SAERun, steer_data: SplitData) -> None:
    base = sae_run.base.recommender
    pop = steer_data.item_stats.pop_scores
    items = torch.from_numpy(steer_data.test.histories.padded(20))
    with torch.no_grad():
        plain = base.score(items)
        assert torch.equal(PopularityReweighting(base.model, pop, 0.0).score(items), plain)
        heavy = PopularityReweighting(base.model, pop, 4.0).score(items)
    most = int(np.argmax(pop))
    assert torch.allclose(plain[:, most] - heavy[:, most], torch.tensor(np.log1p(4.0)).float())
    light = evaluate(PopularityReweighting(base.model, pop, 0.0), steer_data.test, ks=(10,))
    strong = evaluate(PopularityReweighting(base.model, pop, 8.0), steer_data.test, ks=(10,))
    assert strong["arp@10"] < light["arp@10"]
    with pytest.raises(SeqrecError, match="strength"):
        PopularityReweighting(base.model, pop, -1.0)


HAND_STATS = NeuronStats(mean_pop=np.array([2.0, 0.0, 0.5, 0.0]), std_pop=np.ones(4),
                         mean_unpop=np.array([0.0, 1.0, 0.0, 0.0]), std_unpop=np.ones(4))  # d = [2, -1, 0.5, 0]


def test_post_topk_steering_moves_only_active_latents_and_never_below_zero() -> None:
    steer = PopularitySteering(HAND_STATS, alpha=2.0, neurons=2, stage="post")  # shift [-2, 2/3] on latents 0, 1
    acts = torch.tensor([[1.5, 0.0], [0.5, 0.2]])
    expected = torch.tensor([[-1.5, 0.0], [-0.5, 2.0 / 3.0]])  # latent 1 is off for user 0: untouched
    torch.testing.assert_close(steer.change(acts), expected)
    assert steer.stage == "post" and PopularitySteering(HAND_STATS, 1.0).stage == "pre"


def test_per_user_scaling_by_hand() -> None:
    steer = PopularitySteering(HAND_STATS, alpha=2.0, neurons=2, per_user=True)
    # probe RMS over neurons 0, 1: mean of (4+1+0+1)/2 = 3 and (0+1+1+1)/2 = 1.5 -> sqrt(2.25) = 1.5
    assert steer.reference == pytest.approx(1.5)
    acts = torch.tensor([[3.0, 0.0], [1.5, 1.5]])  # RMS sqrt(4.5) and 1.5
    factor = torch.tensor([[np.sqrt(4.5) / 1.5], [1.0]]).float()
    torch.testing.assert_close(steer.change(acts), factor * torch.tensor([-2.0, 2.0 / 3.0]))


@pytest.mark.parametrize(("options", "message"), [({"stage": "middle"}, "stage 'pre' or 'post'"),
                                                   ({"stage": "post", "per_user": True}, "per-user")])
def test_steering_form_errors(options: dict, message: str) -> None:
    with pytest.raises(SeqrecError, match=message):
        PopularitySteering(HAND_STATS, 1.0, **options)


@pytest.mark.parametrize("options", [{"stage": "post"}, {"per_user": True}])
def test_every_steering_form_raises_the_tail_share(sae_run: SAERun, steer_data: SplitData, options: dict) -> None:
    stats, _ = probe(sae_run, steer_data, profiles=1024)
    labels = steer_data.item_stats.labels
    items = torch.from_numpy(steer_data.test.histories.padded(20))

    def tail_share(alpha: float) -> float:
        with torch.no_grad():
            scores = sae_run.steered("delta", PopularitySteering(stats, alpha, **options)).score(items)
        return float((labels[scores.topk(10).indices.numpy()] == TAIL).mean())

    assert tail_share(0.0) < tail_share(4.0)


def test_matched_profiles_replace_each_item_by_its_nearest_head_or_tail_item(steer_data: SplitData) -> None:
    from seqrec.steering.popsteer import nearest

    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])  # item 0 is padding
    assert list(nearest(vectors, np.array([1, 2]))) == [1, 1, 2, 1, 2]  # 3 is nearest 1, 4 nearest 2
    stats = steer_data.item_stats
    rng = np.random.default_rng(0)
    item_vectors = rng.normal(size=(steer_data.num_items + 1, 4))
    popular, unpopular = popularity_profiles(steer_data.train, stats, 50, max_len=20, seed=1,
                                             item_vectors=item_vectors)
    real = sample_prefixes(steer_data.train, 50, np.random.default_rng(1), 20)
    assert np.array_equal(popular.lengths, real.lengths) and np.array_equal(unpopular.lengths, real.lengths)
    head, tail = stats.labels[popular.items], stats.labels[unpopular.items]
    assert (head == HEAD).all() and (tail == TAIL).all()
    head_items = np.flatnonzero(stats.labels == HEAD)
    head_items = head_items[head_items > 0]
    expected = head_items[np.argmax(item_vectors[real.items] @ item_vectors[head_items].T, axis=1)]
    expected[stats.labels[real.items] == HEAD] = real.items[stats.labels[real.items] == HEAD]
    assert np.array_equal(popular.items, expected)


def test_a_matched_probe_is_cached_apart_from_a_random_one(sae_run: SAERun, steer_data: SplitData) -> None:
    random_stats, _ = probe(sae_run, steer_data, profiles=256, seed=0, matched=False)
    matched_stats, computed = probe(sae_run, steer_data, profiles=256, seed=0, matched=True)
    assert computed and matched_stats.settings["matched"] and "embedding-matched" in matched_stats.describe()
    assert not np.allclose(matched_stats.mean_unpop, random_stats.mean_unpop)
    again, computed_again = probe(sae_run, steer_data)  # steering reuses whatever is cached: the matched probe
    assert not computed_again and again.settings["matched"]
    probe(sae_run, steer_data, profiles=1024, matched=False)  # leave the random probe other tests expect
