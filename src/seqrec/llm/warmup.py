"""Format warm-up (cold start) before GRPO: a short supervised pass on `<think>…</think><answer>label</answer>`.

Small chat models (e.g. SmolLM2-135M) never write the reasoning/answer tags by themselves, so every GRPO rollout
scores −3, the group std is 0 and GRPO has no signal. As in R1-style pipelines, a few hundred supervised examples
teach the output format first. The target completion is a short rationale built only from the row's rated history
(`reasoning_text`: the user's mean rating and the ratings of past items that share the candidate's categories),
followed by the TRUE rating in `<answer>`. The rationale never reads the label; it is evidence, not a derivation of
the answer, so the model learns the format (and a plausible way to reason) without being taught a fixed rule.

Training is TRL's `SFTTrainer` on a prompt–completion dataset (the rendered chat prompt + the completion and EOS),
so the loss covers the completion only; full fine-tune, no packing, nothing saved.
"""

from __future__ import annotations

import math
import random
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqrec.config import check_finite
from seqrec.errors import ConfigError
from seqrec.llm.grpo import drop_double_bos, unflag_dequantized_gguf
from seqrec.llm.prompts import ANSWER, DEFAULT_SCALE, END_ANSWER, END_THINK, THINK, RatingScale
from seqrec.llm.report_to import check_report_to, report_to_option
from seqrec.llm.rows import RatedItem, RatingRow
from seqrec.llm.trl_compat import checkpointing_options, require_trl, restore_after_training

MAX_SHOWN_RATINGS = 5  # ratings of matching items quoted in the rationale (the most recent ones)
MAX_SHOWN_CATEGORIES = 2  # shared category names quoted in the rationale
LOG_KEYS = ("loss", "mean_token_accuracy", "grad_norm", "learning_rate")  # kept from TRL's SFT logs


@dataclass
class WarmupSettings:
    """Format warm-up (cold-start SFT) before GRPO; `rows=0` turns it off."""

    rows: int = 0  # train rows to warm up on (a seeded sample, disjoint from the GRPO rows when possible); 0 = off
    epochs: float = 1.0
    lr: float = 5e-5
    batch_size: int = 4
    max_length: int = 2048  # prompt + completion tokens; longer examples are left out (with a warning)
    seed: int = 0
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # linear lr warm-up over this fraction of the steps, then linear decay to 0
    gradient_checkpointing: bool = False
    report_to: tuple[str, ...] = ("none",)  # loggers: none, all, or e.g. [tensorboard]

    def __post_init__(self) -> None:
        check_finite(self, "warmup")
        for key in ("rows", "weight_decay"):
            if getattr(self, key) < 0:
                raise ConfigError(f"warmup.{key} must be >= 0, got {getattr(self, key)}")
        for key in ("batch_size", "max_length"):
            if getattr(self, key) < 1:
                raise ConfigError(f"warmup.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("epochs", "lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"warmup.{key} must be > 0, got {getattr(self, key)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        check_report_to(self.report_to, "warmup.report_to")


# --- targets --------------------------------------------------------------------------------------------------------

def category_parts(text: str) -> tuple[str, ...]:
    """The category path of an item text "title, cat1|cat2|…" split into its parts; () without a path."""
    if ", " not in text:
        return ()
    path = text.rsplit(", ", 1)[1]
    return tuple(part.strip() for part in path.split("|") if part.strip())


def _generic(history: Sequence[RatedItem]) -> set[str]:
    """Category parts in at least 3/4 of the history items ("Movies & TV"): they say nothing specific (and the
    ratings of the items that carry them are about the user's overall mean anyway)."""
    counts = Counter(part for item in history for part in set(category_parts(item.text)))
    return {part for part, n in counts.items() if 4 * n >= 3 * len(history)}


def _rounded(value: float, scale: RatingScale) -> float:
    return scale.clip(float(math.floor(value + 0.5)))


def _ratings(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def reasoning_text(row: RatingRow, scale: RatingScale = DEFAULT_SCALE, *, category: str = "movie",
                   max_history: int = 10) -> str:
    """A short deterministic rationale from the last `max_history` rated items (what the prompt shows) and the
    candidate's categories: the user's mean rating, the ratings of past items sharing a specific category with the
    candidate, and the rounded mean of that evidence (of all past ratings when nothing matches). Never reads
    `row.label`."""
    history = row.history[-max_history:] if max_history > 0 else ()
    if not history:
        middle = _rounded((scale.low + scale.high) / 2, scale)
        return (f"The user has not rated any {category} yet, so the middle of the scale suggests a rating of "
                f"about {middle:g}.")
    overall = sum(h.rating for h in history) / len(history)
    sentences = [f"The user rated {len(history)} past {category}s, {overall:.1f} on average."]
    generic = _generic(history)
    wanted = [part for part in category_parts(row.target) if part not in generic]
    matches = [h for h in history if set(category_parts(h.text)) & set(wanted)]
    if matches:
        shared = Counter(part for h in matches for part in category_parts(h.text) if part in wanted)
        names = [part for part, _ in sorted(shared.items(), key=lambda kv: (-kv[1], wanted.index(kv[0])))]
        evidence = sum(h.rating for h in matches) / len(matches)
        shown = [h.rating for h in matches[-MAX_SHOWN_RATINGS:]]
        subject = "1 of them shares" if len(matches) == 1 else f"{len(matches)} of them share"
        sentences.append(f"{subject} {' or '.join(names[:MAX_SHOWN_CATEGORIES])} with the candidate, rated "
                         f"{_ratings(shown)} ({evidence:.1f} on average).")
        sentences.append(f"This evidence suggests a rating of about {_rounded(evidence, scale):g}.")
    else:
        sentences.append("None of them shares a specific category with the candidate.")
        sentences.append(f"The user's average suggests a rating of about {_rounded(overall, scale):g}.")
    return " ".join(sentences)


def warmup_completion(row: RatingRow, scale: RatingScale = DEFAULT_SCALE, *, category: str = "movie",
                      max_history: int = 10) -> str:
    """"<think>\\n{rationale}\\n</think>\\n<answer>{label}</answer>": the rationale from the history only, the
    answer the TRUE label (supervised)."""
    reasoning = reasoning_text(row, scale, category=category, max_history=max_history)
    return f"{THINK}\n{reasoning}\n{END_THINK}\n{ANSWER}{row.label:g}{END_ANSWER}"


# --- data -----------------------------------------------------------------------------------------------------------

def pick_warmup_rows(train: Sequence[RatingRow], taken: Sequence[RatingRow], size: int, seed: int = 0
                     ) -> list[RatingRow]:
    """A seeded sample of `size` train rows, none of them in `taken` (the GRPO rows) while enough others remain;
    only the shortfall is drawn from `taken`. Returned in train order."""
    if size < 0:
        raise ConfigError(f"warm-up rows must be >= 0 (got {size})")
    taken_ids = {r.sample_id for r in taken}
    free = [i for i, r in enumerate(train) if r.sample_id not in taken_ids]
    rng = random.Random(seed)
    if len(free) >= size:
        keep = rng.sample(free, size)
    else:
        used = [i for i, r in enumerate(train) if r.sample_id in taken_ids]
        keep = free + rng.sample(used, min(size - len(free), len(used)))
    return [train[i] for i in sorted(keep)]


def warmup_dataset(tokenizer: Any, rows: Sequence[RatingRow], prompts: Sequence[str],
                   scale: RatingScale = DEFAULT_SCALE, *, category: str = "movie", max_history: int = 10) -> Any:
    """A prompt–completion `datasets.Dataset`: the rendered chat prompt and `warmup_completion` + EOS."""
    import datasets

    if len(rows) != len(prompts):
        raise ConfigError(f"{len(rows)} rating rows but {len(prompts)} prompts; give one prompt per row")
    if not rows:
        raise ConfigError("no rating rows to warm up on")
    eos = tokenizer.eos_token or ""
    completions = [warmup_completion(r, scale, category=category, max_history=max_history) + eos for r in rows]
    return datasets.Dataset.from_dict({"prompt": list(prompts), "completion": completions,
                                       "sample_id": [r.sample_id for r in rows]})


def _fitting(tokenizer: Any, dataset: Any, max_length: int) -> Any:
    """Leave out examples over `max_length` tokens: TRL would cut their completion (and its end of turn)."""
    texts = [p + c for p, c in zip(dataset["prompt"], dataset["completion"], strict=True)]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    if not keep:
        raise ConfigError(f"every warm-up example exceeds max_length={max_length} tokens (the shortest has "
                          f"{min(lengths)}); raise the warm-up max_length or shorten the prompts")
    if len(keep) < len(lengths):
        warnings.warn(f"{len(lengths) - len(keep)} of {len(lengths)} warm-up examples exceed max_length="
                      f"{max_length} tokens and are left out", stacklevel=3)
        return dataset.select(keep)
    return dataset


# --- training -------------------------------------------------------------------------------------------------------

def warmup_config(settings: WarmupSettings, output_dir: str | Path, progress: bool = True) -> Any:
    """The TRL `SFTConfig`: completion-only loss, no packing, no saving, the configured loggers, bf16 on CUDA, fp32
    on CPU."""
    import torch

    trl = require_trl()
    report_to = report_to_option(settings.report_to, "warmup.report_to")
    cuda = torch.cuda.is_available()
    return trl.SFTConfig(
        output_dir=str(output_dir), report_to=report_to, save_strategy="no", use_cpu=not cuda, bf16=cuda, fp16=False,
        seed=settings.seed, data_seed=settings.seed, disable_tqdm=not progress, logging_steps=1,
        learning_rate=settings.lr, lr_scheduler_type="linear", warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay, num_train_epochs=settings.epochs, max_steps=-1,
        per_device_train_batch_size=settings.batch_size, gradient_accumulation_steps=1,
        max_length=settings.max_length, packing=False, padding_free=False, completion_only_loss=True,
        **checkpointing_options(trl.SFTConfig, settings.gradient_checkpointing))


def warmup_trainer(model: Any, tokenizer: Any, rows: Sequence[RatingRow], prompts: Sequence[str],
                   settings: WarmupSettings, output_dir: str | Path, progress: bool = True, *,
                   scale: RatingScale = DEFAULT_SCALE, category: str = "movie", max_history: int = 10) -> Any:
    """The TRL `SFTTrainer`, built but not run (its `train_dataset` holds the tokenized, masked examples)."""
    trl = require_trl()
    dataset = warmup_dataset(tokenizer, rows, prompts, scale, category=category, max_history=max_history)
    dataset = _fitting(tokenizer, drop_double_bos(tokenizer, dataset), settings.max_length)
    config = warmup_config(settings, output_dir, progress)
    unflag_dequantized_gguf(model)
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    return trainer


def summarize_warmup(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per logged step of TRL's `state.log_history`: step, split "warmup", loss, mean_token_accuracy, …"""
    rows = []
    for entry in log_history:
        if "loss" not in entry:
            continue
        row: dict[str, Any] = {"step": entry.get("step"), "split": "warmup"}
        row.update({key: entry[key] for key in LOG_KEYS if key in entry})
        rows.append(row)
    return rows


def train_format_warmup(model: Any, tokenizer: Any, rows: Sequence[RatingRow], prompts: Sequence[str],
                        settings: WarmupSettings | None = None, progress: bool = True, *,
                        scale: RatingScale = DEFAULT_SCALE, category: str = "movie", max_history: int = 10,
                        output_dir: str | Path | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Supervised format warm-up of a prepared model (`model_setup.prepare_lm`) on (row, rendered prompt) pairs;
    returns (model in eval mode with the KV cache on, log rows). `category` / `max_history` should match the
    prompts so the rationale quotes the history the prompt shows. Nothing is saved."""
    settings = settings or WarmupSettings()
    with tempfile.TemporaryDirectory(prefix="seqrec-warmup-") as scratch:
        trainer = warmup_trainer(model, tokenizer, rows, prompts, settings, output_dir or scratch, progress,
                                 scale=scale, category=category, max_history=max_history)
        trainer.train()
    trained = trainer.accelerator.unwrap_model(trainer.model)
    return restore_after_training(trained, settings.gradient_checkpointing), summarize_warmup(trainer.state.log_history)
