"""Shared fixture: a tiny random-weight chat model, prepared for rating prediction (tags as tokens)."""

from __future__ import annotations

import pytest


@pytest.fixture
def lm() -> tuple:
    pytest.importorskip("transformers")
    from seqrec.llm.model_setup import prepare_lm
    from tiny_chat import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return prepare_lm(tiny_model(tokenizer), tokenizer)
