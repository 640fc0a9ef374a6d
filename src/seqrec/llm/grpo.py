"""SIREN stage 1: explicit-reasoning RL with GRPO (TRL `GRPOTrainer`) on rendered rating prompts.

The prompt is the rendered chat text ending with the generation prompt (`prompts.render`), so the completion starts
where the assistant writes and the model is expected to open with `<think>`. The tags are regular added tokens
(`model_setup.add_reasoning_tokens`), so TRL's `skip_special_tokens=True` decoding keeps them in the completions.
The reward is `format_reward + accuracy_reward` (spec §3), given to TRL as two functions so both are logged.
Multi-GPU (accelerate/DeepSpeed) and vLLM rollouts come from TRL when launched with `accelerate launch`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from seqrec.config import check_finite
from seqrec.errors import ConfigError, SeqrecError
from seqrec.llm.prompts import DEFAULT_SCALE, RatingScale, parse_answer
from seqrec.llm.report_to import check_report_to, report_to_option
from seqrec.llm.rewards import accuracy_score, format_score
from seqrec.llm.rows import RatingRow
from seqrec.llm.trl_compat import checkpointing_options, reference_copy, require_trl, restore_after_training

RewardFunc = Callable[..., list[float]]
LOG_KEYS = {  # TRL log name -> our name (an "eval_" prefix marks validation logs)
    "reward": "reward", "reward_std": "reward_std", "rewards/format_reward/mean": "format_reward",
    "rewards/accuracy_reward/mean": "accuracy_reward", "mae": "mae", "invalid": "invalid", "kl": "kl",
    "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio", "loss": "loss",
    "grad_norm": "grad_norm", "learning_rate": "learning_rate", "entropy": "entropy",
}


@dataclass
class GRPOSettings:
    """GRPO hyper-parameters; defaults follow the original VERL run (spec §3) except the batch size.

    `loss_type="dapo"` is TRL's token-mean over the whole generation batch (VERL's `loss_agg_mode=token-mean`);
    "bnpo" is the per-micro-batch token mean and "grpo" the per-sequence mean. `scale_rewards="group"` divides each
    group's centred rewards by their std (VERL's `norm_adv_by_std_in_grpo`). One optimizer step per generation batch
    of `prompts_per_step × group_size` completions, so training stays on-policy as in the original.
    """

    group_size: int = 8  # completions per prompt (TRL num_generations)
    prompts_per_step: int = 4  # prompts per optimizer step, over all processes
    micro_batch: int = 0  # completions per forward pass per device; 0 = the whole step's share (no accumulation)
    beta: float = 0.001  # KL coefficient (k3 estimator against the frozen initial model); 0 = no reference model
    lr: float = 1e-6
    epsilon: float = 0.2  # PPO clip range, low = high
    temperature: float = 1.0
    max_completion_length: int = 512
    max_prompt_length: int = 2048  # checked, not truncated: shorten the history when building prompts
    steps: int = -1  # optimizer steps; -1 = run `epochs` epochs
    epochs: float = 2.0
    seed: int = 0
    logging_steps: int = 1
    eval_steps: int = 0  # validate every N steps; 0 = off
    valid_size: int = 256  # validation prompts (a seeded random subset); 0 = all
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    loss_type: str = "dapo"  # TRL's loss_type: grpo, dr_grpo, dapo, bnpo, cispo, sapo, ...
    scale_rewards: Literal["group", "batch", "none"] = "group"
    gradient_checkpointing: bool = True
    use_vllm: bool = False
    report_to: tuple[str, ...] = ("none",)  # loggers: none, all, or e.g. [tensorboard, mlflow]

    def __post_init__(self) -> None:
        check_finite(self, "grpo")
        if self.group_size < 2:
            raise ConfigError(f"grpo.group_size must be at least 2 (got {self.group_size}); GRPO compares "
                              "completions")
        for key in ("prompts_per_step", "max_completion_length", "max_prompt_length", "logging_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"grpo.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("micro_batch", "eval_steps", "valid_size", "beta", "weight_decay", "max_grad_norm"):
            if getattr(self, key) < 0:
                raise ConfigError(f"grpo.{key} must be >= 0, got {getattr(self, key)}")
        for key in ("lr", "epsilon", "temperature", "epochs"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"grpo.{key} must be > 0, got {getattr(self, key)}")
        if self.steps < -1:
            raise ConfigError(f"grpo.steps must be -1 (run `epochs`), 0 (no GRPO) or more, got {self.steps}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ConfigError(f"grpo.scale_rewards must be group, batch or none, got {self.scale_rewards!r}")
        if not self.loss_type:
            raise ConfigError("grpo.loss_type must name a TRL loss type (e.g. dapo)")
        check_report_to(self.report_to, "grpo.report_to")


# --- data -----------------------------------------------------------------------------------------------------------

def rating_dataset(rows: Sequence[RatingRow], prompts: Sequence[str]) -> Any:
    """A `datasets.Dataset` of plain-text prompts (already rendered chat strings) with `label` and `sample_id`."""
    import datasets

    if len(rows) != len(prompts):
        raise ConfigError(f"{len(rows)} rating rows but {len(prompts)} prompts; give one prompt per row")
    if not rows:
        raise ConfigError("no rating rows to train on")
    return datasets.Dataset.from_dict({"prompt": list(prompts), "label": [float(r.label) for r in rows],
                                       "sample_id": [r.sample_id for r in rows]})


def check_prompt_lengths(tokenizer: Any, dataset: Any, max_length: int) -> None:
    """Raise when a prompt has more than `max_length` tokens (TRL does not truncate text prompts)."""
    lengths = [len(ids) for ids in tokenizer(list(dataset["prompt"]), add_special_tokens=False)["input_ids"]]
    long = [i for i, n in enumerate(lengths) if n > max_length]
    if long:
        first = long[0]
        raise ConfigError(f"{len(long)} prompts exceed max_prompt_length={max_length} tokens (e.g. "
                          f"{dataset['sample_id'][first]!r}: {lengths[first]}); use fewer history lines "
                          "(max_history / drop_oldest) or raise max_prompt_length")


def drop_double_bos(tokenizer: Any, dataset: Any) -> Any:
    """TRL tokenizes text prompts with special tokens; when the tokenizer adds a BOS and the rendered chat already
    starts with it (Llama-3 style templates), strip the rendered one so the prompt has a single BOS."""
    bos = getattr(tokenizer, "bos_token", None)
    probe = tokenizer("x")["input_ids"]
    if not bos or len(probe) == len(tokenizer("x", add_special_tokens=False)["input_ids"]):
        return dataset
    if probe[0] != tokenizer.bos_token_id:
        return dataset
    return dataset.map(lambda ex: {"prompt": ex["prompt"][len(bos):] if ex["prompt"].startswith(bos) else ex["prompt"]})


def _as_dataset(data: Any) -> Any:
    """A rating dataset from a `datasets.Dataset` or a (rows, prompts) pair."""
    if isinstance(data, tuple) and len(data) == 2:
        return rating_dataset(*data)
    return data


def _subset(dataset: Any, size: int, seed: int) -> Any:
    if size <= 0 or len(dataset) <= size:
        return dataset
    return dataset.select(sorted(random.Random(seed).sample(range(len(dataset)), size)))


# --- rewards --------------------------------------------------------------------------------------------------------

def format_reward(completions: list[str], **kw: Any) -> list[float]:
    """+1 for exactly one <think> </think> <answer> </answer> in order, else −1."""
    return [format_score(c) for c in completions]


def accuracy_reward(completions: list[str], label: list[float], scale: RatingScale = DEFAULT_SCALE,
                    **kw: Any) -> list[float]:
    """2 − 4|clip(ŷ) − y| / E_max from the last <answer>, −2 without a number; logs `mae` and `invalid` via TRL."""
    scores = [accuracy_score(c, float(y), scale) for c, y in zip(completions, label, strict=True)]
    log_metric = kw.get("log_metric")
    if log_metric is not None and completions:
        answers = [parse_answer(c) for c in completions]
        errors = [abs(scale.clip(a) - float(y)) for a, y in zip(answers, label, strict=True) if a is not None]
        log_metric("invalid", 1.0 - len(errors) / len(completions))
        if errors:
            log_metric("mae", sum(errors) / len(errors))
    return scores


def make_rewards(scale: RatingScale = DEFAULT_SCALE) -> list[RewardFunc]:
    """[format_reward, accuracy_reward for `scale`]; picklable, and TRL logs them by these names."""
    return [format_reward, partial(accuracy_reward, scale=scale)]


# --- training -------------------------------------------------------------------------------------------------------

def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _batching(settings: GRPOSettings) -> tuple[int, int]:
    """(per-device micro batch, gradient accumulation) so one optimizer step sees one whole generation batch."""
    per_device, rest = divmod(settings.prompts_per_step * settings.group_size, _world_size())
    if rest:
        raise ConfigError(f"prompts_per_step × group_size = {settings.prompts_per_step * settings.group_size} "
                          f"completions cannot be split over {_world_size()} processes")
    micro = settings.micro_batch or per_device
    if per_device % micro:
        raise ConfigError(f"micro_batch {micro} must divide the {per_device} completions per device and step")
    return micro, per_device // micro


def grpo_config(settings: GRPOSettings, output_dir: str | Path, progress: bool = True, evaluate: bool = False) -> Any:
    """The TRL `GRPOConfig` for `settings`: constant lr, AdamW, no saving, the configured loggers, bf16 on CUDA."""
    trl = require_trl()
    micro, accumulation = _batching(settings)
    options: dict[str, Any] = {"report_to": report_to_option(settings.report_to, "grpo.report_to")}
    if evaluate:
        options.update({"eval_strategy": "steps", "eval_steps": settings.eval_steps,
                        "per_device_eval_batch_size": micro, "num_generations_eval": 1})
    try:
        return _grpo_config(trl, settings, output_dir, progress, micro, accumulation, options)
    except ValueError as exc:  # TRL's own checks (e.g. an unknown loss_type)
        raise ConfigError(f"grpo: {exc}") from None


def _grpo_config(trl: Any, settings: GRPOSettings, output_dir: str | Path, progress: bool, micro: int,
                 accumulation: int, options: dict[str, Any]) -> Any:
    import torch

    cuda = torch.cuda.is_available()
    return trl.GRPOConfig(
        output_dir=str(output_dir), save_strategy="no", use_cpu=not cuda, bf16=cuda,
        seed=settings.seed, data_seed=settings.seed, disable_tqdm=not progress, logging_steps=settings.logging_steps,
        learning_rate=settings.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm, max_steps=settings.steps, num_train_epochs=settings.epochs,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
        num_generations=settings.group_size, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=1.0, top_k=0, beta=settings.beta, epsilon=settings.epsilon,
        loss_type=settings.loss_type, scale_rewards=settings.scale_rewards, num_iterations=1,
        use_bias_correction_kl=False, disable_dropout=True, use_vllm=settings.use_vllm, remove_unused_columns=False,
        **checkpointing_options(trl.GRPOConfig, settings.gradient_checkpointing), **options)


def unflag_dequantized_gguf(model: Any) -> None:
    """A GGUF checkpoint that transformers unpacked to plain float weights (e.g. the SmolLM2 shortcut) stays flagged
    as quantized, and `Trainer` refuses to fine-tune it; drop the flag so it trains (and saves) as a plain model."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or type(quantizer).__name__ != "GgufHfQuantizer":
        return
    if not all(p.is_floating_point() for p in model.parameters()) or getattr(quantizer, "packed_modules", None):
        raise SeqrecError("the GGUF model keeps packed quantized weights, which GRPO cannot fine-tune; load it "
                          "dequantized (transformers GgufConfig(dequantize=True)) or convert it to safetensors")
    for name in ("hf_quantizer", "is_quantized", "quantization_method"):  # as on a model loaded unquantized
        model.__dict__.pop(name, None)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def summarize_logs(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train/valid metrics per logged step from TRL's `state.log_history` (renamed, see `LOG_KEYS`)."""
    summary = []
    for entry in log_history:
        split = "valid" if "eval_reward" in entry else "train" if "reward" in entry else None
        if split is None:
            continue
        prefix = "eval_" if split == "valid" else ""
        row: dict[str, Any] = {"step": entry.get("step"), "split": split}
        row.update({ours: entry[prefix + key] for key, ours in LOG_KEYS.items() if prefix + key in entry})
        summary.append(row)
    return summary


def train_grpo(model: Any, tokenizer: Any, train: Any, settings: GRPOSettings | None = None,
               output_dir: str | Path = "grpo", valid: Any = None, progress: bool = True, *,
               scale: RatingScale = DEFAULT_SCALE) -> tuple[Any, list[dict[str, Any]]]:
    """GRPO-train a prepared model (`model_setup.prepare_lm`) on rating prompts; returns (model, log summary).

    `train` / `valid` are `rating_dataset(...)` results or (rows, prompts) pairs; `valid` is scored every
    `settings.eval_steps` steps on `settings.valid_size` prompts (one sampled completion each). Nothing is saved:
    the caller saves the returned model.
    """
    trl = require_trl()
    settings = settings or GRPOSettings()
    train_set = drop_double_bos(tokenizer, _as_dataset(train))
    check_prompt_lengths(tokenizer, train_set, settings.max_prompt_length)
    valid_set = None
    if valid is not None and settings.eval_steps > 0:
        valid_set = drop_double_bos(tokenizer, _subset(_as_dataset(valid), settings.valid_size, settings.seed))
        check_prompt_lengths(tokenizer, valid_set, settings.max_prompt_length)
    config = grpo_config(settings, output_dir, progress, evaluate=valid_set is not None)
    unflag_dequantized_gguf(model)
    with reference_copy(model, settings.beta != 0.0 and not hasattr(model, "peft_config")):
        trainer = trl.GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=make_rewards(scale),
                                  args=config, train_dataset=train_set, eval_dataset=valid_set)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    trainer.train()
    trained = trainer.accelerator.unwrap_model(trainer.model)
    return restore_after_training(trained, settings.gradient_checkpointing), summarize_logs(trainer.state.log_history)
