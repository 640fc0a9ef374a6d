"""`evaluate`: rating metrics of a model, a grpo/align run or a mean baseline on one split, in answer-only or
chain-of-thought mode; predictions are kept next to the metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seqrec.config import to_dict
from seqrec.llm.rows import RatingData
from seqrec.llm.siren import BASELINES, PREDICTIONS, limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_config import EvaluateStageConfig
from seqrec.llm.stage_runs import save_stage


def evaluate_stage(config: EvaluateStageConfig, out: Path, data: RatingData | None = None) -> Path:
    """Predict the ratings of `config.split` (first `config.limit` rows) of `data` (default: `config.load_data()`)
    and write metrics + predictions to `out`."""
    from seqrec.llm.inference import rating_metrics

    data = data if data is not None else config.load_data()
    rows = limited(data.split(config.split), config.limit)
    scale = settings_for(data).scale
    mode, sketch, max_history = config.mode, config.sketch, config.max_history
    if config.predictor in BASELINES:
        values, extra = _baseline(data, config.predictor, rows), {"generated_tokens": 0.0}
        completions: list[str] = [""] * len(rows)
        mode = "mean"
    else:
        values, completions, extra, sketch, max_history = _generate(data, rows, config)
    labels = [row.label for row in rows]
    metrics = {"split": config.split, "mode": mode, "predictor": config.predictor,
               **rating_metrics(values, labels, scale), **extra}
    recorded = {**to_dict(config), "sketch": sketch, "max_history": max_history}

    def files(tmp: Path) -> None:
        with (tmp / PREDICTIONS).open("w") as f:
            for row, value, text in zip(rows, values, completions, strict=True):
                f.write(json.dumps({"sample_id": row.sample_id, "user": row.user, "item": row.item,
                                    "label": row.label, "prediction": value, "output": text}) + "\n")

    return save_stage(out, "evaluate", recorded, metrics, files=files)


def _baseline(data: RatingData, name: str, rows: list) -> list[float | None]:
    from seqrec.llm import baselines

    predictor = {"global-mean": baselines.global_mean, "user-mean": baselines.user_mean,
                 "item-mean": baselines.item_mean}[name](data.train)
    return list(predictor.predict(rows))


def _generate(data: RatingData, rows: list, config: EvaluateStageConfig) -> tuple[Any, ...]:
    from seqrec.llm.inference import predict_answer_only, predict_cot

    model, tokenizer, run_config = load_stage_model(config.predictor)
    sketch = config.sketch if config.sketch is not None else run_config.get("sketch")
    max_history = config.max_history if config.max_history is not None else int(run_config.get("max_history", 10))
    mode, batch_size, max_new_tokens = config.mode, config.batch_size, config.max_new_tokens
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
