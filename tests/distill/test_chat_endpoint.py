"""The OpenAI-compatible backend against a local canned server; an unreachable endpoint keeps written rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from chat_server import canned_chat_server

from seqrec.data.splits import SplitData
from seqrec.distill.chat import OpenAICompatibleChat
from seqrec.distill.llm_profiles import write_llm_profiles
from seqrec.distill.profile_io import read_profile_texts
from seqrec.errors import SeqrecError

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_requests_follow_the_chat_completions_api() -> None:
    with canned_chat_server("hello") as (url, received):
        backend = OpenAICompatibleChat(url, "tiny-model", api_key="k")
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "history"}]
        assert backend.generate([messages], max_new_tokens=7) == ["hello #1"]
    assert received == [{"path": "/v1/chat/completions", "auth": "Bearer k", "model": "tiny-model",
                         "messages": messages, "max_tokens": 7, "temperature": 0.0}]
    assert backend.count_tokens("x" * 9) == 3 and backend.context_length == 8192


def test_profiles_through_an_endpoint(tiny_data: SplitData, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with canned_chat_server() as (url, received):
        report = write_llm_profiles(tiny_data, OpenAICompatibleChat(url, "m"), path, np.arange(5), batch_size=2,
                                    progress=False)
    texts = read_profile_texts(path)["short"]
    assert report.written == 5 and len(received) == 5 and len(texts) == 5
    assert all(t.startswith("Enjoys drama; 60% Drama. #") for t in texts.values())
    first_user_history = received[0]["messages"][1]["content"]
    assert first_user_history.startswith("Interaction history (") and "[genre: " in first_user_history


def test_an_unreachable_endpoint_keeps_what_was_written(tiny_data: SplitData, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with canned_chat_server() as (url, _):
        write_llm_profiles(tiny_data, OpenAICompatibleChat(url, "m"), path, np.arange(2), progress=False)
    with pytest.raises(SeqrecError, match=f"cannot reach the chat endpoint {UNREACHABLE}/chat/completions.*"
                                          "profiles written so far are kept.*rerun"):
        write_llm_profiles(tiny_data, OpenAICompatibleChat(UNREACHABLE, "m", timeout=5), path, np.arange(4),
                           progress=False)
    assert len(read_profile_texts(path)["short"]) == 2
    with canned_chat_server() as (url, received):
        report = write_llm_profiles(tiny_data, OpenAICompatibleChat(url, "m"), path, np.arange(4), progress=False)
    assert (report.written, report.cached, len(received)) == (2, 2, 2)


def test_http_errors_and_odd_answers_are_reported() -> None:
    messages = [{"role": "user", "content": "x"}]
    with canned_chat_server() as (url, _):
        with pytest.raises(SeqrecError, match="answered HTTP 404"):
            OpenAICompatibleChat(url + "/wrong", "m").generate([messages], 5)
