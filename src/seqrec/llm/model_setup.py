"""Prepare a causal LM for rating prediction: chat template check, left padding, reasoning/answer tags as tokens."""

from __future__ import annotations

from typing import Any

from seqrec.llm.prompts import TAGS, RatingScale
from seqrec.lm import chat_model


def add_reasoning_tokens(model: Any, tokenizer: Any) -> list[int]:
    """Make <think> </think> <answer> </answer> single tokens (added when the vocabulary splits them); their ids.

    A new token starts as the mean embedding of the pieces it replaces, so loading the same model twice gives the
    same weights and the tag starts near what the model read before."""
    import torch

    pieces = {tag: tokenizer(tag, add_special_tokens=False)["input_ids"] for tag in TAGS}
    missing = [tag for tag in TAGS if len(pieces[tag]) != 1]
    if missing:
        tokenizer.add_tokens(missing)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        tables = {id(t): t for t in (model.get_input_embeddings(), model.get_output_embeddings()) if t is not None}
        with torch.no_grad():
            for table in tables.values():
                for tag in missing:
                    table.weight[tokenizer.convert_tokens_to_ids(tag)] = table.weight[pieces[tag]].mean(dim=0)
    return [tokenizer.convert_tokens_to_ids(tag) for tag in TAGS]


def prepare_lm(model: Any, tokenizer: Any = None) -> tuple[Any, Any]:
    """Load (name, folder or "smollm2") or take a built model + tokenizer; check the chat template; add the tags."""
    model, tokenizer = chat_model(model, tokenizer)
    add_reasoning_tokens(model, tokenizer)
    return model, tokenizer


def context_length(model: Any, default: int = 2048) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or default)


def rating_token_ids(tokenizer: Any, scale: RatingScale) -> dict[float, int]:
    """Single-token ratings of the scale ("1".."5"), for answer-only scoring; ratings that are not one token are
    left out."""
    ids = {}
    value = scale.low
    while value <= scale.high:
        pieces = tokenizer(f"{value:g}", add_special_tokens=False)["input_ids"]
        if len(pieces) == 1:
            ids[value] = pieces[0]
        value += 1.0
    return ids
