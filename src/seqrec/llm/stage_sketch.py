"""`sketch`: cluster every item text into named topics and report the prompt-token saving of sketch + recent
items against the raw full history."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seqrec.errors import ConfigError
from seqrec.llm.rows import RatingData
from seqrec.llm.siren import SKETCH_FILE
from seqrec.llm.stage_runs import save_stage
from seqrec.text import Embedder

NAME_CACHE, EXAMPLES = "topic_names.jsonl", "examples.jsonl"


def sketch_stage(data: RatingData, out: Path, *, embedder: str | Embedder = "all-MiniLM-L6-v2", n_clusters: int = 20,
                 top_k: int = 100, theta: float = 4.0, namer: str = "terms", endpoint: str | None = None,
                 endpoint_model: str | None = None, api_key_env: str | None = None, allow_http: bool = False,
                 tokenizer: str | None = "smollm2", max_history: int = 10, seed: int = 0, source: str = "") -> Path:
    """Build the sketcher from `data`'s items and write it with a token report on the test rows to `out`.

    `endpoint` (an OpenAI-compatible base URL) names topics with `endpoint_model` there; `api_key_env` names the
    environment variable holding its API key (none is sent otherwise); `allow_http` permits plain http to a
    non-local host."""
    from seqrec.llm.sketch import build_sketcher, prompt_token_report

    start = time.perf_counter()
    backend = _namer(namer, endpoint, endpoint_model, api_key_env, allow_http)
    cache = Path(out).with_name(Path(out).name + "." + NAME_CACHE) if backend is not None else None
    sketcher = build_sketcher(data.items(), embedder=embedder, n_clusters=n_clusters, theta=theta, top_k=top_k,
                              namer=backend, cache=cache, seed=seed, category=data.category)
    seconds = time.perf_counter() - start
    count, counted_by = _token_counter(tokenizer)
    report = prompt_token_report(data.test, sketcher, count, max_history, data.category)
    metrics = {"topics": len(sketcher.names), "items": len(sketcher.topic_of), "seconds": seconds,
               "token_rows": int(report["rows"]), "tokens_counted_by": counted_by,
               "sketch_tokens": report["sketch_tokens"], "prompt_tokens_sketch": report["sketch_prompt_tokens"],
               "prompt_tokens_raw": report["raw_prompt_tokens"], "token_reduction": report["reduction"],
               "topic_names": sketcher.names}
    config = {"data": source or data.name, "embedder": embedder if isinstance(embedder, str) else "callable",
              "clusters": n_clusters, "top_k": top_k,
              "theta": theta, "namer": endpoint_model or namer, "max_history": max_history, "seed": seed}

    def files(tmp: Path) -> None:
        sketcher.save(tmp / SKETCH_FILE)
        with (tmp / EXAMPLES).open("w") as f:  # a few sketches to read
            for row in data.test[:20]:
                f.write(json.dumps({"sample_id": row.sample_id, "sketch": sketcher.sketch(row)}) + "\n")

    path = save_stage(out, "sketch", config, metrics, files=files)
    if cache is not None and cache.exists():
        cache.rename(path / NAME_CACHE)
    return path


def _namer(namer: str, endpoint: str | None, endpoint_model: str | None, api_key_env: str | None,
           allow_http: bool) -> Any:
    from seqrec.distill.chat import OpenAICompatibleChat, TransformersChat

    if endpoint:
        return OpenAICompatibleChat(endpoint, endpoint_model or namer, api_key_env=api_key_env, allow_http=allow_http)
    if api_key_env or allow_http:
        raise ConfigError("--api-key-env and --allow-http apply to --endpoint only; add --endpoint URL or drop them")
    return None if namer == "terms" else TransformersChat(namer)


def _token_counter(tokenizer: str | None) -> tuple[Any, str]:
    """The named model's tokenizer, or characters / 4 when none is given."""
    if not tokenizer:
        return (lambda text: max(1, len(text) // 4)), "chars/4"
    from seqrec.lm import load_tokenizer

    tok = load_tokenizer(tokenizer)
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), tokenizer
