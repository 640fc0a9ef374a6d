"""The TRL internals seqrec relies on: these tests fail when an upgrade of TRL moves or changes one of them."""

from __future__ import annotations

import importlib.metadata
import inspect
import types
from pathlib import Path

import pytest

pytest.importorskip("trl")
import trl  # noqa: E402
import trl.trainer.grpo_trainer as grpo_trainer  # noqa: E402
from packaging.version import Version  # noqa: E402

from seqrec.errors import SeqrecError  # noqa: E402
from seqrec.llm import trl_compat  # noqa: E402
from seqrec.llm.grpo import GRPOSettings, grpo_config  # noqa: E402
from seqrec.llm.warmup import WarmupSettings, warmup_config  # noqa: E402
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402


def test_the_installed_trl_is_in_the_supported_range() -> None:
    low, high = trl_compat.SUPPORTED_TRL
    version = trl_compat.trl_version()
    assert Version(low) <= Version(version) < Version(high), (
        f"trl {version} is outside {low} <= v < {high}: check every shim in seqrec/llm/trl_compat.py against it, "
        "then move SUPPORTED_TRL")
    trl_compat.check_trl_version(version)  # neither raises nor warns


def test_versions_outside_the_range_are_refused_or_warned_about() -> None:
    with pytest.raises(SeqrecError, match=r"trl 0\.9\.0 is too old.*pip install 'trl>=1\.0,<2\.0'"):
        trl_compat.check_trl_version("0.9.0")
    with pytest.warns(UserWarning, match=r"trl 2\.1\.0 is newer than the versions seqrec supports"):
        trl_compat.check_trl_version("2.1.0")


def test_a_missing_trl_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(SeqrecError, match="need the trl library"):
        trl_compat.require_trl()


def test_the_patched_function_still_exists_with_its_signature() -> None:
    function = getattr(grpo_trainer, trl_compat.PATCHED)
    parameters = inspect.signature(function).parameters
    assert tuple(parameters) == trl_compat.PATCHED_PARAMETERS
    assert parameters["kwargs"].kind is inspect.Parameter.VAR_KEYWORD


def test_grpo_trainer_builds_its_reference_model_through_the_patched_name() -> None:
    source = inspect.getsource(trl.GRPOTrainer.__init__)
    assert f"self.ref_model = {trl_compat.PATCHED}(" in source, (
        "GRPOTrainer no longer builds its reference model with trl.trainer.grpo_trainer.create_model_from_path; "
        "reference_copy would leave it reloading the model from disk")


def test_reward_functions_still_receive_log_metric() -> None:
    source = inspect.getsource(trl.GRPOTrainer)
    assert 'reward_kwargs["log_metric"]' in source, "accuracy_reward logs mae and invalid through log_metric"


def test_reference_copy_gives_a_frozen_copy_and_restores_trl() -> None:
    model = tiny_model(tiny_tokenizer())
    original = getattr(grpo_trainer, trl_compat.PATCHED)
    with trl_compat.reference_copy(model, needed=True):
        reference = grpo_trainer.create_model_from_path("ignored", dtype="float32")
        assert reference is not model and not reference.training
        assert not any(p.requires_grad for p in reference.parameters())
    assert getattr(grpo_trainer, trl_compat.PATCHED) is original
    with pytest.raises(RuntimeError), trl_compat.reference_copy(model, needed=True):
        raise RuntimeError("trainer failed")
    assert getattr(grpo_trainer, trl_compat.PATCHED) is original
    with trl_compat.reference_copy(model, needed=False):
        assert getattr(grpo_trainer, trl_compat.PATCHED) is original


def test_reference_copy_refuses_a_trl_without_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(grpo_trainer, trl_compat.PATCHED)
    with pytest.raises(SeqrecError, match=r"has no trl\.trainer\.grpo_trainer\.create_model_from_path"):
        with trl_compat.reference_copy(object(), needed=True):
            pass


def test_reference_copy_refuses_a_changed_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpo_trainer, trl_compat.PATCHED, lambda config, **kwargs: None)
    with pytest.raises(SeqrecError, match="changed trl.trainer.grpo_trainer.create_model_from_path"):
        with trl_compat.reference_copy(object(), needed=True):
            pass


def test_checkpointing_option_is_a_field_of_both_trl_configs() -> None:
    for config_class in (trl.GRPOConfig, trl.SFTConfig):
        (name,) = trl_compat.checkpointing_options(config_class, True)
        assert name in config_class.__dataclass_fields__


def test_every_option_seqrec_passes_is_accepted_by_trl(tmp_path: Path) -> None:
    grpo = grpo_config(GRPOSettings(), tmp_path, progress=False, evaluate=True)
    assert isinstance(grpo, trl.GRPOConfig) and grpo.num_generations == 8 and grpo.report_to == []
    sft = warmup_config(WarmupSettings(), tmp_path, progress=False)
    assert isinstance(sft, trl.SFTConfig) and sft.completion_only_loss and sft.report_to == []


def test_restore_after_training_removes_an_instance_forward() -> None:
    model = tiny_model(tiny_tokenizer())
    model.forward = types.MethodType(lambda self, *args, **kwargs: None, model)  # as TRL's fused LM head does
    restored = trl_compat.restore_after_training(model, checkpointing=False)
    assert "forward" not in restored.__dict__ and restored.config.use_cache and not restored.training
