"""Chat model backends for profile writing: one small protocol, a transformers model, an OpenAI-compatible server."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from seqrec.distill.prompts import Message
from seqrec.errors import ConfigError, SeqrecError
from seqrec.lm import chat_model

DEFAULT_CONTEXT = 8192  # when a model does not say (the paper assumed 8192 for Gemma-2)
RESUME_HINT = "profiles written so far are kept in the output file; rerun the same command to resume"


class ChatBackend(Protocol):
    """Generates one reply per conversation; counts tokens so long histories can be split to fit the context."""

    context_length: int

    def generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[str]: ...

    def count_tokens(self, text: str) -> int: ...


class TransformersChat:
    """Any transformers causal LM with a chat template; batched generation with left padding.

    `model` is a hub name, a local folder, the shortcut "smollm2", or an already built model (then pass
    `tokenizer`). A `gguf_file` inside the folder is dequantised on load (needs gguf and accelerate). Greedy
    decoding by default, so a rerun writes the same profiles; `temperature > 0` samples.
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, gguf_file: str | None = None, device: str | None = None,
                 context_length: int | None = None, temperature: float = 0.0) -> None:
        model, tokenizer = chat_model(model, tokenizer, gguf_file=gguf_file, device=device)
        self.model, self.tokenizer, self.temperature = model.eval(), tokenizer, temperature
        self.context_length = context_length or int(getattr(model.config, "max_position_embeddings", 0)
                                                     or DEFAULT_CONTEXT)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[str]:
        import torch

        texts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                 for c in conversations]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.model.device)
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else \
            {"do_sample": False}
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      **sampling)
        new = out[:, batch["input_ids"].shape[1]:]  # [B, T] generated tokens only
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def is_local_host(host: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(base_url: str, allow_http: bool) -> None:
    """Refuse a non-http(s) URL, and plain http to a non-local host unless `allow_http`."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint {base_url!r} is not an http(s) URL; give e.g. https://host/v1")
    if parts.scheme == "http" and not allow_http and not is_local_host(parts.hostname):
        raise ConfigError(f"refusing plain http to the non-local endpoint {base_url}: prompts (and any API key) "
                          "would travel unencrypted; use https://, or pass --allow-http (allow_http=True) on a "
                          "trusted network")


def api_key_from(variable: str) -> str:
    """The API key held by the environment variable `variable`; an error when it is unset or empty."""
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ConfigError(f"the API key variable {variable} (--api-key-env / api_key_env) is unset or empty; set "
                          f"it (export {variable}=...) or leave out --api-key-env for a server without a key")
    return key


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed, so the request (and its API key) goes only to the URL the user gave."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class OpenAICompatibleChat:
    """A server with the OpenAI chat-completions API (vLLM, llama.cpp server, Ollama, ...).

    An API key is sent only when given: `api_key_env` names the environment variable that holds it (or pass
    `api_key` itself). Plain http is refused for non-local hosts unless `allow_http`; redirects are not followed.
    Tokens are estimated as characters / 4 (no tokenizer is loaded).
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, api_key_env: str | None = None,
                 allow_http: bool = False, context_length: int = DEFAULT_CONTEXT, temperature: float = 0.0,
                 timeout: float = 120.0, parallel: int = 4) -> None:
        check_endpoint(base_url, allow_http)
        if api_key is not None and api_key_env is not None:
            raise ConfigError("give api_key or api_key_env, not both")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.context_length, self.temperature = model, context_length, temperature
        self.api_key = api_key_from(api_key_env) if api_key_env is not None else api_key
        self.timeout, self.parallel = timeout, max(1, parallel)
        self._opener = urllib.request.build_opener(NoRedirects)

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=min(self.parallel, max(len(conversations), 1))) as pool:
            return list(pool.map(lambda c: self._complete(c, max_new_tokens), conversations))

    def _complete(self, messages: list[Message], max_new_tokens: int) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                           "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise SeqrecError(f"{self.url} redirects (HTTP {exc.code}) to {exc.headers.get('Location')}; "
                                  "redirects are not followed: give the final base URL as the endpoint") from None
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise SeqrecError(f"{self.url} answered HTTP {exc.code}: {detail}; {RESUME_HINT}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SeqrecError(f"cannot reach the chat endpoint {self.url} ({reason}); {RESUME_HINT}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SeqrecError(f"{self.url} did not answer with JSON; is it an OpenAI-compatible endpoint?") from None
        return self._reply_text(payload)

    def _reply_text(self, payload: Any) -> str:
        """choices[0].message.content, stripped; "" stays "" (counted as an empty profile)."""
        try:
            choice = payload["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise SeqrecError(f"{self.url}: unexpected answer {str(payload)[:200]}; expected "
                              "choices[0].message.content") from None
        if not isinstance(content, str):
            found = "null" if content is None else type(content).__name__
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            raise SeqrecError(f"{self.url} answered without text (choices[0].message.content is {found}, "
                              f"finish_reason {reason}); check the served model, or raise --max-new-tokens if it "
                              f"ran out of tokens; {RESUME_HINT}")
        return content.strip()
