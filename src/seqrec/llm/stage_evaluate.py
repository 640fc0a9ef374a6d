"""`evaluate`: rating metrics of a model, a grpo/align run or a mean baseline on one split, in answer-only or
chain-of-thought mode; predictions are kept next to the metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seqrec.errors import SeqrecError
from seqrec.llm.rows import RatingData
from seqrec.llm.siren import BASELINES, PREDICTIONS, limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_runs import save_stage

MODES = ("answer-only", "cot")


def evaluate_stage(data: RatingData, predictor: str, out: Path, *, split: str = "test", mode: str = "answer-only",
                   limit: int | None = None, sketch: str | None = None, max_history: int | None = None,
                   batch_size: int = 8, max_new_tokens: int = 512, source: str = "") -> Path:
    """Predict the ratings of `split` (first `limit` rows) and write metrics + predictions to `out`."""
    from seqrec.llm.inference import rating_metrics

    if mode not in MODES:
        raise SeqrecError(f"unknown mode {mode!r}; choose answer-only or cot")
    rows = limited(data.split(split), limit)
    scale = settings_for(data).scale
    if predictor in BASELINES:
        values, extra = _baseline(data, predictor, rows), {"generated_tokens": 0.0}
        completions: list[str] = [""] * len(rows)
        mode = "mean"
    else:
        values, completions, extra, sketch, max_history = _generate(data, predictor, rows, mode, sketch,
                                                                    max_history, batch_size, max_new_tokens)
    labels = [row.label for row in rows]
    metrics = {"split": split, "mode": mode, "predictor": predictor, **rating_metrics(values, labels, scale),
               **extra}
    config = {"data": source or data.name, "predictor": predictor, "split": split, "mode": mode, "limit": limit,
              "sketch": sketch, "max_history": max_history, "max_new_tokens": max_new_tokens}

    def files(tmp: Path) -> None:
        with (tmp / PREDICTIONS).open("w") as f:
            for row, value, text in zip(rows, values, completions, strict=True):
                f.write(json.dumps({"sample_id": row.sample_id, "user": row.user, "item": row.item,
                                    "label": row.label, "prediction": value, "output": text}) + "\n")

    return save_stage(out, "evaluate", config, metrics, files=files)


def _baseline(data: RatingData, name: str, rows: list) -> list[float | None]:
    from seqrec.llm import baselines

    predictor = {"global-mean": baselines.global_mean, "user-mean": baselines.user_mean,
                 "item-mean": baselines.item_mean}[name](data.train)
    return list(predictor.predict(rows))


def _generate(data: RatingData, predictor: str, rows: list, mode: str, sketch: str | None,
              max_history: int | None, batch_size: int, max_new_tokens: int) -> tuple[Any, ...]:
    from seqrec.llm.inference import predict_answer_only, predict_cot

    model, tokenizer, run_config = load_stage_model(predictor)
    sketch = sketch if sketch is not None else run_config.get("sketch")
    max_history = max_history if max_history is not None else int(run_config.get("max_history", 10))
    settings = settings_for(data, max_history)
    reserve = 8 if mode == "answer-only" else max_new_tokens
    prompts = prompts_for(rows, tokenizer, model, sketch_source(sketch, data), settings, reserve)
    prompt_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts) / len(prompts)
    start = time.perf_counter()
    if mode == "answer-only":
        result = predict_answer_only(model, tokenizer, prompts, settings.scale, batch_size=batch_size)
    else:
        result = predict_cot(model, tokenizer, prompts, settings.scale, max_new_tokens=max_new_tokens,
                             batch_size=batch_size)
    seconds = time.perf_counter() - start
    extra = {"prompt_tokens": prompt_tokens, "generated_tokens": sum(result.generated_tokens) / len(rows),
             "seconds_per_sample": seconds / len(rows), "batch_size": batch_size}
    return result.values, result.completions, extra, sketch, max_history
