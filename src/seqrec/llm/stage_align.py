"""`align`: teacher traces of a grpo run on train rows, its hidden states at <answer> for the correct ones, and a
LoRA(k, v) student trained to reach them from the answer-only prompt; or, with ce_weight 1, SFT on the rating."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seqrec.config import to_dict
from seqrec.errors import SeqrecError
from seqrec.llm.align import Trace, checkpoint_score
from seqrec.llm.prompts import RatingScale
from seqrec.llm.rows import RatingData, RatingRow
from seqrec.llm.siren import TRACES, limited, load_stage_model, prompts_for, settings_for, sketch_source
from seqrec.llm.stage_config import AlignStageConfig
from seqrec.llm.stage_runs import ADAPTER_DIR, save_stage


def align_stage(config: AlignStageConfig, out: Path, data: RatingData | None = None) -> Path:
    """Train the student from `config.model` (a grpo run, or any model when `align.ce_weight == 1`) on `data`
    (default: `config.load_data()`) and write it to `out`."""
    from seqrec.llm.align import align_items, train_alignment

    data = data if data is not None else config.load_data()
    settings = config.align
    model, tokenizer, base_config = load_stage_model(config.model)
    sketch = config.sketch if config.sketch is not None else base_config.get("sketch", "none")
    max_history = config.max_history if config.max_history is not None else int(base_config.get("max_history", 10))
    prompt_settings, sketch_for = settings_for(data, max_history), sketch_source(sketch, data)

    def prompts(rows: list[RatingRow], reserve: int) -> dict[str, str]:
        texts = prompts_for(rows, tokenizer, model, sketch_for, prompt_settings, reserve)
        return {row.sample_id: text for row, text in zip(rows, texts, strict=True)}

    start = time.perf_counter()
    rows, valid_rows = limited(data.train, config.limit, seed=settings.seed), limited(data.valid, config.valid_limit)
    train_prompts, valid_prompts = prompts(rows, config.trace_tokens), prompts(valid_rows, 8)
    traces: list[Trace] = []
    teacher = None
    metrics: dict[str, Any] = {"rows": len(rows), "valid_rows": len(valid_rows)}
    if settings.ce_weight < 1.0:
        traces, teacher, quality = _teacher(model, tokenizer, rows, train_prompts, prompt_settings.scale, config)
        metrics.update(quality)
    student, history = train_alignment(model, tokenizer, align_items(rows, train_prompts),
                                       align_items(valid_rows, valid_prompts), settings, teacher,
                                       scale=prompt_settings.scale)
    metrics.update(_summary(history, time.perf_counter() - start))
    recorded = {**to_dict(config), "model": _model_ref(config.model), "sketch": sketch, "max_history": max_history}

    def files(tmp: Path) -> None:
        student.save_pretrained(str(tmp / ADAPTER_DIR))
        with (tmp / TRACES).open("w") as f:
            for trace in traces:
                f.write(json.dumps(asdict(trace)) + "\n")

    return save_stage(out, "align", recorded, metrics, history=history, files=files)


def _teacher(model: Any, tokenizer: Any, rows: list[RatingRow], prompts: dict[str, str], scale: RatingScale,
             config: AlignStageConfig) -> tuple[list[Trace], dict[str, Any], dict[str, Any]]:
    """The teacher's traces, its states at <answer> for the correct ones, and metrics of the traces."""
    from seqrec.llm.align import teacher_states, teacher_traces
    from seqrec.llm.inference import rating_metrics

    traces = teacher_traces(model, tokenizer, rows, prompts, scale, config.trace_tokens, config.trace_batch_size)
    teacher = teacher_states(model, tokenizer, traces, prompts)
    if not teacher:
        raise SeqrecError(f"none of the {len(traces)} teacher traces reached the exact rating, so there is "
                          "nothing to align to; trace more rows (--limit), allow longer traces (--trace-tokens) "
                          "or train the grpo run longer")
    quality = rating_metrics([t.prediction for t in traces], [r.label for r in rows], scale)
    return traces, teacher, {"traced": len(traces), "teacher_correct": len(teacher),
                             **{f"teacher_{k}": v for k, v in quality.items() if k != "n"}}


def _summary(history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    checked = [r for r in history if "valid_mae_invalid_as_max" in r]
    best = min(checked, key=checkpoint_score) if checked else {}
    return {"steps": sum(r["step"] > 0 for r in history), "seconds": seconds, "best_step": best.get("step"),
            "best_valid_mae": best.get("valid_mae"), "best_valid_invalid_rate": best.get("valid_invalid_rate"),
            "best_valid_mae_invalid_as_max": best.get("valid_mae_invalid_as_max")}


def _model_ref(base: str) -> str:
    """An absolute path for run directories (so the adapter finds its base from anywhere), else the name."""
    path = Path(base)
    return str(path.resolve()) if path.exists() else base
