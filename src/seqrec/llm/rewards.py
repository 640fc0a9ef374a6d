"""GRPO reward: format score (±1) + accuracy score (2 − 4|ŷ−y|/E_max, or −2 without a parsable answer)."""

from __future__ import annotations

from seqrec.llm.prompts import DEFAULT_SCALE, RatingScale, format_ok, parse_answer


def format_score(completion: str) -> float:
    return 1.0 if format_ok(completion) else -1.0


def accuracy_score(completion: str, label: float, scale: RatingScale = DEFAULT_SCALE) -> float:
    """2 at an exact answer, −2 at the largest possible error or when no number sits in <answer>…</answer>."""
    predicted = parse_answer(completion)
    if predicted is None:
        return -2.0
    return 2.0 - 4.0 * abs(scale.clip(predicted) - label) / scale.span


def rating_reward(completion: str, label: float, scale: RatingScale = DEFAULT_SCALE) -> float:
    """Total reward in [−3, 3]."""
    return format_score(completion) + accuracy_score(completion, label, scale)
