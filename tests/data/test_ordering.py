"""Vectorised row ordering and CSR operations agree with straightforward reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions, Sequences, concat_ranges
from seqrec.data.ordering import group_by_user, stable_argsort_codes, user_time_order
from seqrec.data.splits import leave_one_out


def _timestamps(kind: str, rng: np.random.Generator, n: int) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "sorted":
        return np.sort(rng.integers(0, 50, n)).astype(np.float64)
    if kind == "fractional":
        return rng.integers(0, 8, n) / 4.0 - 1.0
    return rng.integers(1_600_000_000, 1_600_000_030, n).astype(np.float64)  # shuffled, many ties


@pytest.mark.parametrize("kind", ["none", "sorted", "fractional", "shuffled"])
def test_user_time_order_is_the_stable_lexsort(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for n in (0, 1, 7, 500):
        users = rng.integers(0, 9, n)
        times = _timestamps(kind, rng, n)
        expected = np.argsort(users, kind="stable") if times is None else np.lexsort((times, users))
        found = user_time_order(users, 9, times)
        order, sorted_users = (np.arange(n), users) if found is None else found
        np.testing.assert_array_equal(order, expected)
        np.testing.assert_array_equal(sorted_users, users[expected])
        for shift, scale in ((0, 1), (-3, 5), (10**12, 1), (0, 10**9)):  # dense, negative, far from 0, sparse
            values, counts, grouped = group_by_user(users * scale + shift, times)
            np.testing.assert_array_equal(values, np.unique(users * scale + shift))
            np.testing.assert_array_equal(counts, np.unique(users, return_counts=True)[1])
            np.testing.assert_array_equal(np.arange(n) if grouped is None else grouped, expected)
        values, counts, grouped = group_by_user(np.array([f"u{u}" for u in users], dtype=str), times)
        np.testing.assert_array_equal(np.arange(n) if grouped is None else grouped, expected)


def test_rows_already_in_order_are_not_reordered() -> None:
    assert user_time_order(np.array([0, 0, 1, 2]), 3, np.array([5.0, 6.0, 1.0, 1.0])) is None
    assert user_time_order(np.array([0, 0, 1]), 2, np.array([6.0, 5.0, 1.0])) is not None


def test_stable_argsort_codes_matches_numpy() -> None:
    codes = np.random.default_rng(0).integers(0, 4, 1000)
    order, ordered = stable_argsort_codes(codes, 4)
    np.testing.assert_array_equal(order, np.argsort(codes, kind="stable"))
    np.testing.assert_array_equal(ordered, np.sort(codes))


def test_from_raw_orders_rows_by_user_then_time_with_file_order_for_ties() -> None:
    rng = np.random.default_rng(3)
    users = rng.choice(["u3", "u1", "u2"], 300)
    items = rng.integers(100, 140, 300)
    times = rng.integers(0, 5, 300).astype(np.float64)
    ratings = rng.random(300)
    inter = Interactions.from_raw(users, items, times, ratings)
    order = np.lexsort((times, np.unique(users, return_inverse=True)[1]))
    assert inter.user_map.external == ["u1", "u2", "u3"]
    np.testing.assert_array_equal(inter.user_map.to_external(inter.users), users[order])
    np.testing.assert_array_equal(np.array(inter.item_map.to_external(inter.items), dtype=np.int64), items[order])
    np.testing.assert_array_equal(inter.timestamps, times[order])
    np.testing.assert_allclose(inter.ratings, ratings[order].astype(np.float32))


def test_concat_ranges_and_sequence_operations_match_lists() -> None:
    rng = np.random.default_rng(1)
    rows = [list(rng.integers(1, 50, k)) for k in rng.integers(0, 6, 40)]
    seqs = Sequences.from_lists(rows)
    starts, lengths = rng.integers(0, 100, 30), rng.integers(0, 4, 30)
    expected = [s + j for s, k in zip(starts, lengths, strict=True) for j in range(k)]
    assert concat_ranges(starts, lengths).tolist() == expected
    for picked in (np.array([5, 1, 1, 39]), np.arange(0, 40, 3), np.arange(40), np.array([], dtype=np.int64)):
        taken = seqs.take(picked)
        assert [taken[r].tolist() for r in range(len(taken))] == [rows[p] for p in picked]
    drops = rng.integers(0, 4, 40)
    for drop in (1, 2, 9, drops):
        cut = seqs.truncate(drop)
        counts = np.broadcast_to(drop, 40)
        assert [cut[r].tolist() for r in range(40)] == [r[: max(len(r) - d, 0)] for r, d in zip(rows, counts,
                                                                                                strict=True)]


def test_subset_reindexes_like_the_unique_based_version() -> None:
    rng = np.random.default_rng(2)
    inter = Interactions.from_raw(rng.integers(0, 30, 400) * 3, rng.integers(0, 60, 400) + 7,
                                  rng.random(400), rng.random(400))
    mask = rng.random(400) < 0.3
    sub = inter.subset(mask)
    kept_users, kept_items = np.unique(inter.users[mask]), np.unique(inter.items[mask])
    assert sub.user_map.external == [inter.user_map.external[u] for u in kept_users]
    assert sub.item_map.external == [inter.item_map.external[i - 1] for i in kept_items]
    np.testing.assert_array_equal(kept_users[sub.users], inter.users[mask])
    np.testing.assert_array_equal(kept_items[sub.items - 1], inter.items[mask])
    np.testing.assert_array_equal(sub.timestamps, inter.timestamps[mask])


def test_leave_one_out_matches_per_user_lists() -> None:
    rng = np.random.default_rng(4)
    inter = Interactions.from_raw(rng.integers(0, 25, 200), rng.integers(1, 30, 200), rng.random(200))
    data = leave_one_out(inter, ItemCatalog.empty(inter.num_items))
    seqs = inter.sequences()
    rows = [seqs[u].tolist() for u in range(inter.num_users)]
    keep = [u for u, r in enumerate(rows) if len(r) >= 3]
    assert data.test.users.tolist() == data.valid.users.tolist() == keep
    assert [data.train[u].tolist() for u in range(inter.num_users)] == [r[:-2] if len(r) >= 3 else [] for r in rows]
    assert [data.valid.histories[k].tolist() for k in range(len(keep))] == [rows[u][:-2] for u in keep]
    assert [data.test.histories[k].tolist() for k in range(len(keep))] == [rows[u][:-1] for u in keep]
    assert data.valid.targets.tolist() == [rows[u][-2] for u in keep]
    assert data.test.targets.tolist() == [rows[u][-1] for u in keep]
