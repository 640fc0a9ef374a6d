"""The OpenAI-compatible backend against a local canned server: the API key only when named, no plain http to other
hosts, no redirects, replies without text refused; an unreachable endpoint keeps written rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from chat_server import canned_chat_server

from seqrec.data.splits import SplitData
from seqrec.distill.chat import OpenAICompatibleChat
from seqrec.distill.llm_profiles import write_llm_profiles
from seqrec.distill.profile_io import read_profile_texts
from seqrec.errors import ConfigError, SeqrecError

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


def test_no_api_key_is_sent_unless_its_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ambient-secret")
    monkeypatch.setenv("SEQREC_TEST_KEY", "named-secret")
    messages = [{"role": "user", "content": "x"}]
    with canned_chat_server("hi") as (url, received):
        OpenAICompatibleChat(url, "m").generate([messages], 5)
        OpenAICompatibleChat(url, "m", api_key_env="SEQREC_TEST_KEY").generate([messages], 5)
    assert [r["auth"] for r in received] == [None, "Bearer named-secret"]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_naming_an_unset_or_empty_key_variable_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SEQREC_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("SEQREC_TEST_KEY", value)
    with pytest.raises(ConfigError, match="SEQREC_TEST_KEY .*--api-key-env.* is unset or empty"):
        OpenAICompatibleChat("http://127.0.0.1:9", "m", api_key_env="SEQREC_TEST_KEY")
    with pytest.raises(ConfigError, match="not both"):
        OpenAICompatibleChat("http://127.0.0.1:9", "m", api_key="k", api_key_env="SEQREC_TEST_KEY")


@pytest.mark.parametrize("url", ["http://localhost:8000/v1", "http://127.0.0.1:9/v1", "http://127.8.0.1/v1",
                                 "http://[::1]:8000/v1", "https://api.example.com/v1", "HTTPS://API.EXAMPLE.COM/v1"])
def test_https_anywhere_and_http_to_loopback_are_accepted(url: str) -> None:
    assert OpenAICompatibleChat(url, "m").url == url + "/chat/completions"


@pytest.mark.parametrize("url", ["http://api.example.com/v1", "http://10.0.0.5:8000/v1", "http://[2001:db8::1]/v1",
                                 "http://localhost.example.com/v1"])
def test_plain_http_to_other_hosts_needs_allow_http(url: str) -> None:
    with pytest.raises(ConfigError, match=f"plain http to the non-local endpoint {re.escape(url)}.*--allow-http"):
        OpenAICompatibleChat(url, "m", api_key="k")  # refused on construction: no request can be sent
    assert OpenAICompatibleChat(url, "m", allow_http=True).url == url + "/chat/completions"


@pytest.mark.parametrize("url", ["ftp://host/v1", "localhost:8000/v1", "https:///v1"])
def test_an_endpoint_that_is_not_an_http_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="is not an http\\(s\\) URL"):
        OpenAICompatibleChat(url, "m")


def test_redirects_are_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQREC_TEST_KEY", "secret")
    with canned_chat_server() as (url, received):
        backend = OpenAICompatibleChat(url.replace("/v1", "/redirect/v1"), "m", api_key_env="SEQREC_TEST_KEY")
        with pytest.raises(SeqrecError, match="redirects \\(HTTP 302\\) to /v1/chat/completions.*final base URL"):
            backend.generate([[{"role": "user", "content": "x"}]], 5)
    assert [r["path"] for r in received] == ["/redirect/v1/chat/completions"]


@pytest.mark.parametrize(("content", "found"), [(None, "null"), (42, "int"), (["a"], "list")])
def test_a_reply_without_text_is_an_error_naming_the_endpoint(content: object, found: str) -> None:
    with canned_chat_server(content, exact=True) as (url, _):
        with pytest.raises(SeqrecError, match=f"{url}/chat/completions answered without text "
                                              f"\\(choices\\[0\\].message.content is {found}"):
            OpenAICompatibleChat(url, "m").generate([[{"role": "user", "content": "x"}]], 5)


def test_an_empty_reply_is_an_empty_profile(tiny_data: SplitData, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with canned_chat_server("  ", exact=True) as (url, _):
        report = write_llm_profiles(tiny_data, OpenAICompatibleChat(url, "m"), path, np.arange(2), progress=False)
    assert (report.written, report.empty) == (2, 2)
    assert set(read_profile_texts(path)["short"].values()) == {""}
