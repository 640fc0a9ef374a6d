"""`grpo`: reinforce reasoning-then-answer with GRPO (TRL) on rating prompts; the trained model is saved whole.

An optional format warm-up (`WarmupSettings`, a short supervised pass on `<think>…</think><answer>…</answer>`
completions) runs first, on train rows disjoint from the GRPO sample when possible; small models need it, since
they never write the tags by themselves and GRPO then sees one reward for every completion. `settings.steps == 0`
skips GRPO, so a warm-up-only model can be saved.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from seqrec.llm.grpo import GRPOSettings
from seqrec.llm.prompting import PromptSettings, SketchFor
from seqrec.llm.rows import RatingData, RatingRow
from seqrec.llm.siren import describe, limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_runs import MODEL_DIR, save_stage
from seqrec.llm.warmup import WarmupSettings, pick_warmup_rows, train_format_warmup


def grpo_stage(data: RatingData, model: str, out: Path, settings: GRPOSettings, *, sketch: str = "none",
               max_history: int = 10, limit: int | None = None, valid_limit: int = 0, source: str = "",
               warmup: WarmupSettings | None = None) -> Path:
    """Train `model` (name, folder, smollm2 or a grpo run) on `limit` seeded train rows; write the run to `out`.

    With `warmup.rows > 0`, a format warm-up on that many other train rows runs before GRPO."""
    lm, tokenizer, _ = load_stage_model(model)
    prompt_settings = settings_for(data, max_history)
    sketch_for = sketch_source(sketch, data)
    reserve = settings.max_completion_length
    rows = limited(data.train, limit, seed=settings.seed) if settings.steps != 0 else []
    metrics: dict[str, Any] = {}
    log: list[dict[str, Any]] = []
    if warmup is not None and warmup.rows > 0:
        warm_rows = pick_warmup_rows(data.train, rows, warmup.rows, seed=warmup.seed)
        warm_prompts = prompts_for(warm_rows, tokenizer, lm, sketch_for, prompt_settings, reserve)
        start = time.perf_counter()
        lm, log = train_format_warmup(lm, tokenizer, warm_rows, warm_prompts, warmup, scale=prompt_settings.scale,
                                      category=prompt_settings.category, max_history=prompt_settings.max_history)
        metrics.update({"warmup_rows": len(warm_rows), "warmup_seconds": time.perf_counter() - start})
        losses = [r["loss"] for r in log if "loss" in r]
        if losses:
            metrics["warmup_loss_first"], metrics["warmup_loss_last"] = losses[0], losses[-1]
    if settings.steps != 0:
        lm, grpo_log, grpo_metrics = _run_grpo(lm, tokenizer, data, rows, settings, sketch_for,
                                               prompt_settings, valid_limit)
        log.extend(grpo_log)
        metrics.update(grpo_metrics)
    else:
        metrics.update({"rows": 0, "steps": 0, "seconds": 0.0})
    config = {"data": source or data.name, "model": str(model), "sketch": sketch, "max_history": max_history,
              "limit": limit, "grpo": describe(settings), "warmup": describe(warmup) if warmup else None}

    def files(tmp: Path) -> None:
        lm.save_pretrained(str(tmp / MODEL_DIR))
        tokenizer.save_pretrained(str(tmp / MODEL_DIR))

    return save_stage(out, "grpo", config, metrics, history=log, files=files)


def _run_grpo(lm: Any, tokenizer: Any, data: RatingData, rows: list[RatingRow], settings: GRPOSettings,
              sketch_for: SketchFor, prompt_settings: PromptSettings, valid_limit: int
              ) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """GRPO on `rows`: (trained model, log rows, metrics)."""
    from seqrec.llm.grpo import train_grpo

    prompts = prompts_for(rows, tokenizer, lm, sketch_for, prompt_settings, settings.max_completion_length)
    valid = None
    if valid_limit:
        valid_rows = limited(data.valid, valid_limit)
        valid = (valid_rows, prompts_for(valid_rows, tokenizer, lm, sketch_for, prompt_settings,
                                         settings.max_completion_length))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqrec-grpo-") as scratch:
        lm, log = train_grpo(lm, tokenizer, (rows, prompts), settings, scratch, valid=valid,
                             scale=prompt_settings.scale)
    seconds = time.perf_counter() - start
    steps = [r for r in log if r.get("split") == "train"]
    metrics = {"rows": len(rows), "steps": len(steps), "seconds": seconds,
               "seconds_per_step": seconds / max(len(steps), 1)}
    for key in ("reward", "accuracy_reward", "format_reward", "completion_length", "kl"):
        values = [r[key] for r in steps if key in r]
        if values:
            metrics[f"{key}_first"], metrics[f"{key}_last"] = values[0], values[-1]
    validations = [r for r in log if r.get("split") == "valid"]
    if validations:
        metrics.update({f"valid_{k}": v for k, v in validations[-1].items() if k not in ("step", "split")})
    return lm, log, metrics
