"""`grpo`: reinforce reasoning-then-answer with GRPO (TRL) on rating prompts; the trained model is saved whole.

An optional format warm-up (`config.warmup`, a short supervised pass on `<think>…</think><answer>…</answer>`
completions) runs first, on train rows disjoint from the GRPO sample when possible; small models need it, since
they never write the tags by themselves and GRPO then sees one reward for every completion. `config.grpo.steps == 0`
skips GRPO, so a warm-up-only model can be saved. Loggers (`grpo.report_to`, `warmup.report_to`) write their
files under `config.logging_dir`, or into `logs/` of the run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from seqrec.config import to_dict
from seqrec.llm.prompting import PromptSettings, SketchFor
from seqrec.llm.rows import RatingData, RatingRow
from seqrec.llm.siren import limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_config import GRPOStageConfig
from seqrec.llm.stage_runs import MODEL_DIR, save_stage
from seqrec.llm.warmup import pick_warmup_rows, train_format_warmup

LOGS = "logs"  # the loggers' files (report_to) inside the run, one folder per trainer


def grpo_stage(config: GRPOStageConfig, out: Path, data: RatingData | None = None) -> Path:
    """Train `config.model` (name, folder, smollm2 or a grpo run) on `config.limit` seeded train rows of `data`
    (default: `config.load_data()`); write the run to `out`. With `warmup.rows > 0`, a format warm-up on that many
    other train rows runs first."""
    data = data if data is not None else config.load_data()
    lm, tokenizer, _ = load_stage_model(config.model)
    prompt_settings, sketch_for = settings_for(data, config.max_history), sketch_source(config.sketch, data)
    settings, warmup = config.grpo, config.warmup
    rows = limited(data.train, config.limit, seed=settings.seed) if settings.steps != 0 else []
    metrics: dict[str, Any] = {"rows": 0, "steps": 0, "seconds": 0.0}
    log: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqrec-grpo-") as scratch:
        logs = Path(config.logging_dir) if config.logging_dir else Path(scratch) / LOGS
        if warmup.rows > 0:
            warm_rows = pick_warmup_rows(data.train, rows, warmup.rows, seed=warmup.seed)
            warm_prompts = prompts_for(warm_rows, tokenizer, lm, sketch_for, prompt_settings,
                                       settings.max_completion_length)
            start = time.perf_counter()
            lm, log = train_format_warmup(lm, tokenizer, warm_rows, warm_prompts, warmup,
                                          scale=prompt_settings.scale, category=prompt_settings.category,
                                          max_history=prompt_settings.max_history, output_dir=logs / "warmup")
            metrics.update(_warmup_metrics(log, len(warm_rows), time.perf_counter() - start))
        if settings.steps != 0:
            lm, grpo_log, grpo_metrics = _run_grpo(lm, tokenizer, data, rows, config, sketch_for, prompt_settings,
                                                   logs / "grpo")
            log.extend(grpo_log)
            metrics.update(grpo_metrics)

        def files(tmp: Path) -> None:
            lm.save_pretrained(str(tmp / MODEL_DIR))
            tokenizer.save_pretrained(str(tmp / MODEL_DIR))
            if not config.logging_dir and logs.is_dir() and any(p.is_file() for p in logs.rglob("*")):
                shutil.copytree(logs, tmp / LOGS)

        return save_stage(out, "grpo", to_dict(config), metrics, history=log, files=files)


def _warmup_metrics(log: list[dict[str, Any]], rows: int, seconds: float) -> dict[str, Any]:
    metrics: dict[str, Any] = {"warmup_rows": rows, "warmup_seconds": seconds}
    losses = [r["loss"] for r in log if "loss" in r]
    if losses:
        metrics["warmup_loss_first"], metrics["warmup_loss_last"] = losses[0], losses[-1]
    return metrics


def _run_grpo(lm: Any, tokenizer: Any, data: RatingData, rows: list[RatingRow], config: GRPOStageConfig,
              sketch_for: SketchFor, prompt_settings: PromptSettings, output_dir: Path
              ) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """GRPO on `rows`: (trained model, log rows, metrics)."""
    from seqrec.llm.grpo import train_grpo

    settings = config.grpo
    prompts = prompts_for(rows, tokenizer, lm, sketch_for, prompt_settings, settings.max_completion_length)
    valid = None
    if config.valid_limit:
        valid_rows = limited(data.valid, config.valid_limit)
        valid = (valid_rows, prompts_for(valid_rows, tokenizer, lm, sketch_for, prompt_settings,
                                         settings.max_completion_length))
    start = time.perf_counter()
    lm, log = train_grpo(lm, tokenizer, (rows, prompts), settings, output_dir, valid=valid,
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
