"""Retriever, fusion and alignment losses on tiny hand-computed examples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec.errors import ConfigError
from seqrec.retrieval.fusion import fuse, neighbour_similarity
from seqrec.retrieval.losses import (
    js_divergence,
    kl_divergence,
    recommendation_distribution,
    retrieval_distribution,
)
from seqrec.retrieval.retriever import Retriever

T = torch.tensor


def _one_query() -> tuple[torch.Tensor, ...]:
    """1 query, 2 neighbours in 2-D: cosine sims (1, 0), dot sims (6, 0)."""
    h = T([[1.0, 0.0]])
    query = T([[2.0, 0.0]])
    keys = T([[[3.0, 0.0], [0.0, 1.0]]])
    values = T([[[2.0, 0.0], [0.0, 2.0]]])
    mask = T([[True, True]])
    return h, query, keys, values, mask


def test_retriever_is_a_residual_ffn_with_layer_norm() -> None:
    torch.manual_seed(0)
    model = Retriever(hidden=4, layers=1, inner=8, dropout=0.0).eval()
    x = torch.randn(3, 5, 4)
    out = model(x)
    assert out.shape == x.shape
    lin1, lin2 = model.blocks[0].ffn[0], model.blocks[0].ffn[2]
    by_hand = F.layer_norm(x + lin2(F.gelu(lin1(x))), (4,), eps=1e-12)
    assert torch.allclose(out, by_hand, atol=1e-6)
    assert torch.all(lin1.bias == 0) and lin1.weight.abs().max() <= 0.04  # truncated normal, zero bias
    model2 = Retriever(hidden=4, layers=2, inner=8)
    model2(x).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model2.parameters())


def test_retriever_rejects_zero_layers() -> None:
    with pytest.raises(ConfigError, match="retrieval.retriever_layers"):
        Retriever(hidden=4, layers=0)


def test_fuse_cosine_by_hand() -> None:
    h, query, keys, values, mask = _one_query()
    out = fuse(h, query, keys, values, mask, alpha=0.5, temperature=0.5, similarity="cosine")
    a1 = math.exp(2) / (math.exp(2) + 1)  # logits (1/0.5, 0/0.5)
    assert torch.allclose(out.attention, T([[a1, 1 - a1]]))
    assert torch.allclose(out.quality, T([[1.0, 0.0]]))
    assert out.kept.tolist() == [[True, True]]  # cosine 0 passes the default threshold 0
    knowledge = T([[2 * a1, 2 * (1 - a1)]])
    assert torch.allclose(out.hidden, 0.5 * h + 0.5 * knowledge)


def test_fuse_dot_by_hand() -> None:
    h, query, keys, values, mask = _one_query()
    out = fuse(h, query, keys, values, mask, alpha=0.25, temperature=4.0, similarity="dot")
    a1 = math.exp(1.5) / (math.exp(1.5) + 1)  # logits (6/4, 0/4)
    assert torch.allclose(out.attention, T([[a1, 1 - a1]]))
    assert torch.allclose(out.hidden, 0.75 * h + 0.25 * T([[2 * a1, 2 * (1 - a1)]]))
    sim = neighbour_similarity(query, keys, T([[True, False]]), "dot")
    assert sim[0, 0] == 6.0 and sim[0, 1] == float("-inf")


def test_fuse_alpha_zero_returns_h_exactly() -> None:
    torch.manual_seed(0)
    h, q = torch.randn(3, 4), torch.randn(3, 4)
    keys, values = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    out = fuse(h, q, keys, values, torch.ones(3, 2, dtype=torch.bool), alpha=0.0, temperature=0.1)
    assert torch.equal(out.hidden, h)


def test_masked_neighbour_gets_no_attention_and_does_not_change_knowledge() -> None:
    h, query, keys, values, _ = _one_query()
    mask = T([[True, False]])
    out = fuse(h, query, keys, values, mask, alpha=0.5, temperature=1.0)
    assert out.attention.tolist() == [[1.0, 0.0]] and out.kept.tolist() == [[True, False]]
    changed = values.clone()
    changed[0, 1] = T([100.0, -100.0])
    again = fuse(h, query, keys, changed, mask, alpha=0.5, temperature=1.0)
    assert torch.allclose(out.hidden, 0.5 * h + 0.5 * values[:, 0]) and torch.equal(again.hidden, out.hidden)


def test_all_masked_row_keeps_h_and_has_finite_gradients() -> None:
    h = T([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    query = T([[2.0, 0.0], [1.0, 1.0]], requires_grad=True)
    keys = T([[[3.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)
    values = T([[[2.0, 0.0], [0.0, 2.0]], [[5.0, 5.0], [5.0, 5.0]]], requires_grad=True)
    mask = T([[True, True], [False, False]])
    for similarity in ("cosine", "dot"):
        out = fuse(h, query, keys, values, mask, alpha=0.5, temperature=0.1, similarity=similarity)
        assert torch.equal(out.hidden[1], h[1]) and out.attention[1].tolist() == [0.0, 0.0]
        assert torch.isfinite(out.hidden).all() and torch.isfinite(out.attention).all()
        (out.hidden.sum() + out.attention.pow(2).sum()).backward()
        for t in (h, query, keys, values):
            assert t.grad is not None and torch.isfinite(t.grad).all()
            t.grad = None


def test_quality_threshold_drops_a_low_cosine_neighbour() -> None:
    h, query = T([[1.0, 0.0]]), T([[1.0, 0.0]])
    keys = T([[[1.0, 0.0], [1.0, 1.0]]])  # cosines 1 and 1/sqrt(2)
    values = T([[[2.0, 0.0], [0.0, 2.0]]])
    mask = T([[True, True]])
    out = fuse(h, query, keys, values, mask, alpha=0.5, temperature=1.0, quality_threshold=0.8)
    assert torch.allclose(out.quality, T([[1.0, 1 / math.sqrt(2)]]))
    assert out.kept.tolist() == [[True, False]] and out.attention.tolist() == [[1.0, 0.0]]
    assert torch.allclose(out.hidden, T([[1.5, 0.0]]))
    opposite = fuse(h, query, -keys, values, mask, alpha=0.5, temperature=1.0, quality_threshold=-1.0)
    assert opposite.kept.tolist() == [[True, True]]  # a threshold <= -1 disables the filter


def test_gradient_reaches_the_query_through_a_retriever() -> None:
    torch.manual_seed(0)
    retriever = Retriever(hidden=4, inner=8, dropout=0.0)
    h = torch.randn(3, 4)
    keys, values = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    out = fuse(h, retriever(h), keys, values, torch.ones(3, 2, dtype=torch.bool), alpha=0.5, temperature=0.5,
               quality_threshold=-1.0)
    out.hidden.pow(2).sum().backward()
    grad = retriever.blocks[0].ffn[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_recommendation_distribution_sigmoid_and_softmax_by_hand() -> None:
    h = T([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    values = T([[[0.0, 1.0], [1.0, 1.0], [9.0, 9.0]], [[0.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])
    target = T([[1.0, 1.0], [1.0, 1.0]])
    kept = T([[True, True, False], [False, False, False]])  # scores with alpha 0.5: 1, 1.5, (masked)
    sig = recommendation_distribution(h, values, target, kept, alpha=0.5)
    s1, s2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-1.5))
    assert torch.allclose(sig, T([[s1 / (s1 + s2), s2 / (s1 + s2), 0.0], [0.0, 0.0, 0.0]]), atol=1e-6)
    soft = recommendation_distribution(h, values, target, kept, alpha=0.5, kind="softmax", temperature=0.5)
    e = math.exp(1.0)  # logits 2 and 3
    assert torch.allclose(soft, T([[1 / (1 + e), e / (1 + e), 0.0], [0.0, 0.0, 0.0]]), atol=1e-6)
    for p in (sig, soft):
        assert not p.requires_grad
        assert torch.allclose(p.sum(-1), T([1.0, 0.0]), atol=1e-6)


def _two_rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p_ret = T([[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]], requires_grad=True)
    p_rec = T([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]])
    kept = T([[True, True], [True, True], [False, False]])  # the third row has no neighbour
    return p_ret, p_rec, kept


def test_kl_divergence_by_hand() -> None:
    p_ret, p_rec, kept = _two_rows()
    row1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row2 = 1.0 * math.log(1.0 / 0.5)
    kl = kl_divergence(p_ret, p_rec, kept)
    assert kl.item() == pytest.approx((row1 + row2) / 2, abs=1e-6)
    kl.backward()
    assert torch.isfinite(p_ret.grad).all() and torch.all(p_ret.grad[2] == 0)
    assert kl_divergence(p_rec, p_rec, kept).item() == pytest.approx(0.0, abs=1e-7)


def test_js_divergence_by_hand_and_symmetric() -> None:
    p_ret, p_rec, kept = _two_rows()
    m1, m2 = (0.375, 0.625), (0.75, 0.25)
    row1 = 0.5 * (0.5 * math.log(0.5 / m1[0]) + 0.5 * math.log(0.5 / m1[1])) \
        + 0.5 * (0.25 * math.log(0.25 / m1[0]) + 0.75 * math.log(0.75 / m1[1]))
    row2 = 0.5 * math.log(1.0 / m2[0]) + 0.5 * (0.5 * math.log(0.5 / m2[0]) + 0.5 * math.log(0.5 / m2[1]))
    js = js_divergence(p_ret, p_rec, kept)
    assert js.item() == pytest.approx((row1 + row2) / 2, abs=1e-6)
    assert js_divergence(p_rec, p_ret, kept).item() == pytest.approx(js.item(), abs=1e-7)


def test_divergences_without_any_kept_row_are_zero_with_a_graph() -> None:
    p_ret, p_rec, kept = _two_rows()
    none = torch.zeros_like(kept)
    for loss in (kl_divergence(p_ret, p_rec, none), js_divergence(p_ret, p_rec, none)):
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()


def test_retrieval_distribution_equals_fusion_attention() -> None:
    torch.manual_seed(0)
    h, q = torch.randn(4, 3), torch.randn(4, 3)
    keys, values = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    mask = torch.rand(4, 5) > 0.3
    mask[2] = False
    for similarity in ("cosine", "dot"):
        out = fuse(h, q, keys, values, mask, alpha=0.3, temperature=0.7, similarity=similarity)
        dist = retrieval_distribution(q, keys, out.kept, temperature=0.7, similarity=similarity)
        assert torch.allclose(dist, out.attention) and torch.all(dist[2] == 0)
