"""The global temporal split with user-disjoint validation, on a hand-made table."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions
from seqrec.data.splits import temporal_users_split
from seqrec.errors import DataError

ROWS = [("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 2), ("b", 4, 4), ("b", 5, 9), ("c", 2, 9.5), ("c", 3, 10),
        ("d", 3, 1), ("d", 4, 2), ("d", 5, 3), ("e", 1, 1), ("e", 2, 2)]


def _split(**kwargs: float):
    users, items, ts = (np.array(col) for col in zip(*ROWS, strict=True))
    inter = Interactions.from_raw(users, items, ts)
    return inter, temporal_users_split(inter, ItemCatalog.empty(inter.num_items), "toy", **kwargs)


def test_boundary_test_users_and_user_disjoint_validation() -> None:
    inter, data = _split(valid_share=0.5, test_share=0.3)  # t* = 3.4
    ext = inter.user_map.external
    item = inter.item_map.to_internal
    assert [ext[u] for u in data.test.users] == ["b", "c"]
    assert data.test.histories[0].tolist() == item(["1", "4"]).tolist()  # everything before the last item
    assert data.test.histories[1].tolist() == item(["2"]).tolist()
    assert data.test.targets.tolist() == item(["5", "3"]).tolist()
    valid = {ext[u] for u in data.valid.users}
    assert len(valid) == 2 and valid <= {"a", "d", "e"}  # users with >= 2 items up to t* (b has one: 4 is later)
    before = {"a": ["1", "2", "3"], "b": ["1"], "c": [], "d": ["3", "4", "5"], "e": ["1", "2"]}
    for row, user in enumerate(data.valid.users):
        items = before[ext[user]]
        assert data.valid.histories[row].tolist() == item(items[:-1]).tolist()
        assert data.valid.targets[row] == item(items[-1:])[0]
    for user, name in enumerate(ext):
        expected = [] if name in valid else before[name]  # validation users never train
        assert data.train[user].tolist() == item(expected).tolist() if expected else data.train[user].size == 0
    assert data.item_stats.counts[item(["5"])[0]] == (0 if "d" in valid else 1)  # nothing after t* is counted


def test_without_timestamps_or_users_it_explains() -> None:
    inter = Interactions.from_raw(np.array(["a", "a"]), np.array([1, 2]))
    with pytest.raises(DataError, match="needs timestamps"):
        temporal_users_split(inter, ItemCatalog.empty(2))
    with pytest.raises(DataError, match="no test or no validation user"):
        _split(valid_share=0.01, test_share=0.3)
