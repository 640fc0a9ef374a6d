"""PEFT LoRA helpers for SIREN: wrap a causal LM (base weights frozen), count, snapshot and restore the adapter."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from seqrec.errors import SeqrecError
from seqrec.lm import LLM_EXTRA


def require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise SeqrecError(f"hidden-state alignment (LoRA) needs the peft library: {LLM_EXTRA}") from None
    return peft


def wrap_lora(model: Any, r: int, alpha: float, dropout: float, target_modules: Sequence[str]) -> Any:
    """A PEFT model with LoRA (bias none) on the named linear layers; everything else is frozen. PEFT injects the
    adapters into `model` in place, so the original object carries them from now on."""
    peft = require_peft()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in target_modules if m not in present]
    if missing:
        raise SeqrecError(f"LoRA target modules {missing} are not in {type(model).__name__}; its modules include "
                          f"{', '.join(sorted(n for n in present if n.endswith('proj'))) or 'no *proj layers'}")
    config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                             bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft 0.21 calls transformers 5's deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return peft.get_peft_model(model, config)


def trainable(model: Any) -> dict[str, Any]:
    """Parameters that receive gradients, by name (the LoRA A/B matrices after `wrap_lora`)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def count_trainable(model: Any) -> int:
    return sum(p.numel() for p in trainable(model).values())


def adapter_state(model: Any) -> dict[str, Any]:
    """A detached copy of the trainable weights (the LoRA state to keep as the best checkpoint)."""
    return {name: p.detach().clone() for name, p in trainable(model).items()}


def load_adapter_state(model: Any, state: dict[str, Any]) -> None:
    """Copy a snapshot from `adapter_state` back into the model's trainable weights."""
    import torch

    params = trainable(model)
    if set(params) != set(state):
        raise SeqrecError("the adapter snapshot does not match the model's trainable weights")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])
