"""SIREN split from seqrec interaction tables, and the planted synthetic rating data."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions
from seqrec.errors import ConfigError, DataError
from seqrec.llm.rating_rows import (
    Event,
    rows_from_interactions,
    split_users,
    synthetic_item_topics,
    synthetic_rating_data,
)

LENGTHS = {"a": 7, "b": 5, "c": 4, "d": 9}  # c has too few interactions


def table() -> tuple[Interactions, ItemCatalog]:
    """Users a–d with LENGTHS interactions; file order is reversed time, so sorting by time matters."""
    users, items, times, ratings = [], [], [], []
    for user, n in LENGTHS.items():
        for t in range(n):
            users.append(user)
            items.append(f"m{(t * 3 + len(user)) % 11}")
            times.append(100 - t)  # newest first in the file
            ratings.append(1 + t % 5)
    inter = Interactions.from_raw(np.array(users), np.array(items), timestamps=np.array(times, dtype=float),
                                  ratings=np.array(ratings, dtype=float))
    titles = [""] + [f"Movie {e}" for e in inter.item_map.external]
    genres = [()] + [("Drama", "Crime") if i % 2 else ("Comedy",) for i in range(1, inter.num_items + 1)]
    return inter, ItemCatalog(num_items=inter.num_items, titles=titles, attributes={"genre": genres})


def test_split_counts_and_identical_valid_test_histories() -> None:
    inter, catalog = table()
    data = rows_from_interactions(inter, catalog, "toy")
    kept = {u: n for u, n in LENGTHS.items() if n >= 5}
    assert sorted(r.user for r in data.valid) == sorted(r.user for r in data.test) == sorted(kept)
    for user, n in kept.items():
        train = [r for r in data.train if r.user == user]
        assert len(train) == n - 5
        assert [len(r.history) for r in train] == list(range(3, n - 2))
        (valid,) = [r for r in data.valid if r.user == user]
        (test,) = [r for r in data.test if r.user == user]
        assert valid.history == test.history and len(valid.history) == n - 2
        assert valid.timestamp < test.timestamp
        assert all(r.timestamp < valid.timestamp for r in train)
    assert len({r.sample_id for r in data.train + data.valid + data.test}) == len(data.train) + 2 * len(kept)


def test_rows_are_chronological_with_texts_and_ratings() -> None:
    inter, catalog = table()
    data = rows_from_interactions(inter, catalog, "toy")
    (test,) = [r for r in data.test if r.user == "b"]
    # user b, oldest first = the file's last rows: t = 4..0, ratings 5, 4, 3, 2, 1
    assert [h.rating for h in test.history] == [5.0, 4.0, 3.0] and test.label == 1.0
    assert test.target.startswith("Movie m") and ("Drama|Crime" in test.target or "Comedy" in test.target)
    assert [r.timestamp for r in data.train if r.user == "a"] == [97, 98]  # t = 3, 2 → time 97, 98
    assert data.scale == (1.0, 5.0)


def test_max_users_and_min_interactions() -> None:
    inter, catalog = table()
    assert {r.user for r in rows_from_interactions(inter, catalog, "toy", max_users=2).test} == {"a", "b"}
    assert {r.user for r in rows_from_interactions(inter, catalog, "toy", min_interactions=4).test} == set("abcd")
    with pytest.raises(ConfigError, match="min_interactions"):
        rows_from_interactions(inter, catalog, "toy", min_interactions=2)
    with pytest.raises(DataError, match="no user has at least 50"):
        rows_from_interactions(inter, catalog, "toy", min_interactions=50)


def test_no_ratings_is_an_error() -> None:
    inter, catalog = table()
    inter.ratings = None
    with pytest.raises(DataError, match="'toy' has no ratings"):
        rows_from_interactions(inter, catalog, "toy")


def test_split_users_on_plain_lists() -> None:
    events = [Event(f"i{t}", f"Item {t}, Drama", float(1 + t % 5), t) for t in range(6)]
    data = split_users([("u", events)], "plain")
    assert [r.item for r in data.train] == ["i3"] and [r.item for r in data.valid] == ["i4"]
    assert [r.item for r in data.test] == ["i5"] and data.test[0].history == data.valid[0].history
    assert [h.item for h in data.test[0].history] == ["i0", "i1", "i2", "i3"]


def test_synthetic_rating_data_is_planted_and_deterministic() -> None:
    data = synthetic_rating_data(num_users=20, num_items=40, num_topics=4, seed=3)
    assert data == synthetic_rating_data(num_users=20, num_items=40, num_topics=4, seed=3)
    assert len(data.valid) == len(data.test) == 20
    topics = synthetic_item_topics(40, 4)
    for row in data.train + data.valid + data.test:
        entries = [(row.item, row.label)] + [(h.item, h.rating) for h in row.history]
        loved = {topics[int(i[1:])] for i, r in entries if r >= 4}
        hated = {topics[int(i[1:])] for i, r in entries if r <= 2}
        assert not loved & hated and {r for _, r in entries} <= {1.0, 2.0, 4.0, 5.0}
    assert "Space Saga" in data.items()["i0"] and data.items()["i0"].endswith("Sci-Fi|Space")
    for valid in data.valid:  # n_u = |valid history| + 2 ≥ 5, and n_u − 5 train rows
        assert len(valid.history) + 2 >= 5
        assert len([r for r in data.train if r.user == valid.user]) == len(valid.history) + 2 - 5


@pytest.mark.parametrize("rating", [99.0, 0.0, float("nan"), float("inf"), True, "4"])
def test_split_users_refuses_ratings_off_the_scale(rating: object) -> None:
    events = [Event(f"i{t}", f"Item {t}, Drama", 3.0, t) for t in range(6)]
    events[2] = Event("i2", "Item 2, Drama", rating, 2)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"plain: user 'u', item 'i2' has rating .*from 1 to 5"):
        split_users([("u", events)], "plain")


def test_split_users_accepts_numpy_ratings_and_checks_the_scale() -> None:
    events = [Event(f"i{t}", f"Item {t}", np.float32(2 + t % 3), t) for t in range(6)]  # type: ignore[arg-type]
    assert len(split_users([("u", events)], "np").test) == 1
    with pytest.raises(ConfigError, match="rating scale"):
        split_users([("u", events)], "np", scale=(5.0, float("nan")))


@pytest.mark.parametrize("column", ["ratings", "timestamps"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_ratings_or_timestamps_are_an_error(column: str, value: float) -> None:
    inter, catalog = table()
    getattr(inter, column)[3] = value
    with pytest.raises(DataError, match=f"dataset 'toy': user 'a' has {column[:-1]} {value}"):
        rows_from_interactions(inter, catalog, "toy")
