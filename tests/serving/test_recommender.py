"""The recommender API: users, anonymous sessions, allow / deny lists, short lists, similar items and vectors,
checked against scores computed by hand from the model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import seqrec
from helpers import TINY_EVAL, tiny_model_config, tiny_train_config
from seqrec.data.splits import SplitData
from seqrec.errors import NonFiniteError, SeqrecError, UnknownIdError
from seqrec.recommender import Recommendations, Recommender


@pytest.fixture(scope="module")
def rec(tiny_data: SplitData) -> Recommender:
    """A briefly trained SASRec (max_len 10, 40 items, 60 users)."""
    run = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(epochs=1), TINY_EVAL, progress=False)
    return run.recommender.eval()


def reference(rec: Recommender, history: np.ndarray, k: int, mask_seen: bool,
              allowed: set[int] | None = None) -> tuple[list[int], np.ndarray]:
    """Top-k internal items and scores of one history, by hand: the model's scores of its last max_len items,
    masked and sorted in numpy."""
    padded = np.zeros((1, rec.max_len), dtype=np.int64)
    last = history[-rec.max_len :]
    padded[0, rec.max_len - len(last) :] = last
    with torch.no_grad():
        scores = rec.model.score(torch.from_numpy(padded))[0].numpy().astype(np.float64)
    keep = [i for i in range(1, rec.num_items + 1) if (allowed is None or i in allowed)
            and not (mask_seen and i in set(history.tolist()))]
    best = sorted(keep, key=lambda i: -scores[i])[:k]
    return best, scores[best]


def external_history(rec: Recommender, user: int) -> list[str]:
    return rec.item_map.to_external(rec.histories[user])


def test_recommend_matches_scores_computed_by_hand(rec: Recommender) -> None:
    users = rec.user_map.external[:6]
    for mask_seen in (True, False):
        rows = rec.recommend(users, k=5, mask_seen=mask_seen, chunk_size=1)
        assert isinstance(rows, Recommendations) and rows.short == [] and len(rows) == 30
        for n, user in enumerate(users):
            mine = rows[5 * n : 5 * n + 5]
            items, scores = reference(rec, rec.histories[n], 5, mask_seen)
            assert [r["user"] for r in mine] == [user] * 5 and [r["rank"] for r in mine] == [1, 2, 3, 4, 5]
            assert rec.item_map.to_internal([r["item"] for r in mine]).tolist() == items
            np.testing.assert_allclose([r["score"] for r in mine], scores, rtol=1e-6)
            assert [r["title"] for r in mine] == [rec.catalog.title(i) for i in items]


def test_a_session_of_a_users_history_scores_bit_identically(rec: Recommender) -> None:
    users = rec.user_map.external[:12]
    sessions = [external_history(rec, n) for n in range(12)]
    allow, deny = rec.item_map.external[:30], rec.item_map.external[:3]
    for mask_seen in (True, False):
        by_user = rec.recommend(users, k=8, mask_seen=mask_seen, allow=allow, deny=deny)
        by_session = rec.recommend_sessions(sessions, k=8, mask_seen=mask_seen, allow=allow, deny=deny)
        assert by_session.unknown == [0] * 12 and by_session.unknown_ids == [[]] * 12
        assert [(r["rank"], r["item"], r["score"], r["title"]) for r in by_user] == \
            [(r["rank"], r["item"], r["score"], r["title"]) for r in by_session.rows]
        assert [int(r["session"]) for r in by_session.rows] == [users.index(r["user"]) for r in by_user]


def test_allow_and_deny_restrict_the_candidates(rec: Recommender) -> None:
    user = rec.user_map.external[0]
    allow = [str(i) for i in rec.item_map.external[:20]]
    deny = allow[:4] + rec.item_map.external[30:32]  # denied items outside `allow` change nothing
    allowed = set(rec.item_map.to_internal(allow).tolist()) - set(rec.item_map.to_internal(deny).tolist())
    rows = rec.recommend([user], k=6, mask_seen=False, allow=allow, deny=deny)
    items, scores = reference(rec, rec.histories[0], 6, False, allowed)
    assert rec.item_map.to_internal([r["item"] for r in rows]).tolist() == items
    np.testing.assert_allclose([r["score"] for r in rows], scores, rtol=1e-6)
    assert len(rec.recommend([user], k=16, mask_seen=False, allow=allow, deny=deny)) == 16  # all 16 candidates
    with pytest.raises(SeqrecError, match="k = 17 is more than the 16 candidate items"):
        rec.recommend([user], k=17, mask_seen=False, allow=allow, deny=deny)
    with pytest.raises(UnknownIdError, match="unknown item id") as caught:
        rec.recommend([user], k=3, deny=["no-such-item", allow[0]])
    assert caught.value.kind == "item id" and caught.value.ids == ["no-such-item"]


def test_k_is_checked_against_the_catalogue(rec: Recommender) -> None:
    user = rec.user_map.external[0]
    for k in (0, -1):
        with pytest.raises(SeqrecError, match="k must be >= 1"):
            rec.recommend([user], k=k)
    with pytest.raises(SeqrecError, match=r"k = 41 is more than the 40 candidate items \(the catalogue\)"):
        rec.recommend([user], k=41, mask_seen=False)
    rows = rec.recommend([user], k=40, mask_seen=False)
    assert sorted(r["item"] for r in rows) == sorted(rec.item_map.external) and rows.short == []


def test_users_with_fewer_unseen_items_than_k_get_shorter_lists(rec: Recommender) -> None:
    users = rec.user_map.external[:5]
    rows = rec.recommend(users, k=40, mask_seen=True)
    unseen = {u: 40 - len(set(rec.histories[n].tolist())) for n, u in enumerate(users)}
    assert {u: sum(r["user"] == u for r in rows) for u in users} == unseen
    assert rows.short == users  # every one of them has seen some items
    assert rec.recommend(users, k=5, mask_seen=True).short == []
    session = rec.recommend_sessions([external_history(rec, 0)], k=40, mask_seen=True)
    assert len(session.rows) == unseen[users[0]] and session.short == [0]


def test_unknown_users_are_named(rec: Recommender) -> None:
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\): ghost") as caught:
        rec.recommend([rec.user_map.external[0], "ghost"], k=3)
    assert caught.value.kind == "user id" and caught.value.ids == ["ghost"]


def test_sessions_skip_unknown_items_and_use_the_last_max_len(rec: Recommender) -> None:
    items = rec.item_map.external
    long = [items[i % 40] for i in range(25)]  # 25 items, the model reads the last 10
    mixed = ["nope", items[3], "7x", items[5]]
    result = rec.recommend_sessions([long, mixed, long[-10:]], k=5, mask_seen=False)
    assert result.unknown == [0, 2, 0] and result.unknown_ids == [[], ["nope", "7x"], []]
    by_session = [[(r["item"], r["score"]) for r in result.rows if r["session"] == s] for s in range(3)]
    assert by_session[0] == by_session[2]  # only the last max_len items count
    known = rec.recommend_sessions([long, [items[3], items[5]], long[-10:]], k=5, mask_seen=False)
    assert known.rows == result.rows and known.unknown == [0, 0, 0]  # unknown ids are skipped, nothing else
    masked = rec.recommend_sessions([long], k=5, mask_seen=True).rows  # masking covers the whole session
    assert not {r["item"] for r in masked} & set(long)
    frame = result.frame()
    assert list(frame.columns) == ["session", "rank", "item", "score", "title"] and len(frame) == 15
    assert result.records() == result.rows


def test_sessions_without_a_known_item_are_an_error(rec: Recommender) -> None:
    items = rec.item_map.external
    with pytest.raises(SeqrecError, match=r"session 1 has no item this run knows \(x, y\)"):
        rec.recommend_sessions([[items[0]], ["x", "y"], []], k=3)
    with pytest.raises(SeqrecError, match="session 0 has no item this run knows"):
        rec.recommend_sessions([[]], k=3)
    with pytest.raises(SeqrecError, match="session 0 is 'abc', not a list of item ids"):
        rec.recommend_sessions(["abc"], k=3)
    assert rec.recommend_sessions([], k=3).rows == []


def test_chunking_does_not_change_the_lists(rec: Recommender) -> None:
    users = rec.user_map.external
    whole = rec.recommend(users, k=10, chunk_size=1024)
    chunked = rec.recommend(users, k=10, chunk_size=7)
    assert [(r["user"], r["item"]) for r in whole] == [(r["user"], r["item"]) for r in chunked]
    np.testing.assert_allclose([r["score"] for r in whole], [r["score"] for r in chunked], rtol=1e-6)
    with pytest.raises(SeqrecError, match="chunk_size must be >= 1"):
        rec.recommend(users, k=3, chunk_size=0)


def test_similar_items_are_the_nearest_item_vectors_by_cosine(rec: Recommender) -> None:
    ids, vectors = rec.item_vectors()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T  # [N, N] by position in `ids`
    query = [ids[4], ids[9]]
    rows = rec.similar_items(query, k=5)
    for n, item in enumerate(query):
        row = ids.index(item)
        others = [j for j in np.argsort(-cosine[row], kind="stable") if j != row][:5]
        mine = rows[5 * n : 5 * n + 5]
        assert [r["item"] for r in mine] == [item] * 5 and [r["rank"] for r in mine] == [1, 2, 3, 4, 5]
        assert [r["similar"] for r in mine] == [ids[j] for j in others]
        np.testing.assert_allclose([r["score"] for r in mine], cosine[row, others], rtol=1e-5)
        assert [r["title"] for r in mine] == [rec.catalog.title(j + 1) for j in others]
    allow = ids[:10]
    filtered = rec.similar_items([ids[4]], k=8, allow=allow, deny=[ids[0]])  # 10 allowed - denied - itself
    assert {r["similar"] for r in filtered} == set(allow) - {ids[0], ids[4]} and len(filtered) == 8
    with pytest.raises(SeqrecError, match="ask for at most 8"):
        rec.similar_items([ids[4]], k=9, allow=allow, deny=[ids[0]])
    with pytest.raises(SeqrecError, match="is never its own similar item; ask for at most 39"):
        rec.similar_items([ids[0]], k=40)
    assert len(rec.similar_items([ids[0]], k=39, deny=[ids[0]])) == 39  # a denied query leaves 39 others


def test_vectors_score_like_recommend(rec: Recommender) -> None:
    ids, items = rec.item_vectors()
    assert ids == rec.item_map.external and items.dtype == np.float32 and items.shape == (40, 16)
    np.testing.assert_array_equal(items, rec.model.item_embeddings()[1:].detach().numpy())
    users = rec.user_map.external[:4]
    scores = rec.user_vectors(users) @ items.T  # [4, 40]
    rows = rec.recommend(users, k=3, mask_seen=False)
    for n in range(4):
        best = np.argsort(-scores[n], kind="stable")[:3]
        assert [r["item"] for r in rows[3 * n : 3 * n + 3]] == [ids[j] for j in best]
        np.testing.assert_allclose([r["score"] for r in rows[3 * n : 3 * n + 3]], scores[n, best], rtol=1e-5)
    sessions = [external_history(rec, n) for n in range(4)]
    np.testing.assert_array_equal(rec.session_vectors(sessions), rec.user_vectors(users))


def test_non_finite_scores_are_an_error(rec: Recommender) -> None:
    broken = copy.deepcopy(rec.model)
    with torch.no_grad():
        broken.item_embeddings()[5] = float("nan")
    bad = Recommender(broken, rec.user_map, rec.item_map, rec.histories, rec.catalog)
    with pytest.raises(NonFiniteError, match="NaN or infinite scores"):
        bad.recommend(rec.user_map.external[:2], k=3)
    with pytest.raises(NonFiniteError, match="item vectors"):
        bad.similar_items([rec.item_map.external[0]], k=3)


def test_every_model_scores_sessions_like_users(model_name: str, tiny_data: SplitData) -> None:
    run = seqrec.train(tiny_model_config(model_name), tiny_data, tiny_train_config(epochs=1), TINY_EVAL,
                       progress=False)
    rec = run.recommender.eval()
    users = rec.user_map.external[:10]
    by_user = rec.recommend(users, k=6, chunk_size=4)
    by_session = rec.recommend_sessions([external_history(rec, n) for n in range(10)], k=6, chunk_size=4)
    assert [(r["item"], r["score"]) for r in by_user] == [(r["item"], r["score"]) for r in by_session.rows]
    for n in (0, 9):  # and both agree with the model's scores of the full window, one user at a time
        items, scores = reference(rec, rec.histories[n], 6, True)
        mine = by_user[6 * n : 6 * n + 6]
        assert rec.item_map.to_internal([r["item"] for r in mine]).tolist() == items
        np.testing.assert_allclose([r["score"] for r in mine], scores, rtol=1e-5)


def test_a_model_left_in_training_mode_is_scored_in_eval_mode(rec: Recommender) -> None:
    """Dropout never reaches a recommendation: a model left in train mode is switched to eval first."""
    users = rec.user_map.external[:4]
    model = copy.deepcopy(rec.model)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.9
    training = Recommender(model.train(), rec.user_map, rec.item_map, rec.histories, rec.catalog)
    clean = Recommender(copy.deepcopy(model).eval(), rec.user_map, rec.item_map, rec.histories, rec.catalog)
    rows = training.recommend(users, k=5)
    assert not model.training
    assert [(r["item"], r["score"]) for r in rows] == [(r["item"], r["score"]) for r in clean.recommend(users, k=5)]
