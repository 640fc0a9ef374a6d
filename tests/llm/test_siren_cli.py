"""`seqrec llm`: every stage end to end on the planted synthetic rows with a tiny random model saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seqrec import cli
from seqrec.errors import RunError, SeqrecError
from seqrec.llm.rating_rows import synthetic_rating_data
from seqrec.llm.stage_config import SketchStageConfig
from seqrec.llm.stage_runs import read_stage
from seqrec.llm.stage_sketch import sketch_stage

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("faiss")
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402

runner = CliRunner()


def hashed_embedder(texts: list[str]) -> np.ndarray:
    """A deterministic bag-of-words embedding (no model download)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.replace("|", " ").replace(",", " ").split():
            out[row, sum(map(ord, word)) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def invoke(*args: str) -> None:
    result = runner.invoke(cli.app, ["llm", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model folder, a sketch run, a GRPO run and an SFT run."""
    folder = tmp_path_factory.mktemp("siren")
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(folder / "tiny")
    tokenizer.save_pretrained(folder / "tiny")
    sketch_stage(SketchStageConfig(data="synthetic", clusters=4, top_k=5, tokenizer=None), folder / "sketch",
                 synthetic_rating_data(), embedder=hashed_embedder)
    common = ["--data", "synthetic", "--sketch", str(folder / "sketch")]
    invoke("grpo", "--model", str(folder / "tiny"), *common, "--steps", "1", "--group-size", "2",
           "--prompts-per-step", "2", "--max-completion", "6", "--limit", "2", "--out", str(folder / "grpo"))
    invoke("align", str(folder / "tiny"), "--ce-weight", "1", *common, "--limit", "4", "--valid-limit", "2",
           "--epochs", "1", "--batch-size", "2", "--eval-every", "1", "--out", str(folder / "sft"))
    return folder


def test_sketch_run_holds_the_sketcher_and_the_token_report(runs: Path) -> None:
    run = read_stage(runs / "sketch", "sketch")
    assert run.metrics["topics"] == 4 and run.metrics["tokens_counted_by"] == "chars/4"
    assert run.metrics["prompt_tokens_raw"] > 0 and (runs / "sketch" / "sketch.json").is_file()


def test_grpo_run_saves_a_loadable_model(runs: Path) -> None:
    run = read_stage(runs / "grpo", "grpo")
    assert run.metrics["steps"] == 1 and run.metrics["rows"] == 2
    assert run.config["sketch"] == str(runs / "sketch") and run.config["grpo"]["group_size"] == 2
    assert (runs / "grpo" / "model" / "model.safetensors").is_file()


def test_sft_run_keeps_the_best_valid_checkpoint(runs: Path) -> None:
    run = read_stage(runs / "sft", "align")
    assert run.metrics["steps"] == 2 and run.metrics["best_step"] in (0, 1, 2)  # 0: training did not help
    assert [r["step"] for r in run.history] == [0, 1, 2] and all("valid_invalid_rate" in r for r in run.history)
    assert (runs / "sft" / "adapter").is_dir()


@pytest.mark.parametrize("predictor", ["sft", "grpo", "global-mean"])
def test_evaluate_writes_metrics_and_predictions(runs: Path, predictor: str) -> None:
    source = predictor if predictor == "global-mean" else str(runs / predictor)
    out = runs / f"eval-{predictor}"
    invoke("evaluate", source, "--data", "synthetic", "--limit", "5", "--out", str(out))
    run = read_stage(out, "evaluate")
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert run.metrics["n"] == 5 and len(predictions) == 5
    invalid = sum(p["prediction"] is None for p in predictions)
    assert run.metrics["invalid_rate"] == pytest.approx(invalid / 5)
    if predictor != "global-mean":
        assert run.metrics["generated_tokens"] == 1.0  # answer-only: one token per sample
        assert run.config["sketch"] == str(runs / "sketch")  # taken from the trained run


def test_cot_evaluation_counts_generated_tokens(runs: Path) -> None:
    out = runs / "eval-cot"
    invoke("evaluate", str(runs / "grpo"), "--data", "synthetic", "--mode", "cot", "--max-new-tokens", "5",
           "--limit", "3", "--out", str(out))
    metrics = read_stage(out).metrics
    assert metrics["mode"] == "cot" and 1 <= metrics["generated_tokens"] <= 5


def test_runs_are_never_overwritten_and_kinds_are_checked(runs: Path) -> None:
    result = runner.invoke(cli.app, ["llm", "evaluate", "global-mean", "--data", "synthetic", "--out",
                                     str(runs / "grpo")])
    assert isinstance(result.exception, RunError) and "already exists" in str(result.exception)
    result = runner.invoke(cli.app, ["llm", "evaluate", str(runs / "sketch"), "--data", "synthetic"])
    assert isinstance(result.exception, RunError) and "not an LLM grpo or align run" in str(result.exception)
    result = runner.invoke(cli.app, ["llm", "evaluate", "global-mean", "--data", "nowhere"])
    assert isinstance(result.exception, SeqrecError) and "unknown rating data" in str(result.exception)


def test_alignment_needs_correct_teacher_traces(runs: Path) -> None:
    result = runner.invoke(cli.app, ["llm", "align", str(runs / "grpo"), "--data", "synthetic", "--limit", "2",
                                     "--valid-limit", "2", "--trace-tokens", "4", "--out", str(runs / "siren")])
    assert isinstance(result.exception, SeqrecError) and "teacher traces" in str(result.exception)
    assert not (runs / "siren").exists()
