"""Data fingerprints: equal for the same data loaded twice, different after any change to it."""

from __future__ import annotations

import dataclasses

import numpy as np

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.data.catalog import ItemCatalog
from seqrec.data.fingerprint import data_fingerprint, short
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Interactions
from seqrec.data.splits import leave_one_out


def split_of(users: list[int], items: list[int], head_share: float = 0.2) -> seqrec.data.splits.SplitData:
    inter = Interactions.from_raw(np.array(users), np.array(items))
    return leave_one_out(inter, ItemCatalog.empty(inter.num_items), "tiny", head_share=head_share)


USERS = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
ITEMS = [10, 11, 12, 13, 11, 12, 10, 13, 10, 12, 11]


def test_the_same_data_loaded_twice_has_one_fingerprint() -> None:
    first = seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)
    second = seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)
    assert first is not second
    fingerprint = data_fingerprint(first)
    assert fingerprint == data_fingerprint(second)
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0 and short(fingerprint) == fingerprint[:12]


def test_one_changed_interaction_changes_the_fingerprint() -> None:
    base = data_fingerprint(split_of(USERS, ITEMS))
    assert data_fingerprint(split_of(USERS, ITEMS)) == base
    for position in (0, 3, 10):  # a training item, the first user's test target, the last user's test target
        changed = list(ITEMS)
        changed[position] = 12 if ITEMS[position] != 12 else 13
        assert data_fingerprint(split_of(USERS, changed)) != base, position


def test_ids_order_and_split_settings_count_but_popularity_labels_do_not() -> None:
    base = data_fingerprint(split_of(USERS, ITEMS))
    renamed = [u + 10 for u in USERS]  # the same sequences under other user ids
    assert data_fingerprint(split_of(renamed, ITEMS)) != base
    swapped = [10, 11, 13, 12] + ITEMS[4:]  # two items of one user in the other order
    assert data_fingerprint(split_of(USERS, swapped)) != base
    relabelled = split_of(USERS, ITEMS, head_share=0.5)
    assert not np.array_equal(relabelled.item_stats.labels, split_of(USERS, ITEMS).item_stats.labels)
    assert data_fingerprint(relabelled) == base  # an analysis setting, not other data
    temporal = seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC, split="temporal")
    assert data_fingerprint(temporal) != data_fingerprint(seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC))
    synthetic = {**TINY_SYNTHETIC, "seed": 1}
    assert (data_fingerprint(seqrec.datasets.load("synthetic", synthetic=synthetic))
            != data_fingerprint(seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)))


def test_ids_hash_by_content_not_by_how_the_map_stores_them() -> None:
    data = split_of(USERS, ITEMS)
    as_text = dataclasses.replace(data, user_map=IdMap([str(u) for u in data.user_map.external]),
                                  item_map=IdMap(list(data.item_map.external), offset=1))
    assert data_fingerprint(as_text) == data_fingerprint(data)
    named = split_of(USERS, ITEMS)
    named.user_map = IdMap(["u1", "u2", "u3"])
    renamed = split_of(USERS, ITEMS)
    renamed.user_map = IdMap(["u1", "u2", "u03"])
    padded = split_of(USERS, ITEMS)
    padded.user_map = IdMap(["01", "2", "3"])  # not the canonical way to write 1: other ids than 1, 2, 3
    fingerprints = {data_fingerprint(d) for d in (data, named, renamed, padded)}
    assert len(fingerprints) == 4
