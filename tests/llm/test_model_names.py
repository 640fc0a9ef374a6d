"""Loading chat models by name: local folders, Hugging Face offline mode, hub failures as one-line errors, and never
the network in a test (any attempt fails it)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from seqrec import lm
from seqrec.distill.chat import TransformersChat
from seqrec.errors import SeqrecError
from seqrec.llm.model_setup import prepare_lm

transformers = pytest.importorskip("transformers")
from huggingface_hub import errors as hub_errors  # noqa: E402  (comes with transformers)

from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402

UNCACHED = "seqrec-test/not-a-cached-model"
LOADERS: dict[str, Callable[[str], object]] = {"chat": TransformersChat, "tokenizer": lm.load_tokenizer,
                                               "rating": prepare_lm}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-chat")
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_offline_mode_refuses_an_uncached_name(monkeypatch: pytest.MonkeyPatch, variable: str, loader: str) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(SeqrecError) as caught:
        LOADERS[loader](UNCACHED)
    message = str(caught.value)
    assert message.startswith(f"model '{UNCACHED}' is not a local folder and not in the Hugging Face cache, and "
                              "offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) forbids downloading it")
    assert f"hf download {UNCACHED} --local-dir DIR) and give the folder, or use smollm2" in message
    assert "\n" not in message


def hub_failure(error: Exception) -> Callable[..., object]:
    """A `from_pretrained` that fails as transformers does: an OSError raised from the hub's error."""
    def from_pretrained(*args: object, **kwargs: object) -> object:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your "
                      "connection.") from error

    return from_pretrained


RESPONSE = SimpleNamespace(headers={}, request=None)


@pytest.mark.parametrize(("error", "expected"), [
    (hub_errors.LocalEntryNotFoundError("no connection"),
     f"cannot download the chat model '{UNCACHED}': the Hugging Face hub is unreachable and the model is not cached"),
    (hub_errors.RepositoryNotFoundError("404", response=RESPONSE),
     f"the chat model '{UNCACHED}' is neither a local folder nor a model on the Hugging Face hub"),
    (hub_errors.GatedRepoError("403", response=RESPONSE),
     f"the chat model '{UNCACHED}' is gated on the Hugging Face hub"),
])
def test_hub_failures_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str) -> None:
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", hub_failure(error))
    with pytest.raises(SeqrecError) as caught:
        TransformersChat(UNCACHED)
    message = str(caught.value)
    assert message.startswith(expected) and f"hf download {UNCACHED}" in message and "\n" not in message


def test_a_missing_folder_is_named() -> None:
    with pytest.raises(SeqrecError, match="model folder ./no/such/model does not exist; give an existing folder"):
        TransformersChat("./no/such/model")


def test_folders_and_cached_names_load_offline(monkeypatch: pytest.MonkeyPatch, tiny_folder: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert TransformersChat(str(tiny_folder)).context_length == 4096
    asked = []

    def cached_snapshot(name: str, local_files_only: bool = False) -> str:
        asked.append((name, local_files_only))
        return str(tiny_folder)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached_snapshot)
    assert lm.load_tokenizer("org/cached").chat_template is not None
    assert asked == [("org/cached", True)]


def test_sentence_embedding_names_follow_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")
    from seqrec.text import sentence_embedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeqrecError, match=f"model '{UNCACHED}' is not a local folder.*all-MiniLM-L6-v2") as caught:
        sentence_embedder(UNCACHED)
    assert "smollm2" not in str(caught.value) and "\n" not in str(caught.value)
