"""The synthetic generator: determinism, shape, and each planted structure measured from the data."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions
from seqrec.data.synthetic import (
    GENRE_NAMES,
    PlantedStructure,
    SyntheticConfig,
    generate,
    genre_names,
    planted_structure,
)
from seqrec.errors import ConfigError

CFG = SyntheticConfig()


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, ItemCatalog, PlantedStructure]:
    inter, catalog = generate(CFG)
    return inter, catalog, planted_structure(CFG)


def _pairs(inter: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(previous item, next item) for every consecutive pair within a user."""
    same_user = inter.users[1:] == inter.users[:-1]
    return inter.items[:-1][same_user], inter.items[1:][same_user]


def test_same_seed_same_data_other_seed_other_data() -> None:
    cfg = SyntheticConfig(num_users=300, num_items=100)
    a, cat_a = generate(cfg)
    b, cat_b = generate(SyntheticConfig(num_users=300, num_items=100))
    c, _ = generate(SyntheticConfig(num_users=300, num_items=100, seed=1))
    for name in ("users", "items", "timestamps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert cat_a.to_dict() == cat_b.to_dict()
    assert len(a) != len(c) or not np.array_equal(a.items, c.items)


def test_sizes_and_alignment(data) -> None:
    inter, catalog, _ = data
    assert inter.num_users == CFG.num_users
    assert inter.num_items == catalog.num_items == CFG.num_items
    assert inter.item_map.external == [str(i) for i in range(1, CFG.num_items + 1)]  # internal id == raw id
    assert inter.user_map.external == [str(u) for u in range(1, CFG.num_users + 1)]
    assert len(catalog.titles) == len(catalog.attributes["genre"]) == CFG.num_items + 1
    assert np.array_equal(np.unique(inter.items), np.arange(1, CFG.num_items + 1))  # every item occurs


def test_sequence_lengths_within_bounds(data) -> None:
    lengths = data[0].sequences().lengths
    assert lengths.min() >= CFG.min_seq_len and lengths.max() <= CFG.max_seq_len
    assert abs(lengths.mean() - CFG.mean_seq_len) < 3
    assert lengths.max() > 2 * CFG.mean_seq_len  # a long tail of heavy users


def test_no_item_repeats_within_a_user(data) -> None:
    inter = data[0]
    keys = inter.users * (CFG.num_items + 1) + inter.items
    assert len(np.unique(keys)) == len(inter)


def test_long_tail_popularity_not_in_id_order(data) -> None:
    inter = data[0]
    counts = np.bincount(inter.items, minlength=CFG.num_items + 1)[1:]
    top = np.sort(counts)[::-1][: CFG.num_items // 10]
    assert top.sum() / counts.sum() > 0.35
    assert counts.max() > 10 * np.median(counts)
    rank = np.argsort(np.argsort(counts))
    assert abs(np.corrcoef(rank, np.arange(CFG.num_items))[0, 1]) < 0.2  # ids are shuffled


def test_catalog_genres_and_titles(data) -> None:
    _, catalog, truth = data
    genres = catalog.attributes["genre"]
    assert genres[0] == () and catalog.titles[0] == ""
    assert all(1 <= len(g) <= CFG.max_genres_per_item and len(set(g)) == len(g) for g in genres[1:])
    assert catalog.attribute_values("genre") == sorted(GENRE_NAMES[: CFG.num_genres])
    assert len(set(catalog.titles)) == CFG.num_items + 1
    for item in (1, 17, CFG.num_items):
        primary = truth.genre_names[truth.primary_genre[item]]
        assert genres[item][0] == primary
        assert catalog.titles[item].startswith(primary + " ") and catalog.titles[item].endswith(f" {item}")
    assert catalog.has_value("Comedy", "genre").sum() > CFG.num_items / CFG.num_genres


def test_many_genres_get_numbered_names() -> None:
    names = genre_names(14)
    assert names[:12] == list(GENRE_NAMES) and names[12:] == ["Genre 13", "Genre 14"]
    _, catalog = generate(SyntheticConfig(num_users=50, num_items=100, num_genres=14))
    assert "Genre 14" in catalog.attribute_values("genre")


def test_users_prefer_their_favourite_genres(data) -> None:
    inter, _, truth = data
    item_genres = truth.item_genres[inter.items]  # [n, G]
    liked = (item_genres & truth.user_genres()[inter.users]).any(axis=1)
    # chance: how often a user's favourite genres occur among all interactions
    cluster_share = np.array([item_genres[:, fav].any(axis=1).mean() for fav in truth.cluster_genres])
    chance = cluster_share[truth.user_cluster[inter.users]].mean()
    assert liked.mean() > 1.5 * chance
    assert liked.mean() > 0.5


def test_next_items_follow_planted_successors(data) -> None:
    inter, _, truth = data
    prev, nxt = _pairs(inter)
    follows = (truth.successors[prev] == nxt[:, None]).any(axis=1).mean()
    assert follows > 0.8 * CFG.p_sequential  # planted successors are a tiny share of the catalog
    # a bigram predictor (most common next item of the previous item) against the most popular item
    bigram = np.zeros((CFG.num_items + 1,) * 2, dtype=np.int64)
    np.add.at(bigram, (prev, nxt), 1)
    bigram_hit = (bigram.argmax(axis=1)[prev] == nxt).mean()
    popular_hit = (nxt == np.bincount(inter.items).argmax()).mean()
    assert bigram_hit > 5 * popular_hit
    assert bigram_hit < 0.5  # a learnable signal, not a deterministic chain


def test_successors_prefer_the_same_genre(data) -> None:
    truth = data[2]
    same = truth.item_genres[truth.successors[1:], truth.primary_genre[1:, None]]
    assert same.mean() > 0.7
    assert (truth.successors[1:] != np.arange(1, CFG.num_items + 1)[:, None]).all()


def test_timestamps_increase_per_user(data) -> None:
    inter = data[0]
    ts = inter.timestamps
    same_user = inter.users[1:] == inter.users[:-1]
    assert (np.diff(ts)[same_user] > 0).all()
    starts = ts[np.concatenate([[0], np.flatnonzero(~same_user) + 1])]
    assert starts.max() - starts.min() > 0.8 * CFG.time_span_days * 86400


def test_timestamps_off_keeps_the_items() -> None:
    cfg = dict(num_users=200, num_items=50, max_seq_len=40)
    with_ts, _ = generate(SyntheticConfig(**cfg))
    without, _ = generate(SyntheticConfig(**cfg, timestamps=False))
    assert without.timestamps is None
    np.testing.assert_array_equal(with_ts.items, without.items)


def test_catalog_stays_aligned_when_too_few_interactions_to_cover_items() -> None:
    inter, catalog = generate(SyntheticConfig(num_users=3, num_items=200, max_seq_len=10, mean_seq_len=8))
    assert inter.num_items == catalog.num_items == 200
    assert inter.item_map.external[:3] == ["1", "2", "3"]


def test_ten_thousand_users() -> None:
    inter, _ = generate(SyntheticConfig(num_users=10_000))
    assert inter.num_users == 10_000 and len(inter) > 200_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_users", 0),
        ("num_items", 5),
        ("num_genres", 0),
        ("min_seq_len", 1),
        ("max_seq_len", 1000),
        ("mean_seq_len", 200),
        ("zipf_exponent", -1.0),
        ("p_sequential", 1.5),
        ("p_taste", 0.9),
        ("num_successors", 0),
        ("time_span_days", 0),
    ],
)
def test_invalid_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"data.synthetic.{field} must be"):
        SyntheticConfig(**{field: value})
