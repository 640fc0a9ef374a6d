"""Retrieval-augmented fine-tuning: base-score parity, gradients, refresh, leakage, runs and bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_EVAL, ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.api import train
from seqrec.errors import ConfigError, RunError
from seqrec.models.duorec import DuoRec
from seqrec.retrieval.augmented import RetrievalAugmented, prefix_lengths
from seqrec.retrieval.config import RetrievalConfig
from seqrec.runs import load_run, save_run
from seqrec.training.trainer import Trainer


@pytest.fixture(scope="module")
def base_run(tiny_data, tmp_path_factory) -> Path:  # noqa: ANN001
    torch.manual_seed(0)
    run = train(tiny_model_config("duorec"), tiny_data, tiny_train_config(), TINY_EVAL, progress=False)
    return save_run(run, tmp_path_factory.mktemp("runs") / "duorec")


def augmented(tiny_data, base_run: Path, **overrides: object) -> tuple[RetrievalAugmented, Trainer]:  # noqa: ANN001
    torch.manual_seed(0)
    config = RetrievalConfig(base_run=str(base_run), **{"top_k": 3, "quality_threshold": -1.0, **overrides})
    model = RetrievalAugmented(load_run(base_run).model, config)
    return model, ranking_trainer(model, tiny_data, tiny_train_config(batch_size=64), TINY_EVAL, progress=False)


def histories(tiny_data, model: RetrievalAugmented) -> torch.Tensor:  # noqa: ANN001
    return torch.from_numpy(tiny_data.valid.histories.padded(model.max_len))


def test_alpha_zero_and_predict_off_reproduce_the_base_scores(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    base = load_run(base_run).model
    for overrides in ({"alpha": 0.0}, {"use_for_predict": False}):
        model, _ = augmented(tiny_data, base_run, **overrides)
        model.eval()
        items = histories(tiny_data, model)
        assert torch.equal(model.score(items), base.score(items))
    model, _ = augmented(tiny_data, base_run)  # alpha 0.15 changes them
    model.eval()
    assert not torch.allclose(model.score(histories(tiny_data, model)), base.score(histories(tiny_data, model)))


def test_knowledge_base_holds_every_training_prefix_with_its_next_item(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, trainer = augmented(tiny_data, base_run)
    kb = model.knowledge
    train_lengths = tiny_data.train.lengths
    assert len(kb) == int(np.maximum(np.minimum(train_lengths, model.max_len + 1) - 1, 0).sum())
    for user in (0, 7, 31):
        items = tiny_data.train.items[tiny_data.train.offsets[user]:tiny_data.train.offsets[user + 1]]
        mine = kb.users == user
        # prefix of m items -> next item is the (m+1)-th training item
        assert sorted(kb.lengths[mine]) == list(range(len(items) - int(mine.sum()), len(items)))
        assert np.array_equal(kb.targets[mine][np.argsort(kb.lengths[mine])], items[kb.lengths[mine].min():])


def test_prefix_lengths_count_items_before_each_column() -> None:
    assert prefix_lengths(torch.tensor([10, 3]), 4).tolist() == [[6, 7, 8, 9], [-1, 0, 1, 2]]


def test_training_retrieval_never_sees_own_current_or_later_prefixes(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, trainer = augmented(tiny_data, base_run, top_k=5)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = model.knowledge.search

    def spy(queries, k, users=None, lengths=None, **kw):  # noqa: ANN001, ANN202
        found = original(queries, k, users, lengths, **kw)
        seen.append((found.ids, users, lengths))
        return found

    model.knowledge.search = spy  # type: ignore[method-assign]
    users, batch = next(trainer.batches())
    trainer.objective(users, batch)
    ids, owners, lengths = seen[-1]
    kb = model.knowledge
    real = ids >= 0
    same_user = kb.users[np.where(real, ids, 0)] == owners[:, None]
    assert not (real & same_user & (kb.lengths[np.where(real, ids, 0)] >= lengths[:, None])).any()
    assert real.all()  # plenty of other users' prefixes


def test_gradients_reach_the_retriever_and_only_the_unfrozen_encoder_parts(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, trainer = augmented(tiny_data, base_run, unfreeze="top", unfreeze_layers=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    users, batch = next(trainer.batches())
    model.train()
    totals, counts = trainer.objective(users, batch)
    (totals[0] / counts[0] + totals[1]).backward()
    trainer.optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert {n for n in before if n.startswith("retriever.")} <= moved
    top = len(model.base.stack.layers) - 1
    assert any(n.startswith(f"base.stack.layers.{top}.") for n in moved)
    assert not any(n.startswith(("base.embed.", "base.stack.layers.0.")) for n in moved)


def test_original_wiring_trains_the_retriever_only_through_the_divergence(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    """fusion_query=hidden + frozen encoder (the published code): without the KL term nothing can learn."""
    model, trainer = augmented(tiny_data, base_run, fusion_query="hidden", unfreeze="none", kl_weight=0.0)
    users, batch = next(trainer.batches())
    retrieval = trainer.objective(users, batch)[0][1]  # the retrieval term's sum (a mean)
    assert not retrieval.requires_grad or all(
        g is None or not g.any() for g in torch.autograd.grad(retrieval, list(model.retriever.parameters()),
                                                              allow_unused=True))
    model, trainer = augmented(tiny_data, base_run, fusion_query="retriever", unfreeze="none", kl_weight=0.0)
    retrieval = trainer.objective(users, batch)[0][1]
    grads = torch.autograd.grad(retrieval, list(model.retriever.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_refresh_re_encodes_the_knowledge_base(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, trainer = augmented(tiny_data, base_run, refresh_every=2)
    keys = model.knowledge.keys.copy()
    with torch.no_grad():
        for p in model.retriever.parameters():
            p.add_(0.1)
    assert "refresh_seconds" not in trainer.terms[0].end_epoch(1)
    assert np.array_equal(model.knowledge.keys, keys)
    assert "refresh_seconds" in trainer.terms[0].end_epoch(2)
    assert not np.allclose(model.knowledge.keys, keys)
    model.eval()
    inputs = trainer.sequences[:1, :-1]
    with torch.no_grad():
        expected = model.retriever(model.base.encode(inputs))[0, -1]
    row = np.flatnonzero((model.knowledge.users == int(trainer.users[0]))
                         & (model.knowledge.lengths == model.knowledge.lengths[model.knowledge.users
                                                                               == int(trainer.users[0])].max()))
    np.testing.assert_allclose(model.knowledge.keys[row[0]], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_run_round_trip_and_damaged_index(tiny_data, base_run: Path, tmp_path: Path) -> None:  # noqa: ANN001
    config = RetrievalConfig(base_run=str(base_run), top_k=3)
    run = train(tiny_model_config("duorec"), tiny_data, tiny_train_config(), TINY_EVAL, progress=False,
                retrieval=config)
    assert run.metrics["retrieval"]["knowledge_base"] == len(run.model.knowledge)
    path = save_run(run, tmp_path / "ftragrec")
    items = histories(tiny_data, run.model)
    loaded = load_run(path)
    assert isinstance(loaded.model, RetrievalAugmented)
    run.model.eval()
    assert torch.equal(loaded.model.score(items), run.model.score(items))
    (path / "knowledge_base.faiss").write_bytes(b"garbage")
    with pytest.raises(RunError, match="rebuild-index"):
        load_run(path)
    repaired = load_run(path, rebuild_index=True)
    assert torch.equal(repaired.model.score(items), run.model.score(items))


def test_bad_base_runs_and_k_are_refused(tiny_data, base_run: Path, tmp_path: Path) -> None:  # noqa: ANN001
    config = RetrievalConfig(base_run=str(base_run))
    with pytest.raises(RunError, match="hidden"):
        train(tiny_model_config("duorec", hidden=32), tiny_data, tiny_train_config(), TINY_EVAL, progress=False,
              retrieval=config)
    bert = save_run(train(tiny_model_config("bert4rec"), tiny_data, tiny_train_config(), TINY_EVAL,
                          progress=False), tmp_path / "bert")
    with pytest.raises(RunError, match="bert4rec run"):
        train(tiny_model_config("bert4rec"), tiny_data, tiny_train_config(), TINY_EVAL, progress=False,
              retrieval=dataclasses.replace(config, base_run=str(bert)))
    with pytest.raises(ConfigError, match="retrieval.top_k"):
        augmented(tiny_data, base_run, top_k=100_000)
    with pytest.raises(RunError, match="not found"):
        train(tiny_model_config("duorec"), tiny_data, tiny_train_config(), TINY_EVAL, progress=False,
              retrieval=dataclasses.replace(config, base_run=str(tmp_path / "missing")))


def test_missing_faiss_names_the_extra(tiny_data, base_run: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)
    with pytest.raises(Exception, match=r"seqrec\[retrieval\]"):
        augmented(tiny_data, base_run)


def test_plain_duorec_base_is_a_duorec(base_run: Path) -> None:
    assert isinstance(load_run(base_run).model, DuoRec)


def test_knowledge_base_matches_the_restored_weights_after_training(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, trainer = augmented(tiny_data, base_run, refresh_every=0)
    trainer.config = dataclasses.replace(trainer.config, epochs=2)
    trainer.fit()
    keys = model.knowledge.keys.copy()
    model.build_knowledge(trainer.terms[0].train_set)  # what the final weights encode
    np.testing.assert_allclose(model.knowledge.keys, keys, rtol=1e-5, atol=1e-6)


def test_matched_values_have_the_norm_of_h(tiny_data, base_run: Path) -> None:  # noqa: ANN001
    model, _ = augmented(tiny_data, base_run)
    model.eval()
    h = model.base.user_vector(histories(tiny_data, model))
    out = model.augment(h)
    torch.testing.assert_close(out.found.values.norm(dim=-1), h.norm(dim=-1)[:, None].expand(-1, 3))
    raw, _ = augmented(tiny_data, base_run, value_norm="raw")
    raw.eval()
    values = raw.augment(h).found.values
    assert values.norm(dim=-1).max() < h.norm(dim=-1).min()  # item vectors are shorter than encoder states
    torch.testing.assert_close(values, raw.item_embeddings()[torch.from_numpy(
        raw.knowledge.targets[raw.knowledge.search(raw.retriever(h).detach().numpy(), 3).ids])])
