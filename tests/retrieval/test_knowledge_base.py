"""Knowledge base: exact and IVF search match brute force under the leakage rule; refetch, padding, persistence."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

import seqrec.retrieval.knowledge_base as kb_module
from seqrec.errors import ConfigError, RunError, SeqrecError
from seqrec.retrieval.knowledge_base import (
    INDEX_NAME,
    NPZ_NAME,
    KnowledgeBase,
    Neighbours,
    default_nlist,
    require_faiss,
)


def make_entries(n_users: int = 20, max_len: int = 15, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Random keys for every prefix (lengths 1..max_len) of every user: 300 entries by default."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), max_len)
    lengths = np.tile(np.arange(1, max_len + 1), n_users)
    n = len(users)
    return {"keys": rng.normal(size=(n, dim)).astype(np.float32),
            "targets": rng.integers(1, 50, size=n), "users": users, "lengths": lengths}


def brute_force(entries: dict[str, np.ndarray], queries: np.ndarray, k: int, users: np.ndarray | None = None,
                lengths: np.ndarray | None = None, exclude_user: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k by numpy with the leakage rule, padded like Neighbours."""
    keys = entries["keys"] / np.linalg.norm(entries["keys"], axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ keys.T  # [Q, N]
    if users is not None:
        same = entries["users"][None, :] == users[:, None]
        banned = same if exclude_user else same & (entries["lengths"][None, :] >= lengths[:, None])
        sims = np.where(banned, -np.inf, sims)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(sims, order, axis=1)
    return np.where(np.isfinite(scores), order, -1), scores.astype(np.float32)


@pytest.fixture(scope="module")
def entries() -> dict[str, np.ndarray]:
    return make_entries()


@pytest.fixture(scope="module")
def query_rows(entries: dict[str, np.ndarray]) -> np.ndarray:
    return np.random.default_rng(1).choice(len(entries["users"]), size=50, replace=False)


def search_as_entries(kb: KnowledgeBase, entries: dict[str, np.ndarray], rows: np.ndarray, k: int,
                      **kwargs) -> Neighbours:
    return kb.search(entries["keys"][rows], k, entries["users"][rows], entries["lengths"][rows], **kwargs)


def assert_matches_brute_force(result: Neighbours, expected: tuple[np.ndarray, np.ndarray]) -> None:
    ids, scores = expected
    np.testing.assert_array_equal(result.ids, ids)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.mask, ids >= 0)
    assert result.ids.dtype == np.int64 and result.scores.dtype == np.float32 and result.mask.dtype == bool


def test_entries_fixture_shape(entries: dict[str, np.ndarray]) -> None:
    assert len(entries["users"]) == 300 and set(entries["lengths"]) == set(range(1, 16))


@pytest.mark.parametrize("ivf", [False, True])
def test_search_equals_brute_force(entries: dict[str, np.ndarray], query_rows: np.ndarray, ivf: bool) -> None:
    options = {"exact_below": 0, "nlist": 8, "nprobe": 8} if ivf else {}
    kb = KnowledgeBase.build(**entries, **options)
    assert len(kb) == 300 and kb.dim == 8
    assert (type(kb.index).__name__ == "IndexIVFFlat") == ivf
    rows = query_rows
    result = search_as_entries(kb, entries, rows, 10)
    expected = brute_force(entries, entries["keys"][rows], 10, entries["users"][rows], entries["lengths"][rows])
    assert_matches_brute_force(result, expected)
    assert np.all(np.diff(result.scores, axis=1) <= 1e-6)


def test_default_nlist() -> None:
    assert [default_nlist(n) for n in (100, 39, 10, 10_000, 5000, 1000, 0)] == [2, 1, 1, 128, 128, 25, 1]


def test_ivf_uses_default_nlist_and_caps_nprobe(entries: dict[str, np.ndarray]) -> None:
    kb = KnowledgeBase.build(**entries, exact_below=0, nprobe=50)
    assert kb.index.nlist == default_nlist(300) == 7 and kb.index.nprobe == 7


def test_leakage_rule(entries: dict[str, np.ndarray], query_rows: np.ndarray) -> None:
    kb = KnowledgeBase.build(**entries)
    rows = query_rows
    result = search_as_entries(kb, entries, rows, 20)
    real = result.ids[result.mask]
    query_user = np.broadcast_to(entries["users"][rows][:, None], result.ids.shape)[result.mask]
    query_len = np.broadcast_to(entries["lengths"][rows][:, None], result.ids.shape)[result.mask]
    assert not np.any((entries["users"][real] == query_user) & (entries["lengths"][real] >= query_len))
    assert not np.any(result.ids == rows[:, None])
    assert result.mask.all()
    # without the filter, the query's own entry is its best match
    plain = kb.search(entries["keys"][rows], 20)
    np.testing.assert_array_equal(plain.ids[:, 0], rows)
    assert_matches_brute_force(plain, brute_force(entries, entries["keys"][rows], 20))


def test_exclude_user(entries: dict[str, np.ndarray], query_rows: np.ndarray) -> None:
    kb = KnowledgeBase.build(**entries)
    rows = query_rows
    result = kb.search(entries["keys"][rows], 10, entries["users"][rows], exclude_user=True)
    assert result.mask.all()
    assert not np.any(entries["users"][result.ids] == entries["users"][rows][:, None])
    expected = brute_force(entries, entries["keys"][rows], 10, entries["users"][rows], exclude_user=True)
    assert_matches_brute_force(result, expected)


def test_fewer_survivors_than_k_are_padded() -> None:
    rng = np.random.default_rng(2)
    keys = rng.normal(size=(6, 4)).astype(np.float32)
    kb = KnowledgeBase.build(keys, np.arange(6), np.zeros(6, dtype=np.int64), np.arange(1, 7))
    result = kb.search(keys[2:3], 5, np.array([0]), np.array([3]))
    assert sorted(result.ids[0, :2].tolist()) == [0, 1]
    np.testing.assert_array_equal(result.mask[0], [True, True, False, False, False])
    np.testing.assert_array_equal(result.ids[0, 2:], [-1, -1, -1])
    assert np.all(result.scores[0, 2:] == -np.inf) and np.all(np.isfinite(result.scores[0, :2]))
    assert result.scores[0, 0] >= result.scores[0, 1]


def test_refetch_finds_other_users_behind_own_later_prefixes() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=8)
    near = base + 1e-3 * rng.normal(size=(30, 8))  # user 0: 30 near-identical prefixes
    far = rng.normal(size=(200, 8)) - 3 * base  # users 1..20: pointing away
    keys = np.concatenate([near, far]).astype(np.float32)
    users = np.concatenate([np.zeros(30), np.repeat(np.arange(1, 21), 10)]).astype(np.int64)
    lengths = np.concatenate([np.arange(1, 31), np.tile(np.arange(1, 11), 20)])
    entries = {"keys": keys, "targets": np.zeros(230, dtype=np.int64), "users": users, "lengths": lengths}
    kb = KnowledgeBase.build(**entries)
    query = keys[:1]  # user 0, length 1: nothing of its own is allowed, the 4k=12 nearest are all its own
    assert np.all(users[kb.search(query, 12).ids[0]] == 0)
    result = kb.search(query, 3, np.array([0]), np.array([1]))
    assert result.mask.all() and np.all(users[result.ids[0]] != 0)
    assert_matches_brute_force(result, brute_force(entries, query, 3, np.array([0]), np.array([1])))
    # only the short row is searched again: user 5 may see all of user 0's prefixes
    calls: list[tuple[int, int]] = []
    search = kb.index.search
    kb.index.search = lambda q, n: calls.append((len(q), n)) or search(q, n)
    both = kb.search(np.repeat(query, 2, axis=0), 3, np.array([0, 5]), np.array([1, 1]))
    assert calls == [(2, 12), (1, 48)]
    np.testing.assert_array_equal(both.ids[0], result.ids[0])
    assert np.all(users[both.ids[1]] == 0)
    # a capped fetch cannot grow past the own prefixes: padded instead
    capped = kb.search(query, 3, np.array([0]), np.array([1]), max_fetch=12)
    assert not capped.mask.any() and np.all(capped.ids == -1)


def test_refetch_only_touches_short_rows(entries: dict[str, np.ndarray], query_rows: np.ndarray,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    kb = KnowledgeBase.build(**entries)
    calls: list[tuple[int, int]] = []
    search = kb.index.search
    monkeypatch.setattr(kb.index, "search", lambda q, n: calls.append((len(q), n)) or search(q, n), raising=False)
    rows = query_rows
    result = search_as_entries(kb, entries, rows, 10, over_fetch=1)
    expected = brute_force(entries, entries["keys"][rows], 10, entries["users"][rows], entries["lengths"][rows])
    assert_matches_brute_force(result, expected)
    # every query's own entry is among its 10 nearest, so every row is short and searched again with 40
    assert calls == [(50, 10), (50, 40)]


def test_use_gpu_without_gpus_warns_once(entries: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kb_module, "_warned_no_gpu", False)
    monkeypatch.setattr(require_faiss(), "get_num_gpus", lambda: 0)
    with caplog.at_level(logging.WARNING, logger=kb_module.__name__):
        for _ in range(2):
            kb = KnowledgeBase.build(**entries, use_gpu=True)
            assert not kb.on_gpu and kb.search(entries["keys"][:1], 1).ids[0, 0] == 0
    assert len([r for r in caplog.records if "no GPU" in r.message]) == 1


def test_k_larger_than_kb_is_a_config_error(entries: dict[str, np.ndarray]) -> None:
    kb = KnowledgeBase.build(**entries)
    with pytest.raises(ConfigError, match=r"retrieval\.top_k.*300"):
        kb.search(entries["keys"][:2], 301)


def test_save_load_round_trip(tmp_path: Path, entries: dict[str, np.ndarray], query_rows: np.ndarray) -> None:
    kb = KnowledgeBase.build(**entries, exact_below=0, nlist=8, nprobe=3)
    kb.save(tmp_path)
    loaded = KnowledgeBase.load(tmp_path)
    assert loaded.index.nprobe == 3 and loaded.settings == kb.settings
    for name in ("keys", "targets", "users", "lengths"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(kb, name))
    before, after = (search_as_entries(b, entries, query_rows, 7) for b in (kb, loaded))
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)


@pytest.mark.parametrize(("damage", "ivf"), [("truncate", False), ("garbage", False), ("delete", False),
                                             ("wrong_size", False), ("truncate", True)])
def test_corrupted_index_and_rebuild(tmp_path: Path, entries: dict[str, np.ndarray], query_rows: np.ndarray,
                                    damage: str, ivf: bool) -> None:
    kb = KnowledgeBase.build(**entries, **({"exact_below": 0, "nlist": 8, "nprobe": 2} if ivf else {}))
    kb.save(tmp_path)
    path = tmp_path / INDEX_NAME
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a faiss index" * 10)
    elif damage == "delete":
        path.unlink()
    else:
        KnowledgeBase.build(**{name: a[:100] for name, a in entries.items()}).save(tmp_path / "small")
        path.write_bytes((tmp_path / "small" / INDEX_NAME).read_bytes())
    with pytest.raises(RunError, match=r"corrupted.*seqrec rebuild-index"):
        KnowledgeBase.load(tmp_path)
    repaired = KnowledgeBase.load(tmp_path, rebuild=True)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [INDEX_NAME, "knowledge_base.npz"]
    again = KnowledgeBase.load(tmp_path)
    for other in (repaired, again):
        result, expected = (search_as_entries(b, entries, query_rows, 5) for b in (other, kb))
        np.testing.assert_array_equal(result.ids, expected.ids)


def test_missing_npz_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="knowledge_base.npz"):
        KnowledgeBase.load(tmp_path)


def test_bad_shapes_name_the_argument(entries: dict[str, np.ndarray]) -> None:
    with pytest.raises(SeqrecError, match="keys"):
        KnowledgeBase.build(entries["keys"][:, 0], entries["targets"], entries["users"], entries["lengths"])
    with pytest.raises(SeqrecError, match="targets"):
        KnowledgeBase.build(entries["keys"], entries["targets"][:-1], entries["users"], entries["lengths"])
    with pytest.raises(SeqrecError, match="lengths"):
        KnowledgeBase.build(entries["keys"], entries["targets"], entries["users"], entries["lengths"] * 1.0)
    kb = KnowledgeBase.build(**entries)
    with pytest.raises(SeqrecError, match="queries"):
        kb.search(np.zeros((2, 5), dtype=np.float32), 3)


def test_require_faiss_without_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_faiss().__name__ == "faiss"
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(SeqrecError, match=r"seqrec\[retrieval\]"):
        require_faiss()


def _rewrite_npz(folder: Path, **changes: np.ndarray) -> None:
    with np.load(folder / NPZ_NAME) as z:
        arrays = {k: z[k] for k in z.files}
    with open(folder / NPZ_NAME, "wb") as f:
        np.savez(f, **{**arrays, **changes})


def _set(entries: dict[str, np.ndarray], name: str, row: int, value: float) -> np.ndarray:
    array = entries[name].copy()
    array[row] = value
    return array


BAD_ARRAYS = {  # what a damaged knowledge_base.npz can hold, and what the error says
    "negative target": (lambda e: {"targets": _set(e, "targets", 7, -3)}, r"targets\[7\] = -3: next items must be 1"),
    "padding target": (lambda e: {"targets": _set(e, "targets", 0, 0)}, r"targets\[0\] = 0"),
    "target past the catalogue": (lambda e: {"targets": _set(e, "targets", 5, 50)}, r"targets\[5\] = 50.*1\.\.49"),
    "negative user": (lambda e: {"users": _set(e, "users", 2, -1)}, r"users\[2\] = -1"),
    "empty prefix": (lambda e: {"lengths": _set(e, "lengths", 3, 0)}, r"lengths\[3\] = 0"),
    "short targets": (lambda e: {"targets": e["targets"][:-4]}, r"targets must have shape \(300,\)"),
    "long users": (lambda e: {"users": np.concatenate([e["users"], [1]])}, r"users must have shape \(300,\)"),
    "float lengths": (lambda e: {"lengths": e["lengths"] * 1.0}, "lengths must hold integers"),
    "non-finite keys": (lambda e: {"keys": _set(e, "keys", 1, np.nan)}, "keys must hold finite floats"),
    "bad settings": (lambda e: {"nprobe": np.int64(0)}, "index settings"),
    "settings not a number": (lambda e: {"nlist": np.arange(3)}, "TypeError"),
    "missing array": (lambda e: {}, "users is not a file"),
}


@pytest.mark.parametrize("damage", sorted(BAD_ARRAYS))
def test_damaged_arrays_are_run_errors_that_ask_for_retraining(tmp_path: Path, entries: dict[str, np.ndarray],
                                                                damage: str) -> None:
    KnowledgeBase.build(**entries).save(tmp_path)
    change, message = BAD_ARRAYS[damage]
    _rewrite_npz(tmp_path, **change(entries))
    if damage == "missing array":
        with np.load(tmp_path / NPZ_NAME) as z:
            kept = {k: z[k] for k in z.files if k != "users"}
        with open(tmp_path / NPZ_NAME, "wb") as f:
            np.savez(f, **kept)
    for rebuild in (False, True):  # re-indexing cannot repair the stored arrays
        with pytest.raises(RunError, match=rf"{NPZ_NAME} is (damaged|unreadable).*{message}.*retrain the run"):
            KnowledgeBase.load(tmp_path, rebuild=rebuild, num_items=49)


@pytest.mark.parametrize("cut", ["half", "empty", "garbage"])
def test_truncated_npz_is_a_run_error(tmp_path: Path, entries: dict[str, np.ndarray], cut: str) -> None:
    KnowledgeBase.build(**entries).save(tmp_path)
    good = (tmp_path / NPZ_NAME).read_bytes()
    (tmp_path / NPZ_NAME).write_bytes({"half": good[: len(good) // 2], "empty": b"", "garbage": b"x" * 100}[cut])
    with pytest.raises(RunError, match=rf"{NPZ_NAME} is unreadable.*retrain the run"):
        KnowledgeBase.load(tmp_path)


def test_targets_are_only_bounded_by_the_catalogue_when_known(tmp_path: Path, entries: dict[str, np.ndarray]) -> None:
    KnowledgeBase.build(**entries).save(tmp_path)
    top = int(entries["targets"].max())
    assert len(KnowledgeBase.load(tmp_path, num_items=top)) == len(entries["keys"])
    assert len(KnowledgeBase.load(tmp_path)) == len(entries["keys"])
    with pytest.raises(RunError, match=rf"next items must be 1\.\.{top - 1}"):
        KnowledgeBase.load(tmp_path, num_items=top - 1)
