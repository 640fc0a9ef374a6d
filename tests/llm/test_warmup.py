"""Format warm-up before GRPO: label-free rationales, well-formed targets, completion-only SFT with a tiny model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("trl")
import torch  # noqa: E402

from seqrec.errors import ConfigError  # noqa: E402
from seqrec.llm.grpo import GRPOSettings  # noqa: E402
from seqrec.llm.model_setup import prepare_lm  # noqa: E402
from seqrec.llm.prompting import PromptSettings, chat_prompts  # noqa: E402
from seqrec.llm.prompts import RatingScale, format_ok, parse_answer  # noqa: E402
from seqrec.llm.rating_rows import synthetic_rating_data  # noqa: E402
from seqrec.llm.rows import RatedItem, RatingRow  # noqa: E402
from seqrec.llm.stage_runs import read_stage  # noqa: E402
from seqrec.llm.warmup import (  # noqa: E402
    WarmupSettings,
    category_parts,
    pick_warmup_rows,
    reasoning_text,
    summarize_warmup,
    train_format_warmup,
    warmup_completion,
    warmup_dataset,
    warmup_trainer,
)
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402

DATA = synthetic_rating_data()
SETTINGS = PromptSettings(max_history=3)


def tiny():
    tokenizer = tiny_tokenizer()
    return prepare_lm(tiny_model(tokenizer), tokenizer)


def prompts(tokenizer, rows: list[RatingRow]) -> list[str]:
    return chat_prompts(rows, tokenizer, settings=SETTINGS)


def test_category_parts() -> None:
    assert category_parts("Old Man and the Sea, The (DVD), Movies & TV|Drama") == ("Movies & TV", "Drama")
    assert category_parts("A title alone") == ()


def test_reasoning_never_reads_the_label() -> None:
    for row in DATA.train[:50]:
        text = reasoning_text(row)
        for label in (1.0, 2.5, 5.0):
            assert reasoning_text(dataclasses.replace(row, label=label)) == text
        assert 2 <= text.count(".") and len(text.split()) < 60


def test_reasoning_uses_shared_specific_categories() -> None:
    history = (RatedItem("A, Movies & TV|Horror", 5.0), RatedItem("B, Movies & TV|Comedy", 1.0),
               RatedItem("C, Movies & TV|Horror|Ghosts", 4.0))
    row = RatingRow("train:0", "train", "u", "i", 1.0, "D, Movies & TV|Horror", history)
    text = reasoning_text(row)
    # "Movies & TV" is in every history item, so it does not count as shared; the two horror films do
    assert text == ("The user rated 3 past movies, 3.3 on average. 2 of them share Horror with the candidate, rated "
                    "5, 4 (4.5 on average). This evidence suggests a rating of about 5.")
    alone = reasoning_text(dataclasses.replace(row, target="E, Movies & TV|Western"))
    assert "None of them" in alone and alone.endswith("about 3.")
    empty = reasoning_text(dataclasses.replace(row, history=()), RatingScale(0.0, 10.0))
    assert empty.endswith("about 5.")
    assert reasoning_text(row, max_history=1).startswith("The user rated 1 past movies, 4.0")


def test_completion_is_well_formed_and_answers_the_label() -> None:
    for row in DATA.train[:50]:
        for label in (1.0, 3.0, 4.5):
            completion = warmup_completion(dataclasses.replace(row, label=label))
            assert format_ok(completion) and parse_answer(completion) == label
            assert completion.startswith("<think>\n") and completion.endswith(f"<answer>{label:g}</answer>")


def test_warmup_rows_avoid_the_grpo_rows() -> None:
    train = DATA.train[:20]
    grpo = train[:12]
    picked = pick_warmup_rows(train, grpo, 8, seed=1)
    assert {r.sample_id for r in picked} == {r.sample_id for r in train[12:]}
    more = pick_warmup_rows(train, grpo, 10, seed=1)  # only 8 are free: 2 come from the GRPO rows
    assert len(more) == 10 and len({r.sample_id for r in more}) == 10
    assert len({r.sample_id for r in more} & {r.sample_id for r in grpo}) == 2
    assert pick_warmup_rows(train, [], 5, seed=3) == pick_warmup_rows(train, [], 5, seed=3)
    assert [r.sample_id for r in pick_warmup_rows(train, [], 5, seed=3)] == sorted(
        [r.sample_id for r in pick_warmup_rows(train, [], 5, seed=3)], key=lambda s: int(s.split(":")[1]))
    with pytest.raises(ConfigError):
        pick_warmup_rows(train, [], -1)


def test_dataset_columns_and_the_loss_mask_covers_only_the_completion(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    rows = DATA.train[:2]
    chat = prompts(tokenizer, rows)
    data = warmup_dataset(tokenizer, rows, chat, max_history=3)
    assert data.column_names == ["prompt", "completion", "sample_id"]
    assert data["completion"][0] == warmup_completion(rows[0], max_history=3) + "<|im_end|>"
    with pytest.raises(ConfigError, match="one prompt per row"):
        warmup_dataset(tokenizer, rows, chat[:1])
    trainer = warmup_trainer(model, tokenizer, rows, chat, WarmupSettings(rows=2), tmp_path, progress=False,
                             max_history=3)
    example = trainer.train_dataset[0]
    batch = trainer.data_collator([example, trainer.train_dataset[1]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    first = next(i for i, label in enumerate(labels) if label != -100)
    kept = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(ids[:first]) == chat[0]  # the prompt is context only
    assert tokenizer.decode(kept) == data["completion"][0]  # the whole completion and its EOS are trained
    assert all(label == -100 for label in labels[first + len(kept):])  # padding


def test_warmup_changes_the_weights_and_lowers_the_loss(tmp_path: Path) -> None:
    model, tokenizer = tiny()
    rows = DATA.train[:4]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    settings = WarmupSettings(rows=4, epochs=6, lr=3e-2, batch_size=4)
    trained, log = train_format_warmup(model, tokenizer, rows, prompts(tokenizer, rows), settings, progress=False,
                                       max_history=3, output_dir=tmp_path)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6] and {r["split"] for r in log} == {"warmup"}
    assert {"loss", "mean_token_accuracy", "grad_norm", "learning_rate"} <= set(log[0])
    assert log[-1]["loss"] < log[0]["loss"] * 0.8
    changed = [name for name, p in trained.named_parameters() if not torch.equal(before[name], p.detach())]
    assert "lm_head.weight" in changed and "model.layers.0.mlp.up_proj.weight" in changed
    assert not trained.training and trained.config.use_cache and "forward" not in trained.__dict__
    assert not list(tmp_path.glob("checkpoint-*"))


def test_summarize_warmup_keeps_the_step_logs() -> None:
    history = [{"step": 1, "loss": 2.0, "mean_token_accuracy": 0.1, "epoch": 0.5, "entropy": 3.0},
               {"step": 2, "train_loss": 1.5, "train_runtime": 3.0}]
    assert summarize_warmup(history) == [{"step": 1, "split": "warmup", "loss": 2.0, "mean_token_accuracy": 0.1}]


def test_stage_runs_the_warmup_alone_with_zero_grpo_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqrec.llm.grpo as grpo
    from seqrec.llm.stage_config import GRPOStageConfig
    from seqrec.llm.stage_grpo import grpo_stage

    def no_grpo(*args, **kwargs):
        raise AssertionError("train_grpo must not run with steps=0")

    monkeypatch.setattr(grpo, "train_grpo", no_grpo)
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    warmup = WarmupSettings(rows=4, batch_size=2, lr=1e-2)
    config = GRPOStageConfig(model=str(tmp_path / "tiny"), max_history=3, warmup=warmup,
                             grpo=GRPOSettings(steps=0, max_completion_length=8))
    path = grpo_stage(config, tmp_path / "run", DATA)
    run = read_stage(path, "grpo")
    assert run.metrics["warmup_rows"] == 4 and run.metrics["steps"] == 0 and run.metrics["warmup_seconds"] > 0
    assert run.metrics["warmup_loss_first"] > 0 and "warmup_loss_last" in run.metrics
    assert run.config["warmup"]["rows"] == 4 and run.config["grpo"]["steps"] == 0
    assert [(r["step"], r["split"]) for r in run.history] == [(1, "warmup"), (2, "warmup")]
    assert (path / "model" / "model.safetensors").is_file()


def test_the_warmup_reports_to_tensorboard_inside_the_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from seqrec.llm.stage_config import GRPOStageConfig
    from seqrec.llm.stage_grpo import grpo_stage

    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    config = GRPOStageConfig.from_yaml(None, [f"model={tmp_path / 'tiny'}", "max_history=3", "grpo.steps=0",
                                              "warmup.rows=2", "warmup.batch_size=2", "warmup.report_to=tensorboard"])
    path = grpo_stage(config, tmp_path / "run", DATA)
    assert list((path / "logs" / "warmup").rglob("events.out.tfevents*"))
    assert read_stage(path, "grpo").config["warmup"]["report_to"] == ["tensorboard"]
