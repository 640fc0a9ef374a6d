"""SIREN inference: answer-only (one greedy token after an empty think block) and chain-of-thought generation, with
per-sample token counts and latency, plus the rating metrics (MAE, RMSE, invalid rate)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqrec.errors import SeqrecError
from seqrec.llm.progress import eval_mode, progress_bar
from seqrec.llm.prompts import ANSWER_ONLY_SUFFIX, RatingScale, parse_answer, parse_number

Parser = Callable[[str], float | None]


@dataclass
class Predictions:
    """One entry per prompt, in prompt order; `values[i]` is None when the output did not parse (never replaced)."""

    values: list[float | None]
    completions: list[str]  # decoded generated text (special tokens skipped; the reasoning tags are kept)
    generated_tokens: list[int]  # generated tokens up to and including the first EOS, padding excluded
    seconds: float  # total wall time, tokenisation and decoding included
    per_sample_latency: list[float]  # generate() wall time of the sample's batch / batch size
    input_tokens: list[int] = field(default_factory=list)  # prompt tokens per sample (padding excluded)

    @property
    def invalid_rate(self) -> float | None:  # None: no samples (undefined, never NaN)
        return sum(v is None for v in self.values) / len(self.values) if self.values else None

    @property
    def mean_latency(self) -> float | None:
        return float(np.mean(self.per_sample_latency)) if self.per_sample_latency else None

    @property
    def mean_generated_tokens(self) -> float | None:
        return float(np.mean(self.generated_tokens)) if self.generated_tokens else None


def answer_only_prompt(chat_prompt: str) -> str:
    """The student / answer-only input: the rendered chat prompt + "\\n<think>\\n</think>\\n<answer>" (a prompt that
    already ends with the suffix is returned unchanged)."""
    return chat_prompt if chat_prompt.endswith(ANSWER_ONLY_SUFFIX) else chat_prompt + ANSWER_ONLY_SUFFIX


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokenizer's EOS plus every EOS id of the model's generation config."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(configured if isinstance(configured, (list, tuple)) else [configured])]
    return {int(i) for i in ids if i is not None}


def generated_length(tokens: Sequence[int], eos: set[int]) -> int:
    """Tokens up to and including the first EOS (the padding after it is not counted); all of them without EOS."""
    for i, token in enumerate(tokens):
        if token in eos:
            return i + 1
    return len(tokens)


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> tuple[Any, list[int]]:
    """Greedy generation with left padding: the new tokens [B, T] (on CPU) and the prompt lengths."""
    import torch

    if tokenizer.padding_side != "left":
        raise SeqrecError("generation needs left padding; prepare the model with seqrec.llm.model_setup.prepare_lm")
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model_device(model))
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)  # [B, P + T]
    return out[:, batch["input_ids"].shape[1]:].cpu(), batch["attention_mask"].sum(1).tolist()


def _predict(model: Any, tokenizer: Any, prompts: Sequence[str], parse: Parser, max_new_tokens: int,
             batch_size: int, progress: bool, description: str) -> Predictions:
    eos, start = eos_ids(model, tokenizer), time.perf_counter()
    values, texts, counts, latency, inputs = [], [], [], [], []
    with eval_mode(model), progress_bar(description, len(prompts), progress) as advance:
        for lo in range(0, len(prompts), batch_size):
            chunk = prompts[lo:lo + batch_size]
            tick = time.perf_counter()
            new, lengths = generate_batch(model, tokenizer, chunk, max_new_tokens)  # new: [B, T]
            per_sample = (time.perf_counter() - tick) / len(chunk)
            for tokens, n_input in zip(new.tolist(), lengths, strict=True):
                n = generated_length(tokens, eos)
                text = tokenizer.decode(tokens[:n], skip_special_tokens=True)
                values.append(parse(text))
                texts.append(text)
                counts.append(n)
                latency.append(per_sample)
                inputs.append(int(n_input))
            advance(len(chunk))
    return Predictions(values, texts, counts, time.perf_counter() - start, latency, inputs)


def predict_answer_only(model: Any, tokenizer: Any, prompts: Sequence[str], scale: RatingScale,
                        batch_size: int = 16, progress: bool = True) -> Predictions:
    """One greedy token per answer-only prompt (the suffix is appended when missing), parsed as a plain number;
    anything else is invalid (None). No clipping to `scale` (as in the paper); `scale` is kept for a uniform API."""
    del scale  # answer-only outputs are reported unclipped
    prompts = [answer_only_prompt(p) for p in prompts]
    return _predict(model, tokenizer, prompts, parse_number, 1, batch_size, progress, "answer-only")


def predict_cot(model: Any, tokenizer: Any, prompts: Sequence[str], scale: RatingScale, max_new_tokens: int = 512,
                batch_size: int = 8, progress: bool = True) -> Predictions:
    """Greedy chain of thought from the rendered chat prompts; the rating is the number in the last
    <answer>…</answer> (None when missing or not a number); completions keep the tags. Unclipped."""
    del scale
    return _predict(model, tokenizer, list(prompts), parse_answer, max_new_tokens, batch_size, progress, "CoT")


def rating_metrics(predictions: Predictions | Sequence[float | None], labels: Sequence[float],
                   scale: RatingScale) -> dict[str, float | None]:
    """MAE/RMSE over the parsed predictions (unclipped), the invalid rate, and the original code's convention
    (`*_invalid_as_max`: an invalid output counts as `scale.high`). `exact_acc` is over all n (invalid = wrong).
    MAE/RMSE without a single valid prediction are undefined: None (JSON null), never NaN."""
    values = predictions.values if isinstance(predictions, Predictions) else list(predictions)
    if len(values) != len(labels):
        raise SeqrecError(f"{len(values)} predictions for {len(labels)} labels; score the same rows")
    if not values:
        raise SeqrecError("no predictions to score")
    y = np.asarray(labels, dtype=float)  # [N]
    valid = np.array([v is not None and math.isfinite(v) for v in values])  # [N]
    filled = np.array([v if ok else scale.high for v, ok in zip(values, valid, strict=True)], dtype=float)
    err, err_max = filled[valid] - y[valid], filled - y
    n, n_valid = len(y), int(valid.sum())
    return {"n": n, "n_valid": n_valid, "invalid_rate": (n - n_valid) / n,
            "mae": _mae(err), "rmse": _rmse(err),
            "mae_invalid_as_max": _mae(err_max), "rmse_invalid_as_max": _rmse(err_max),
            "exact_acc": float(np.mean(valid & (filled == y)))}


def _mae(err: np.ndarray) -> float | None:
    return float(np.mean(np.abs(err))) if err.size else None


def _rmse(err: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(err**2))) if err.size else None
