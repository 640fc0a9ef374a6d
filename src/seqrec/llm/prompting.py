"""Rendered chat prompts for rating rows, fitted to the model's context by dropping the oldest history lines."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from seqrec.errors import SeqrecError
from seqrec.llm.prompts import DEFAULT_SCALE, RatingScale, messages, render
from seqrec.llm.rows import RatingRow

SketchFor = Callable[[RatingRow], str]


def no_sketch(row: RatingRow) -> str:
    return ""


@dataclass(frozen=True)
class PromptSettings:
    """What a prompt shows: the sketch (see `sketch_source`), the last `max_history` ratings, the candidate."""

    max_history: int = 10
    category: str = "movie"
    scale: RatingScale = DEFAULT_SCALE


def chat_prompts(rows: Sequence[RatingRow], tokenizer: Any, sketch_for: SketchFor = no_sketch,
                 settings: PromptSettings = PromptSettings(), max_tokens: int | None = None) -> list[str]:
    """One rendered chat prompt per row; prompts over `max_tokens` lose their oldest history lines (with a
    warning that says how many), and a prompt that does not fit even without history is an error."""
    prompts, dropped, shortened = [], 0, 0
    for row in rows:
        text, n = _fitted(row, tokenizer, sketch_for(row), settings, max_tokens)
        prompts.append(text)
        dropped, shortened = dropped + n, shortened + (n > 0)
    if dropped:
        warnings.warn(f"{shortened} of {len(rows)} prompts exceeded {max_tokens} tokens; dropped their "
                      f"{dropped} oldest history lines in all", stacklevel=2)
    return prompts


def _fitted(row: RatingRow, tokenizer: Any, sketch: str, settings: PromptSettings, max_tokens: int | None
            ) -> tuple[str, int]:
    def prompt(drop: int) -> str:
        return render(tokenizer, messages(row, sketch, settings.max_history, settings.category, settings.scale, drop))

    text = prompt(0)
    if max_tokens is None or _length(tokenizer, text) <= max_tokens:
        return text, 0
    lines = min(settings.max_history, len(row.history))
    low, high = 1, lines  # the fewest dropped lines that fit, by bisection (length falls as lines go)
    if _length(tokenizer, prompt(high)) > max_tokens:
        raise SeqrecError(f"row {row.sample_id}: the prompt needs more than {max_tokens} tokens even without "
                          "history; shorten the sketch or use a model with a longer context")
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if _length(tokenizer, prompt(middle)) <= max_tokens else (middle + 1, high)
    return prompt(low), low


def _length(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
