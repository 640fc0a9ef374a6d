"""SIREN hidden-state alignment on a tiny random chat model: traces, teacher states by sample_id, the loss, LoRA(k,v)
training, the CE (SFT) mode and checkpoint selection."""

from __future__ import annotations

import math
import random

import pytest
import torch

from seqrec.errors import ConfigError, SeqrecError
from seqrec.llm.align import (
    AlignItem,
    AlignSettings,
    Trace,
    alignment_loss,
    last_position,
    select_items,
    split_trace,
    teacher_states,
    teacher_text,
    teacher_traces,
    train_alignment,
)
from seqrec.llm.inference import predict_answer_only, rating_metrics
from seqrec.llm.lora import count_trainable, trainable
from seqrec.llm.prompts import RatingScale, render
from seqrec.llm.rows import RatingRow

pytest.importorskip("transformers")
pytest.importorskip("peft")

SCALE = RatingScale(1.0, 5.0)


def items(tokenizer, n: int, prefix: str = "train") -> list[AlignItem]:
    return [AlignItem(f"{prefix}:{i}", render(tokenizer, [{"role": "user", "content": f"u{i} {'y' * i}"}]),
                      float(1 + i % 5)) for i in range(n)]


def quick(**changes) -> AlignSettings:
    base = {"lr": 1e-2, "warmup_steps": 0, "epochs": 2, "batch_size": 2, "eval_every": 100, "lora_dropout": 0.0}
    return AlignSettings(**{**base, **changes})


def random_teacher(ids: list[str], layers: int = 1, width: int = 16) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {i: torch.randn(layers, width, generator=generator) for i in ids}


def test_alignment_loss_is_exactly_zero_for_identical_states() -> None:
    states = torch.randn(3, 2, 16)
    for kind in ("cosine", "mse", "mse_zscore"):
        assert alignment_loss(states, states.clone(), kind).item() == 0.0
    with pytest.raises(ConfigError, match="cosine"):
        alignment_loss(states, states, "mae")


def test_alignment_loss_by_hand() -> None:
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)  # [B=1, L=2, d=2]
    teacher = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]], requires_grad=True)
    loss = alignment_loss(student, teacher)  # layer 0: 1 − 0; layer 1: 1 − 1/√2
    assert loss.item() == pytest.approx((1 + 1 - 1 / math.sqrt(2)) / 2)
    assert alignment_loss(student, teacher, layers=[1]).item() == pytest.approx(1 - 1 / math.sqrt(2))
    assert alignment_loss(student, teacher, "mse").item() == pytest.approx((1 + 1 + 1 + 0) / 4)
    loss.backward()
    assert teacher.grad is None and student.grad is not None  # the teacher is a constant


def test_split_trace_keeps_thinking_and_marks_exact_answers() -> None:
    right = split_trace("t:1", "<think>likes it</think>\n<answer>4</answer>", 4.0)
    assert right == Trace("t:1", "<think>likes it</think>", 4.0, True, right.completion)
    assert not split_trace("t:2", "<think>x</think><answer>3</answer>", 4.0).correct
    only_inside = split_trace("t:3", "<think><answer>4</answer></think>", 4.0)
    assert only_inside.prediction is None and not only_inside.correct
    bare = split_trace("t:4", "<answer>4</answer>", 4.0)
    assert bare.thinking == "" and bare.correct


def test_teacher_traces_follow_the_rows_by_sample_id(lm: tuple) -> None:
    model, tokenizer = lm
    rows = [RatingRow(f"train:{i}", "train", f"u{i}", f"i{i}", 4.0, "a film", ()) for i in range(2)]
    prompts = {"train:1": "<|im_start|>assistant\n", "train:0": "<|im_start|>user\nhi<|im_end|>\n"}
    outputs = iter(["<think>a</think><answer>4</answer>", "<think>b</think><answer>2</answer>"])

    def generate(input_ids, attention_mask, max_new_tokens, **kwargs):
        new = [tokenizer(next(outputs), add_special_tokens=False)["input_ids"] for _ in input_ids]
        width = max(map(len, new))
        return torch.cat([input_ids, torch.tensor([t + [0] * (width - len(t)) for t in new])], dim=1)

    model.generate = generate
    traces = teacher_traces(model, tokenizer, rows, prompts, SCALE, max_new_tokens=50, progress=False)
    assert [(t.sample_id, t.prediction, t.correct) for t in traces] == [("train:0", 4.0, True),
                                                                        ("train:1", 2.0, False)]


def test_teacher_states_are_keyed_by_sample_id(lm: tuple) -> None:
    model, tokenizer = lm
    prompts = {item.sample_id: item.prompt for item in items(tokenizer, 4)}
    traces = [Trace(sid, "<think>" + "z" * (3 * k) + "</think>", 4.0, k != 2) for k, sid in enumerate(prompts)]
    states = teacher_states(model, tokenizer, traces, prompts, batch_size=2, progress=False)
    assert sorted(states) == ["train:0", "train:1", "train:3"]
    assert all(s.shape == (1, 16) and s.dtype == torch.float32 for s in states.values())
    shuffled = random.Random(1).sample(traces, len(traces))
    for other in (teacher_states(model, tokenizer, shuffled, prompts, batch_size=3, progress=False),
                  teacher_states(model, tokenizer, traces, prompts, batch_size=1, progress=False)):
        assert sorted(other) == sorted(states)
        for sid, vectors in states.items():
            torch.testing.assert_close(other[sid], vectors, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        alone, _ = last_position(model, tokenizer, [teacher_text(prompts["train:3"], traces[3].thinking)])
    torch.testing.assert_close(states["train:3"], alone[0], atol=1e-5, rtol=1e-4)


def test_lora_trains_only_k_and_v_and_leaves_the_base_unchanged(lm: tuple) -> None:
    model, tokenizer = lm
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    train = items(tokenizer, 4)
    peft_model, _ = train_alignment(model, tokenizer, train, items(tokenizer, 2, "valid"), quick(epochs=1),
                                    random_teacher([i.sample_id for i in train]), progress=False)
    names = list(trainable(peft_model))
    assert names and all("lora_" in n and ("k_proj" in n or "v_proj" in n) for n in names)
    assert count_trainable(peft_model) == 2 * (8 * 16 + 16 * 8)  # 1 layer × {k, v} × (A: r×d + B: d×r)
    after = {name.replace(".base_layer", ""): p for name, p in peft_model.get_base_model().state_dict().items()
             if "lora_" not in name}
    assert sorted(after) == sorted(before)
    assert all(torch.equal(after[name], weight) for name, weight in before.items())


def test_alignment_training_lowers_the_loss(lm: tuple) -> None:
    model, tokenizer = lm
    train = items(tokenizer, 4)
    _, history = train_alignment(model, tokenizer, train, items(tokenizer, 2, "valid"), quick(epochs=6),
                                 random_teacher([i.sample_id for i in train]), progress=False)
    start, history = history[0], history[1:]  # step 0: the unaligned model, validated only
    assert start["step"] == 0 and "loss" not in start and "valid_mae_invalid_as_max" in start
    assert len(history) == 12 and [row["step"] for row in history] == list(range(1, 13))
    assert history[-1]["align"] < 0.7 * history[0]["align"]
    assert history[-1]["loss"] == history[-1]["align"]  # ce_weight 0: pure alignment
    assert history[-1]["valid_invalid_rate"] is not None and history[0]["valid_invalid_rate"] is None


def test_the_best_validation_checkpoint_is_restored(lm: tuple) -> None:
    model, tokenizer = lm
    train, valid = items(tokenizer, 4), items(tokenizer, 3, "valid")
    peft_model, history = train_alignment(model, tokenizer, train, valid, quick(epochs=3, eval_every=1, lr=0.1),
                                          random_teacher([i.sample_id for i in train]), progress=False)
    evaluated = [row for row in history if row["valid_invalid_rate"] is not None]  # mae is None without answers
    assert len(evaluated) == len(history) == 7 and history[0]["step"] == 0  # the start is a candidate too
    best = min(evaluated, key=lambda row: (row["valid_mae_invalid_as_max"], row["valid_invalid_rate"]))
    final = predict_answer_only(peft_model, tokenizer, [i.prompt for i in valid], SCALE, progress=False)
    metrics = rating_metrics(final, [i.label for i in valid], SCALE)
    assert (metrics["mae"], metrics["invalid_rate"]) == (best["valid_mae"], best["valid_invalid_rate"]) or \
        (metrics["mae"] is None and best["valid_mae"] is None)


def test_ce_mode_without_teacher_needs_ce_weight_one(lm: tuple) -> None:
    model, tokenizer = lm
    train, valid = items(tokenizer, 4), items(tokenizer, 2, "valid")
    with pytest.raises(SeqrecError, match="needs a teacher"):
        train_alignment(model, tokenizer, train, valid, quick(ce_weight=0.5), None, progress=False)
    _, history = train_alignment(model, tokenizer, train, valid, quick(ce_weight=1.0, epochs=4), None,
                                 progress=False)
    trained = history[1:]
    assert all(row["align"] is None for row in trained) and trained[-1]["ce"] < trained[0]["ce"]


def test_ratings_that_are_not_single_tokens_raise(lm: tuple) -> None:
    model, tokenizer = lm
    train = [AlignItem(f"train:{i}", "p", 4.5) for i in range(2)]
    with pytest.raises(SeqrecError, match=r"ratings \[4.5\] are not single tokens"):
        train_alignment(model, tokenizer, train, items(tokenizer, 1, "valid"), quick(ce_weight=1.0), None,
                        progress=False)


def test_sample_selection_is_seeded_and_order_free() -> None:
    pool = [AlignItem(f"train:{i}", "p", 3.0) for i in range(10)]
    teacher = {f"train:{i}": None for i in range(0, 10, 2)}  # the five correct traces
    settings = AlignSettings(training_ratio=0.6, batch_size=1)
    chosen = select_items(pool, teacher, settings)
    assert len(chosen) == 3 and all(i.sample_id in teacher for i in chosen)
    assert select_items(pool[::-1], teacher, settings) == chosen
    with pytest.raises(SeqrecError, match="usable train samples"):
        select_items(pool, {}, settings)
