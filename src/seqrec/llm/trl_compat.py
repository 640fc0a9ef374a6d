"""Everything that depends on TRL's internals, behind one version check.

seqrec drives TRL's `GRPOTrainer` and `SFTTrainer` through their public configs, except in three places that reach
into TRL (or the transformers version under it):

- `reference_copy` replaces `trl.trainer.grpo_trainer.create_model_from_path` while a `GRPOTrainer` is built, so
  the KL reference model is a frozen copy of the policy instead of a reload of `config._name_or_path` (which lacks
  the added tag tokens, is a GGUF file, or is empty for a model built in memory);
- `restore_after_training` undoes what training leaves on the model: the fused-LM-head `forward` TRL binds to the
  instance (TRL ≥ 1.1x) and gradient checkpointing;
- `checkpointing_options` picks `activation_checkpointing` or `gradient_checkpointing`, whichever the config class
  has (transformers renamed it; the old name warns).

Supported: TRL `SUPPORTED_TRL[0]` ≤ version < `SUPPORTED_TRL[1]`. An older TRL is refused with a `SeqrecError`; a
newer one warns once, and `tests/llm/test_trl_compat.py` fails when an internal used here changes.
"""

from __future__ import annotations

import copy
import importlib.metadata
import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from seqrec.errors import SeqrecError
from seqrec.lm import LLM_EXTRA

SUPPORTED_TRL = ("1.0", "2.0")  # lowest supported version, first unsupported version
PATCHED = "create_model_from_path"  # in trl.trainer.grpo_trainer
PATCHED_PARAMETERS = ("model_id", "architecture", "kwargs")
_warned: set[str] = set()


def trl_version() -> str:
    """The installed TRL version; a `SeqrecError` with the install command when TRL is missing."""
    try:
        return importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        raise SeqrecError(f"GRPO and the format warm-up need the trl library: {LLM_EXTRA}") from None


def check_trl_version(version: str) -> None:
    """Refuse a TRL older than the supported range; warn (once per version) about one newer than it."""
    from packaging.version import Version

    low, high = SUPPORTED_TRL
    if Version(version) < Version(low):
        raise SeqrecError(f"trl {version} is too old: seqrec supports trl >= {low}, < {high}; "
                          f"upgrade it (pip install 'trl>={low},<{high}')")
    if Version(version) >= Version(high) and version not in _warned:
        _warned.add(version)
        warnings.warn(f"trl {version} is newer than the versions seqrec supports (>= {low}, < {high}); if GRPO or "
                      f"the warm-up fails, install 'trl<{high}'", stacklevel=2)


def require_trl() -> Any:
    """The `trl` module, after the version check."""
    check_trl_version(trl_version())
    try:
        import trl
    except ImportError as exc:
        raise SeqrecError(f"trl {trl_version()} is installed but does not import ({exc}); {LLM_EXTRA}") from None
    return trl


def _grpo_trainer_module() -> Any:
    """`trl.trainer.grpo_trainer`, checked to still have the function `reference_copy` replaces."""
    require_trl()
    import trl.trainer.grpo_trainer as grpo_trainer

    function = getattr(grpo_trainer, PATCHED, None)
    if not callable(function):
        raise SeqrecError(f"trl {trl_version()} has no trl.trainer.grpo_trainer.{PATCHED}, which seqrec replaces to "
                          f"give GRPO its reference model; install a supported trl (>= {SUPPORTED_TRL[0]}, "
                          f"< {SUPPORTED_TRL[1]})")
    names = tuple(inspect.signature(function).parameters)
    if names[:1] != PATCHED_PARAMETERS[:1]:
        raise SeqrecError(f"trl {trl_version()} changed trl.trainer.grpo_trainer.{PATCHED}{names}; install a "
                          f"supported trl (>= {SUPPORTED_TRL[0]}, < {SUPPORTED_TRL[1]})")
    return grpo_trainer


@contextmanager
def reference_copy(model: Any, needed: bool) -> Iterator[None]:
    """While it is open, a `GRPOTrainer` built with `model` gets a frozen deep copy of it as the KL reference.

    `needed` is False when TRL builds no reference model (beta 0, or a PEFT model whose adapter is disabled)."""
    if not needed:
        yield
        return
    grpo_trainer = _grpo_trainer_module()
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    original = getattr(grpo_trainer, PATCHED)
    setattr(grpo_trainer, PATCHED, lambda *args, **kwargs: reference)
    try:
        yield
    finally:
        setattr(grpo_trainer, PATCHED, original)


def checkpointing_options(config_class: Any, enabled: bool) -> dict[str, bool]:
    """`{"activation_checkpointing": enabled}` where the config class has it (newer transformers), else the old
    `gradient_checkpointing`."""
    new = "activation_checkpointing" in getattr(config_class, "__dataclass_fields__", {})
    return {"activation_checkpointing" if new else "gradient_checkpointing": enabled}


def restore_after_training(model: Any, checkpointing: bool) -> Any:
    """Undo the training patches on the returned model: the fused-LM-head forward and gradient checkpointing."""
    patched = model.get_base_model() if hasattr(model, "get_base_model") else model
    patched.__dict__.pop("forward", None)
    if checkpointing:
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
    model.config.use_cache = True
    return model.eval()
