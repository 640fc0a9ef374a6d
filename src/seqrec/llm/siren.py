"""SIREN stages as library calls; each reads rating data (and a parent run) and writes a new run directory.

    sketch   -> item topics + per-row interest sketches           (sketch.json)
    grpo     -> the LLM trained to reason, then answer            (model/)
    align    -> LoRA(k, v) that moves answer-only hidden states onto the reasoning ones, or SFT on the rating
    evaluate -> MAE / RMSE / invalid rate / tokens / latency of a model, run or mean baseline on a split
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from seqrec.errors import SeqrecError
from seqrec.llm.prompting import PromptSettings, SketchFor, chat_prompts, no_sketch
from seqrec.llm.prompts import RatingScale
from seqrec.llm.rows import RatingData, RatingRow
from seqrec.llm.stage_runs import ADAPTER_DIR, MODEL_DIR, read_stage

SKETCH_FILE, PREDICTIONS, TRACES = "sketch.json", "predictions.jsonl", "traces.jsonl"
BASELINES = ("global-mean", "user-mean", "item-mean")
SHIPPED = "shipped"


def settings_for(data: RatingData, max_history: int = 10) -> PromptSettings:
    return PromptSettings(max_history=max_history, category=data.category, scale=RatingScale(*data.scale))


def sketch_source(sketch: str | Path | None, data: RatingData) -> SketchFor:
    """No sketch (None / "none"), the dataset's shipped sketch ("shipped"; built from the whole pre-validation
    history, so train prompts see their own label), or a sketch run (built from each row's own history)."""
    if sketch in (None, "", "none"):
        return no_sketch
    if sketch == SHIPPED:
        if not data.shipped_sketches:
            raise SeqrecError(f"dataset {data.name!r} ships no sketches; build one with `seqrec llm sketch`")
        return lambda row: data.shipped_sketches.get(row.user, "")
    from seqrec.llm.sketch import InterestSketcher

    run = read_stage(sketch, "sketch")
    return InterestSketcher.load(run.path / SKETCH_FILE).sketch


def limited(rows: list[RatingRow], limit: int | None, seed: int | None = None) -> list[RatingRow]:
    """The first `limit` rows, or with a `seed` a random `limit` of them in their original order; all when None."""
    if limit is not None and limit < 1:
        raise SeqrecError("--limit must be >= 1")
    if limit is None or limit >= len(rows):
        return rows
    if seed is None:
        return rows[:limit]
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def load_stage_model(source: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, run config) of a grpo or align run, or of a model name/folder/"smollm2"."""
    from seqrec.llm.model_setup import prepare_lm

    path = Path(source)
    if path.is_dir() and (path / "config.yaml").is_file():
        run = read_stage(path, "grpo", "align")
        if run.stage == "grpo":
            model, tokenizer = prepare_lm(str(path / MODEL_DIR))
            return model, tokenizer, run.config
        model, tokenizer, _ = load_stage_model(run.config["model"])
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path / ADAPTER_DIR)).merge_and_unload()
        return model, tokenizer, run.config
    model, tokenizer = prepare_lm(str(source))
    return model, tokenizer, {}


def prompts_for(rows: list[RatingRow], tokenizer: Any, model: Any, sketch_for: SketchFor,
                settings: PromptSettings, reserve: int) -> list[str]:
    """Chat prompts that leave `reserve` tokens of the context for the answer."""
    from seqrec.llm.model_setup import context_length

    return chat_prompts(rows, tokenizer, sketch_for, settings, max_tokens=context_length(model) - reserve)

