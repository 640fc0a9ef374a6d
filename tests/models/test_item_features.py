"""Item side features: the bags by hand, sum and concat, every model, save/load, and a cold-start item."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import seqrec
from helpers import tiny_model_config
from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError
from seqrec.models import SASRecConfig, build_model
from seqrec.models.base import MODEL_REGISTRY
from seqrec.models.features import ItemFeatureEmbedding, feature_index
from seqrec.training.config import EvalConfig, TrainConfig

# items 1..3: genres and a brand; item 3 has no genre
CATALOG = ItemCatalog(3, attributes={"genre": [(), ("drama", "comedy"), ("comedy",), ()],
                                     "brand": [(), ("acme",), ("zen",), ("acme",)]})


def test_feature_index_by_hand() -> None:
    index = feature_index(CATALOG, ["genre", "brand"])
    assert index.vocabulary == (("comedy", "drama"), ("acme", "zen"))  # ids: comedy 0, drama 1, acme 2, zen 3
    assert index.values.tolist() == [0, 1, 2, 0, 3, 2]
    assert index.offsets.tolist() == [0, 0, 3, 5]
    assert index.weights.tolist() == [0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert index.size == 4 and index.coverage() == 1.0


def test_bags_are_the_sum_over_attributes_of_the_mean_value() -> None:
    module = ItemFeatureEmbedding(feature_index(CATALOG, ["genre", "brand"]), hidden=2)
    with torch.no_grad():
        module.values.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 0.0], [0.0, 10.0]]))
    bags = module.bags()
    expected = torch.tensor([[0.0, 0.0], [10.5, 0.5], [1.0, 10.0], [10.0, 0.0]])
    torch.testing.assert_close(bags, expected)
    ids = torch.ones(5, 2)  # one extra token (e.g. a mask) gets no features
    torch.testing.assert_close(module(ids), torch.cat([ids[:4] + expected, ids[4:]]))


def test_concat_starts_as_the_sum_and_then_learns_its_own_projection() -> None:
    index = feature_index(CATALOG, ["genre"])
    summed, concat = ItemFeatureEmbedding(index, 4), ItemFeatureEmbedding(index, 4, "concat")
    concat.values.load_state_dict(summed.values.state_dict())
    ids = torch.randn(4, 4)
    torch.testing.assert_close(concat(ids), summed(ids))
    assert {name for name, _ in concat.named_parameters()} == {"values.weight", "project", "project_bias"}


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_every_model_scores_with_features(model_name: str, combine: str) -> None:
    torch.manual_seed(0)
    config = tiny_model_config(model_name, item_features=["genre", "brand"], feature_combine=combine)
    model = build_model(config, 3, CATALOG).eval()
    plain = build_model(tiny_model_config(model_name), 3)
    assert model.item_embeddings().shape == plain.item_embeddings().shape == (4, config.hidden)
    scores = model.score(torch.tensor([[0, 1, 2], [3, 2, 1]]))
    assert scores.shape == (2, 4) and torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    # the feature table is data, not weights: the state dict holds only parameters
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all("values.weight" in k or "project" in k for k in extra)


def test_item_vectors_change_with_features_only_where_items_have_them() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec", item_features=["genre"]), 3, CATALOG)
    with torch.no_grad():
        model.embed.features.values.weight.fill_(1.0)
    table = model.item_embeddings() - model.embed.items.weight[:4]
    assert table[3].abs().sum() == 0 and table[1].abs().sum() > 0  # item 3 has no genre


def test_bad_feature_settings() -> None:
    with pytest.raises(ConfigError, match="no attribute 'colour'; available: .*brand"):
        build_model(tiny_model_config("sasrec", item_features=["colour"]), 3, CATALOG)
    with pytest.raises(ConfigError, match="catalogue"):
        build_model(tiny_model_config("sasrec", item_features=["genre"]), 3)
    with pytest.raises(ConfigError, match="distinct"):
        SASRecConfig(item_features=["genre", "genre"])
    with pytest.raises(ConfigError, match="feature_combine"):
        SASRecConfig(feature_combine="product")
    blank = ItemCatalog(3, attributes={"genre": [(), (), (), ()]})
    with pytest.raises(ConfigError, match="'genre' has no value on any item"):
        build_model(tiny_model_config("sasrec", item_features=["genre"]), 3, blank)
    with pytest.raises(ConfigError, match="3 items, the model 5"):
        build_model(tiny_model_config("sasrec", item_features=["genre"]), 5, CATALOG)


def two_genre_frame(new: bool, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users who watch only genre-A or only genre-B items; `a_cold` and `b_cold` are in the item table and are
    either only ever users' last items (`new` False) or in no interaction at all (`new` True)."""
    rng = np.random.default_rng(seed)
    genres = {"a": [f"a{i}" for i in range(8)], "b": [f"b{i}" for i in range(8)]}
    rows = []
    for user in range(80):
        genre = "ab"[user % 2]
        sequence = list(rng.permutation(genres[genre])[:6])
        if not new and user % 4 < 2:
            sequence.append(f"{genre}_cold")  # the test item: never in training
        rows += [(f"u{user}", item, t) for t, item in enumerate(sequence)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": genres["a"] + genres["b"] + ["a_cold", "b_cold"],
                          "genre": ["A"] * 8 + ["B"] * 8 + ["A", "B"]})
    return frame, items


def cold_preference(features: list[str], new: bool, seed: int = 0) -> float:
    """Share of users who score the never-trained item of their own genre above the other genre's.

    Scored from ids alone, the two cold items are where training left them for everyone: a coin toss.
    """
    frame, items = two_genre_frame(new)
    data = seqrec.datasets.from_frame(frame, items=items, item_options={"attributes": ["genre"], "new_items": new})
    a_cold, b_cold = data.item_map.to_internal(["a_cold", "b_cold"])
    trained = set(data.train.items.tolist())
    assert a_cold not in trained and b_cold not in trained  # no training interaction at all
    model = SASRecConfig(max_len=8, hidden=16, blocks=1, dropout=0.0, item_features=features)
    train = TrainConfig(epochs=15, lr=5e-3, batch_size=16, patience=0, device="cpu", seed=seed)
    recs = seqrec.train(model, data, train, EvalConfig(ks=(5,)), progress=False).recommender

    def prefer(users: list[str], own: int, other: int) -> torch.Tensor:
        rows = torch.from_numpy(recs.histories.padded(8)[data.user_map.to_internal(users)])
        scores = recs.model.score(rows)
        return (scores[:, own] > scores[:, other]).float()

    a_users, b_users = [f"u{u}" for u in range(0, 80, 2)], [f"u{u}" for u in range(1, 80, 2)]
    return float(torch.cat([prefer(a_users, a_cold, b_cold), prefer(b_users, b_cold, a_cold)]).mean())


@pytest.mark.parametrize("new", [False, True], ids=["only-in-test", "no-interactions"])
def test_an_item_without_training_interactions_is_scored_from_its_features(new: bool) -> None:
    assert cold_preference(["genre"], new) >= 0.95  # 1.0 for seeds 0-5 when written
    assert cold_preference([], new) <= 0.8  # 0.5-0.75 for seeds 0-5


def test_a_new_item_is_recommended_to_the_users_of_its_genre() -> None:
    frame, items = two_genre_frame(new=True)
    data = seqrec.datasets.from_frame(frame, items=items, item_options={"attributes": ["genre"], "new_items": True})
    model = SASRecConfig(max_len=8, hidden=16, blocks=1, dropout=0.0, item_features=["genre"])
    train = TrainConfig(epochs=15, lr=5e-3, batch_size=16, patience=0, device="cpu", seed=0)
    recs = seqrec.train(model, data, train, EvalConfig(ks=(5,)), progress=False).recommender
    # an A user has seen 6 of the 8 A items: the 2 left and the new A item lead the list, the new B item does not
    top = [row["item"] for row in recs.recommend(["u0"], k=3)]
    assert "a_cold" in top and "b_cold" not in top


def test_a_featured_run_saves_and_loads(tmp_path, tiny_data) -> None:  # noqa: ANN001
    model = SASRecConfig(max_len=10, hidden=16, blocks=1, item_features=["genre"], feature_combine="concat")
    train = TrainConfig(epochs=2, lr=3e-3, batch_size=32, patience=0, device="cpu", seed=0)
    run = seqrec.train(model, tiny_data, train, EvalConfig(ks=(5,)), progress=False)
    path = run.save(tmp_path / "featured")
    loaded = seqrec.load(path)
    items = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    torch.testing.assert_close(loaded.recommender.model.score(items), run.recommender.model.score(items))
    assert loaded.config.model.item_features == ["genre"]
    assert set(MODEL_REGISTRY) >= {"sasrec", "bert4rec", "gru4rec"}
