"""Chat model backends for profile writing: one small protocol, a transformers model, an OpenAI-compatible server."""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from seqrec.distill.prompts import Message
from seqrec.errors import SeqrecError
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


class OpenAICompatibleChat:
    """A server with the OpenAI chat-completions API (vLLM, llama.cpp server, Ollama, ...), over plain HTTP.

    Tokens are estimated as characters / 4 (no tokenizer is loaded); the API key defaults to $OPENAI_API_KEY.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, context_length: int = DEFAULT_CONTEXT,
                 temperature: float = 0.0, timeout: float = 120.0, parallel: int = 4) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.context_length, self.temperature = model, context_length, temperature
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.parallel = timeout, max(1, parallel)

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
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise SeqrecError(f"{self.url} answered HTTP {exc.code}: {detail}; {RESUME_HINT}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SeqrecError(f"cannot reach the chat endpoint {self.url} ({reason}); {RESUME_HINT}") from None
        except json.JSONDecodeError:
            raise SeqrecError(f"{self.url} did not answer with JSON; is it an OpenAI-compatible endpoint?") from None
        try:
            return str(payload["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError):
            raise SeqrecError(f"{self.url}: unexpected answer {str(payload)[:200]}; expected "
                              "choices[0].message.content") from None
