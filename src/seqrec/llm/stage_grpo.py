"""`grpo`: reinforce reasoning-then-answer with GRPO (TRL) on rating prompts; the trained model is saved whole."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from seqrec.llm.grpo import GRPOSettings
from seqrec.llm.rows import RatingData
from seqrec.llm.siren import describe, limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_runs import MODEL_DIR, save_stage


def grpo_stage(data: RatingData, model: str, out: Path, settings: GRPOSettings, *, sketch: str = "none",
               max_history: int = 10, limit: int | None = None, valid_limit: int = 0, source: str = "") -> Path:
    """Train `model` (name, folder, smollm2 or a grpo run) on `limit` seeded train rows; write the run to `out`."""
    from seqrec.llm.grpo import train_grpo

    lm, tokenizer, _ = load_stage_model(model)
    prompt_settings = settings_for(data, max_history)
    sketch_for = sketch_source(sketch, data)
    rows = limited(data.train, limit, seed=settings.seed)
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
    config = {"data": source or data.name, "model": str(model), "sketch": sketch, "max_history": max_history,
              "limit": limit, "grpo": describe(settings)}

    def files(tmp: Path) -> None:
        lm.save_pretrained(str(tmp / MODEL_DIR))
        tokenizer.save_pretrained(str(tmp / MODEL_DIR))

    return save_stage(out, "grpo", config, metrics, history=log, files=files)
