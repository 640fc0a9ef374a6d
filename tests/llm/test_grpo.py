"""SIREN GRPO: the two TRL reward functions, the prompt dataset, and one GRPO step with a tiny random chat model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402

from seqrec.errors import ConfigError  # noqa: E402
from seqrec.llm.grpo import (  # noqa: E402
    GRPOSettings,
    accuracy_reward,
    drop_double_bos,
    format_reward,
    make_rewards,
    rating_dataset,
    summarize_logs,
    train_grpo,
)
from seqrec.llm.model_setup import prepare_lm  # noqa: E402
from seqrec.llm.prompts import RatingScale, render  # noqa: E402
from seqrec.llm.rows import RatedItem, RatingRow  # noqa: E402
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402

PERFECT = "<think>a</think><answer>4</answer>"


def row(i: int, label: float) -> RatingRow:
    return RatingRow(sample_id=f"train:{i}", split="train", user=f"u{i}", item=f"i{i}", label=label,
                     target=f"Film {i}, Drama", history=(RatedItem("Old film, Comedy", 3.0),))


@pytest.mark.parametrize(("completion", "label", "fmt", "acc"), [
    (PERFECT, 4.0, 1.0, 2.0),
    ("<think>a</think><answer>4.5</answer>", 5.0, 1.0, 1.5),
    ("the rating is 4", 4.0, -1.0, -2.0),  # no tags, no answer
    ("<think>a</think><answer>3.25</answer>", 4.0, 1.0, 1.25),  # fractional: 2 − 0.75
    ("<think>a</think><answer>1</answer><answer>4</answer>", 4.0, -1.0, 2.0),  # two answers: the last counts
    ("<think>a</think><answer>7</answer>", 5.0, 1.0, 2.0),  # 7 is clipped to 5
    ("<think>a</think><answer>four</answer>", 4.0, 1.0, -2.0),  # not a number
    ("<answer>4</answer><think>a</think>", 4.0, -1.0, 2.0),  # tags out of order
])
def test_rewards_on_hand_made_completions(completion: str, label: float, fmt: float, acc: float) -> None:
    assert format_reward([completion]) == [fmt]
    assert accuracy_reward([completion], label=[label]) == pytest.approx([acc])
    rewards = make_rewards()
    assert [f([completion], label=[label])[0] for f in rewards] == pytest.approx([fmt, acc])


def test_accuracy_reward_uses_the_scale_and_logs_metrics() -> None:
    scale = RatingScale(0.0, 10.0)
    logged: dict[str, float] = {}
    _, accuracy = make_rewards(scale)
    completions = ["<think>x</think><answer>5</answer>", "<answer>12</answer>", "no answer"]
    scores = accuracy(completions, label=[10.0, 9.0, 1.0], log_metric=logged.__setitem__)
    assert scores == pytest.approx([0.0, 1.6, -2.0])  # 2 − 4·5/10; 12 → 10, 2 − 4·1/10; missing → −2
    assert logged == pytest.approx({"invalid": 1 / 3, "mae": 3.0})
    assert [getattr(f, "func", f).__name__ for f in make_rewards(scale)] == ["format_reward", "accuracy_reward"]


def test_rating_dataset_columns() -> None:
    rows = [row(0, 4.0), row(1, 2.0)]
    data = rating_dataset(rows, ["prompt a", "prompt b"])
    assert data.column_names == ["prompt", "label", "sample_id"]
    assert data["prompt"] == ["prompt a", "prompt b"] and data["label"] == [4.0, 2.0]
    assert data["sample_id"] == ["train:0", "train:1"]
    with pytest.raises(ConfigError, match="one prompt per row"):
        rating_dataset(rows, ["only one"])


class BosTokenizer:
    """Adds a BOS id like Llama-3 tokenizers do."""

    bos_token, bos_token_id = "<s>", 1

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [1, 2] if add_special_tokens else [2]}


def test_a_rendered_bos_is_dropped_only_when_the_tokenizer_adds_one() -> None:
    data = rating_dataset([row(0, 4.0), row(1, 2.0)], ["<s>chat", "chat"])
    assert drop_double_bos(BosTokenizer(), data)["prompt"] == ["chat", "chat"]
    assert drop_double_bos(tiny_tokenizer(), data) is data


def test_summarize_logs_renames_train_and_valid_entries() -> None:
    history = [{"step": 1, "reward": 0.5, "rewards/format_reward/mean": -1.0, "kl": 0.1, "loss": 0.2},
               {"step": 2, "eval_reward": 1.0, "eval_rewards/accuracy_reward/mean": 1.5},
               {"step": 2, "train_runtime": 3.0}]
    assert summarize_logs(history) == [
        {"step": 1, "split": "train", "reward": 0.5, "format_reward": -1.0, "kl": 0.1, "loss": 0.2},
        {"step": 2, "split": "valid", "reward": 1.0, "accuracy_reward": 1.5}]


def test_tags_survive_decoding_with_skip_special_tokens() -> None:
    tokenizer = tiny_tokenizer()
    _, tokenizer = prepare_lm(tiny_model(tokenizer), tokenizer)
    ids = tokenizer(PERFECT + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4 + 2 + 1  # four tag tokens, "a", "4", end of turn
    assert tokenizer.decode(ids, skip_special_tokens=True) == PERFECT


def steer_to_answers(model, tokenizer) -> None:
    """Let the random model sample only <answer>, </answer>, "4" and "2", so rewards differ inside a group."""
    allowed = tokenizer.convert_tokens_to_ids(["<answer>", "</answer>", "4", "2"])
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.fill_(-30.0)
        head.bias[allowed] = 0.0
    model.lm_head = head


def test_one_grpo_step_changes_the_weights(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model, tokenizer = prepare_lm(tiny_model(tokenizer), tokenizer)
    steer_to_answers(model, tokenizer)
    rows = [row(0, 4.0), row(1, 2.0)]
    prompts = [render(tokenizer, [{"role": "user", "content": f"rate film {i}"}]) for i in range(2)]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = GRPOSettings(group_size=8, prompts_per_step=2, max_completion_length=12, lr=1e-2, steps=1,
                            beta=0.04, weight_decay=0.0, max_prompt_length=64)
    trained, logs = train_grpo(model, tokenizer, (rows, prompts), settings, tmp_path, progress=False)
    log = logs[0]
    assert (log["step"], log["split"]) == (1, "train") and log["reward_std"] > 0 and log["grad_norm"] > 0
    changed = [name for name, p in trained.named_parameters() if not torch.equal(before[name], p.detach())]
    assert "lm_head.weight" in changed and "model.layers.0.mlp.up_proj.weight" in changed
    assert {"reward", "format_reward", "accuracy_reward", "kl", "completion_length", "mae"} <= set(log)
    assert log["reward"] == pytest.approx(log["format_reward"] + log["accuracy_reward"])
    assert "forward" not in trained.__dict__  # TRL's fused-head patch is undone
    assert not list(tmp_path.glob("checkpoint-*"))  # the caller saves


def test_too_long_prompts_are_refused(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model, tokenizer = prepare_lm(tiny_model(tokenizer), tokenizer)
    settings = GRPOSettings(group_size=2, prompts_per_step=1, max_prompt_length=5, steps=1)
    with pytest.raises(ConfigError, match="max_prompt_length=5"):
        train_grpo(model, tokenizer, ([row(0, 4.0)], ["a prompt of many characters"]), settings, tmp_path)


def test_validation_is_logged_and_micro_batches_accumulate(tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer()
    model, tokenizer = prepare_lm(tiny_model(tokenizer), tokenizer)
    steer_to_answers(model, tokenizer)
    rows = [row(i, 4.0) for i in range(4)]
    prompts = [render(tokenizer, [{"role": "user", "content": f"rate film {i}"}]) for i in range(4)]
    settings = GRPOSettings(group_size=4, prompts_per_step=2, micro_batch=4, max_completion_length=8, lr=1e-2,
                            epochs=1, eval_steps=1, valid_size=3, gradient_checkpointing=False)
    _, logs = train_grpo(model, tokenizer, (rows, prompts), settings, tmp_path, valid=(rows, prompts), progress=False)
    assert [(log["step"], log["split"]) for log in logs] == [(1, "train"), (1, "valid"), (2, "train"), (2, "valid")]
