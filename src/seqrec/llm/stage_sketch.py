"""`sketch`: cluster every item text into named topics and report the prompt-token saving of sketch + recent
items against the raw full history."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seqrec.config import to_dict
from seqrec.llm.rows import RatingData
from seqrec.llm.siren import SKETCH_FILE
from seqrec.llm.stage_config import SketchStageConfig
from seqrec.llm.stage_runs import save_stage
from seqrec.text import Embedder

NAME_CACHE, EXAMPLES = "topic_names.jsonl", "examples.jsonl"


def sketch_stage(config: SketchStageConfig, out: Path, data: RatingData | None = None, *,
                 embedder: Embedder | None = None) -> Path:
    """Build the sketcher from the items of `data` (default: `config.load_data()`) and write it with a token report
    on the test rows to `out`. `embedder` replaces `config.embedder` with a callable (texts -> vectors)."""
    from seqrec.llm.sketch import build_sketcher, prompt_token_report

    data = data if data is not None else config.load_data()
    start = time.perf_counter()
    backend = _namer(config)
    cache = Path(out).with_name(Path(out).name + "." + NAME_CACHE) if backend is not None else None
    sketcher = build_sketcher(data.items(), embedder=embedder or config.embedder, n_clusters=config.clusters,
                              theta=config.theta, top_k=config.top_k, namer=backend, cache=cache, seed=config.seed,
                              category=data.category)
    seconds = time.perf_counter() - start
    count, counted_by = _token_counter(config.tokenizer)
    report = prompt_token_report(data.test, sketcher, count, config.max_history, data.category)
    metrics = {"topics": len(sketcher.names), "items": len(sketcher.topic_of), "seconds": seconds,
               "token_rows": int(report["rows"]), "tokens_counted_by": counted_by,
               "sketch_tokens": report["sketch_tokens"], "prompt_tokens_sketch": report["sketch_prompt_tokens"],
               "prompt_tokens_raw": report["raw_prompt_tokens"], "token_reduction": report["reduction"],
               "topic_names": sketcher.names}
    recorded = {**to_dict(config), "embedder": "callable" if embedder is not None else config.embedder}

    def files(tmp: Path) -> None:
        sketcher.save(tmp / SKETCH_FILE)
        with (tmp / EXAMPLES).open("w") as f:  # a few sketches to read
            for row in data.test[:20]:
                f.write(json.dumps({"sample_id": row.sample_id, "sketch": sketcher.sketch(row)}) + "\n")

    path = save_stage(out, "sketch", recorded, metrics, files=files)
    if cache is not None and cache.exists():
        cache.rename(path / NAME_CACHE)
    return path


def _namer(config: SketchStageConfig) -> Any:
    """The topic namer: an OpenAI-compatible endpoint, a local chat model, or None for key terms."""
    from seqrec.distill.chat import OpenAICompatibleChat, TransformersChat

    if config.endpoint:
        return OpenAICompatibleChat(config.endpoint, config.endpoint_model or config.namer,
                                    api_key_env=config.api_key_env, allow_http=config.allow_http)
    return None if config.namer == "terms" else TransformersChat(config.namer)


def _token_counter(tokenizer: str | None) -> tuple[Any, str]:
    """The named model's tokenizer, or characters / 4 when none is given."""
    if not tokenizer:
        return (lambda text: max(1, len(text) // 4)), "chars/4"
    from seqrec.lm import load_tokenizer

    tok = load_tokenizer(tokenizer)
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), tokenizer
