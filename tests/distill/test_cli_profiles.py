"""`seqrec profiles write|embed` end to end on the synthetic dataset, with a cheap stand-in text embedder."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from chat_server import canned_chat_server
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli, text
from seqrec.cli import common
from seqrec.distill.profile_io import read_profile_texts

runner = CliRunner()


def letter_counts(texts: list[str]) -> np.ndarray:  # [T, 26]
    return np.array([[t.lower().count(c) for c in string.ascii_lowercase] for t in texts], dtype=np.float32)


@pytest.fixture(autouse=True)
def cheap_embedder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the MiniLM factory (it may or may not be installed); records the model names asked for."""
    asked: list[str] = []

    def factory(model: str = text.DEFAULT_TEXT_MODEL, max_tokens: int | None = None, **_: object) -> text.Embedder:
        asked.append(f"{model}@{max_tokens}" if max_tokens else model)
        return letter_counts

    monkeypatch.setattr(text, "sentence_embedder", factory)
    monkeypatch.setattr(common.console, "width", 300)
    return asked


def test_write_then_embed_with_pca(tmp_path: Path, cheap_embedder: list[str]) -> None:
    texts, vectors = tmp_path / "profiles.jsonl", tmp_path / "profiles.json"
    result = runner.invoke(cli.app, ["profiles", "write", "synthetic", "--out", str(texts), "--limit", "40"])
    assert result.exit_code == 0, result.output
    assert "40 profiles written" in result.output and "per 1,000 users" in result.output
    profiles = read_profile_texts(texts)["stats"]
    assert list(profiles) == [str(u) for u in range(1, 41)] and "- Genres: " in profiles["1"]
    again = runner.invoke(cli.app, ["profiles", "write", "synthetic", "--out", str(texts), "--limit", "50"])
    assert "10 profiles written" in again.output and "40 already there" in again.output
    result = runner.invoke(cli.app, ["profiles", "embed", str(texts), "--out", str(vectors), "--reduce", "pca",
                                     "--dim", "8", "--max-tokens", "64"])
    assert result.exit_code == 0, result.output
    assert "stats: 50 users × 8" in result.output and cheap_embedder == ["all-MiniLM-L6-v2@64"]
    saved = json.loads(vectors.read_text())
    assert len(saved) == 50 and {len(v) for v in saved.values()} == {8}


def test_llm_writer_through_an_endpoint(tmp_path: Path) -> None:
    out = tmp_path / "llm.jsonl"
    with canned_chat_server() as (url, received):
        result = runner.invoke(cli.app, ["profiles", "write", "synthetic", "--out", str(out), "--writer", "llm",
                                         "--endpoint", url, "--endpoint-model", "m", "--prompt", "aspects",
                                         "--limit", "2", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert "6 profiles written" in result.output and len(received) == 6
    assert {a: len(u) for a, u in read_profile_texts(out).items()} == {"needs": 2, "categories": 2, "patterns": 2}


def test_the_endpoint_gets_a_key_only_from_api_key_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ambient-secret")
    monkeypatch.setenv("SEQREC_TEST_KEY", "named-secret")
    with canned_chat_server() as (url, received):
        for name, extra in (("a", []), ("b", ["--api-key-env", "SEQREC_TEST_KEY"])):
            result = runner.invoke(cli.app, ["profiles", "write", "synthetic", "--out", str(tmp_path / f"{name}.jsonl"),
                                             "--writer", "llm", "--endpoint", url, "--endpoint-model", "m",
                                             "--limit", "1", *extra])
            assert result.exit_code == 0, result.output
    assert [r["auth"] for r in received] == [None, "Bearer named-secret"]


def test_user_mistakes_exit_2_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    out = str(tmp_path / "p.jsonl")
    monkeypatch.delenv("SEQREC_TEST_UNSET_KEY", raising=False)
    cases = [
        (["profiles", "write", "synthetic", "--out", out, "--writer", "magic"], "unknown --writer 'magic'"),
        (["profiles", "write", "nope", "--out", out], "unknown dataset 'nope'"),
        (["profiles", "write", "synthetic", "--out", out, "--writer", "llm", "--endpoint", "http://127.0.0.1:9"],
         "--endpoint needs --endpoint-model"),
        (["profiles", "write", "synthetic", "--out", out, "--writer", "llm", "--endpoint", "http://127.0.0.1:9",
          "--endpoint-model", "m", "--limit", "1"], "cannot reach the chat endpoint http://127.0.0.1:9"),
        (["profiles", "write", "synthetic", "--out", out, "--writer", "llm", "--endpoint", "http://example.com/v1",
          "--endpoint-model", "m"], "refusing plain http to the non-local endpoint http://example.com/v1"),
        (["profiles", "write", "synthetic", "--out", out, "--writer", "llm", "--endpoint", "https://example.com/v1",
          "--endpoint-model", "m", "--api-key-env", "SEQREC_TEST_UNSET_KEY"],
         "the API key variable SEQREC_TEST_UNSET_KEY (--api-key-env / api_key_env) is unset or empty"),
        (["profiles", "write", "synthetic", "--out", out, "--writer", "llm", "--api-key-env", "OPENAI_API_KEY"],
         "--api-key-env and --allow-http apply to --endpoint only"),
        (["profiles", "embed", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "e.json")],
         "profile text file not found"),
    ]
    for argv, expected in cases:
        assert_cli_error(argv, expected, monkeypatch, capsys)
    runner.invoke(cli.app, ["profiles", "write", "synthetic", "--out", out, "--limit", "3"])
    (tmp_path / "e.json").write_text("{}")
    assert_cli_error(["profiles", "embed", out, "--out", str(tmp_path / "e.json")], "already exists", monkeypatch,
                     capsys)
    assert_cli_error(["profiles", "embed", out, "--out", str(tmp_path / "f.json"), "--reduce", "pca", "--dim", "99"],
                     "lower --dim", monkeypatch, capsys)
    assert (tmp_path / "e.json").read_text() == "{}"
