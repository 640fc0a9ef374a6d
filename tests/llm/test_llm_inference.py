"""SIREN inference on a tiny random chat model: answer-only emits one token, CoT parsing, metrics by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.errors import SeqrecError
from seqrec.llm.inference import answer_only_prompt, predict_answer_only, predict_cot, rating_metrics
from seqrec.llm.prompts import ANSWER_ONLY_SUFFIX, RatingScale, parse_number, render

pytest.importorskip("transformers")

SCALE = RatingScale(1.0, 5.0)


def chat_prompts(tokenizer, n: int) -> list[str]:
    return [render(tokenizer, [{"role": "user", "content": f"user {i} rates {'x' * i}"}]) for i in range(n)]


def fake_generate(model, tokenizer, outputs: list[str], calls: list[dict]):
    """Replace model.generate: the k-th prompt gets the tokens of outputs[k] (cut at max_new_tokens), right-padded."""
    queue = list(outputs)

    def generate(input_ids, attention_mask, max_new_tokens, **kwargs):
        calls.append({"max_new_tokens": max_new_tokens, "rows": len(input_ids), **kwargs})
        new = [tokenizer(queue.pop(0), add_special_tokens=False)["input_ids"][:max_new_tokens] for _ in input_ids]
        width = max(len(t) for t in new)
        padded = torch.tensor([t + [tokenizer.pad_token_id] * (width - len(t)) for t in new])  # [B, T]
        return torch.cat([input_ids, padded], dim=1)

    model.generate = generate


def test_rating_metrics_by_hand() -> None:
    values, labels = [4.0, None, 2.0, 5.0], [5.0, 3.0, 2.0, 1.0]
    m = rating_metrics(values, labels, SCALE)
    assert (m["n"], m["n_valid"], m["invalid_rate"]) == (4, 3, 0.25)
    assert m["mae"] == pytest.approx(5 / 3) and m["rmse"] == pytest.approx(math.sqrt(17 / 3))  # errors −1, 0, 4
    assert m["mae_invalid_as_max"] == pytest.approx(7 / 4)  # the invalid one becomes 5: errors −1, 2, 0, 4
    assert m["rmse_invalid_as_max"] == pytest.approx(math.sqrt(21 / 4))
    assert m["exact_acc"] == 0.25


def test_an_invalid_output_is_never_a_correct_answer() -> None:
    m = rating_metrics([None, 5.0], [5.0, 5.0], SCALE)
    assert m["mae_invalid_as_max"] == 0.0 and m["exact_acc"] == 0.5 and m["mae"] == 0.0
    nothing = rating_metrics([None], [3.0], SCALE)
    assert nothing["mae"] is None and nothing["invalid_rate"] == 1.0 and nothing["mae_invalid_as_max"] == 2.0
    with pytest.raises(SeqrecError, match="2 predictions for 1 labels"):
        rating_metrics([1.0, 2.0], [1.0], SCALE)


def test_answer_only_prompt_appends_the_suffix_once() -> None:
    prompt = answer_only_prompt("chat")
    assert prompt == "chat" + ANSWER_ONLY_SUFFIX and answer_only_prompt(prompt) == prompt


def test_answer_only_generates_exactly_one_token(lm: tuple) -> None:
    model, tokenizer = lm
    calls, original = [], model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    model.generate = spy
    prompts = chat_prompts(tokenizer, 3)
    result = predict_answer_only(model, tokenizer, prompts, SCALE, batch_size=2, progress=False)
    assert [c["max_new_tokens"] for c in calls] == [1, 1] and not calls[0]["do_sample"]
    assert result.generated_tokens == [1, 1, 1] and len(result.per_sample_latency) == 3
    assert result.values == [parse_number(text) for text in result.completions]
    lengths = [len(tokenizer(answer_only_prompt(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    assert result.input_tokens == lengths and result.seconds > 0


def test_answer_only_keeps_invalid_outputs_as_none(lm: tuple) -> None:
    model, tokenizer = lm
    calls: list[dict] = []
    fake_generate(model, tokenizer, ["4", "x", "<|im_end|>"], calls)
    result = predict_answer_only(model, tokenizer, chat_prompts(tokenizer, 3), SCALE, progress=False)
    assert result.values == [4.0, None, None] and result.completions == ["4", "x", ""]
    assert result.invalid_rate == pytest.approx(2 / 3)


def test_cot_parses_the_last_answer_and_counts_tokens_to_eos(lm: tuple) -> None:
    model, tokenizer = lm
    outputs = ["<think>ok</think>\n<answer>3</answer><|im_end|>",
               "<think>a</think><answer>4.5</answer><answer>2</answer><|im_end|>",
               "<think>never ending thoughts"]
    calls: list[dict] = []
    fake_generate(model, tokenizer, outputs, calls)
    result = predict_cot(model, tokenizer, chat_prompts(tokenizer, 3), SCALE, max_new_tokens=20, batch_size=2,
                         progress=False)
    assert [c["max_new_tokens"] for c in calls] == [20, 20]
    assert result.values == [3.0, 2.0, None]
    assert result.completions[0] == "<think>ok</think>\n<answer>3</answer>"  # tags survive skip_special_tokens
    assert result.generated_tokens == [len(tokenizer(o, add_special_tokens=False)["input_ids"][:20])
                                       for o in outputs]
    assert result.generated_tokens[2] == 20


def test_cot_on_the_tiny_model_respects_the_token_limit(lm: tuple) -> None:
    model, tokenizer = lm
    result = predict_cot(model, tokenizer, chat_prompts(tokenizer, 2), SCALE, max_new_tokens=4, progress=False)
    assert len(result.values) == 2 and all(1 <= n <= 4 for n in result.generated_tokens)
    assert not model.training
