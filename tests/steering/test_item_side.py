"""PopSteer 2.0's item side: the item SAE's table feeds the encoder's input, scores keep the original table; the
weighted item probe by hand; models without an input table are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import tiny_model_config
from seqrec.data.splits import SplitData
from seqrec.errors import SeqrecError
from seqrec.models.base import build_model
from seqrec.runs import Run
from seqrec.steering import PopularitySteering, SAEConfig, TopKSAE
from seqrec.steering.interventions import AddToLatents
from seqrec.steering.item_side import (
    ItemSteeredEncoder,
    fit_item_sae,
    input_table,
    item_rows,
    item_steered,
    probe_items,
)

SMALL = SAEConfig(k=4, scale=4, epochs=40, batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def item_sae(base_run: Run) -> TopKSAE:
    return fit_item_sae(base_run.model.eval(), SMALL)


def histories(data: SplitData) -> torch.Tensor:
    return torch.from_numpy(data.test.histories.padded(20))


def test_nothing_steered_in_delta_mode_is_the_base_model(base_run: Run, item_sae: TopKSAE,
                                                         steer_data: SplitData) -> None:
    model = base_run.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(ItemSteeredEncoder(model, item_sae).score(histories(steer_data)),
                                   model.score(histories(steer_data)))


def test_the_steered_table_feeds_the_input_and_scores_keep_the_original_items(base_run: Run, item_sae: TopKSAE,
                                                                              steer_data: SplitData) -> None:
    model = base_run.model.eval()
    steered = ItemSteeredEncoder(model, item_sae, interventions=AddToLatents([0, 1], 5.0))
    items = histories(steer_data)
    with torch.no_grad():
        assert torch.equal(steered.item_embeddings(), model.item_embeddings())
        moved = steered.table[1 : model.num_items + 1] - item_rows(model)
        expected = 5.0 * (item_sae.W_dec[0] + item_sae.W_dec[1])  # every row moves by the two decoder rows
        torch.testing.assert_close(moved, expected.expand_as(moved), rtol=1e-4, atol=1e-4)
        with input_table(model, steered.table):
            by_hand = model.user_vector(items)
        torch.testing.assert_close(steered.user_vector(items), by_hand)
        assert not torch.allclose(steered.user_vector(items), model.user_vector(items))
        assert model.embed.input_override is None  # the override ends with the block
    assert torch.isfinite(item_steered(base_run, item_sae, AddToLatents([0], 1.0)).score(items)[:, 1:]).all()


def test_item_probe_weights_items_by_popularity(base_run: Run, item_sae: TopKSAE) -> None:
    model = base_run.model.eval()
    n = model.num_items
    pop = np.zeros(n + 1)
    pop[1], pop[2] = 0.75, 0.25  # only items 1 and 2 are popular
    stats = probe_items(model, item_sae, pop)
    with torch.no_grad():
        pre = item_sae.pre_activations(item_rows(model)).double().numpy()
    np.testing.assert_allclose(stats.mean_pop, 0.75 * pre[0] + 0.25 * pre[1], rtol=1e-6, atol=1e-9)
    w = (1.0 - pop[1:]) / (1.0 - pop[1:]).sum()
    np.testing.assert_allclose(stats.mean_unpop, w @ pre, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.std_unpop, np.sqrt(w @ (pre - w @ pre) ** 2), rtol=1e-6, atol=1e-9)
    assert stats.profiles == n and PopularitySteering(stats, 1.0).latents.numel() > 0
    with pytest.raises(SeqrecError, match="weights"):
        probe_items(model, item_sae, np.full(n + 1, np.nan))


def test_a_model_without_an_input_table_is_refused(steer_data: SplitData, item_sae: TopKSAE) -> None:
    gru = build_model(tiny_model_config("gru4rec", hidden=16), steer_data.num_items)
    with pytest.raises(SeqrecError, match="item-side steering needs a model"):
        ItemSteeredEncoder(gru, item_sae)
