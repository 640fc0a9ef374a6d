"""Preparing a causal LM: chat template check, padding side, tags as single tokens, rating tokens."""

from __future__ import annotations

import pytest
import torch

from seqrec.errors import SeqrecError
from seqrec.llm.model_setup import add_reasoning_tokens, prepare_lm, rating_token_ids
from seqrec.llm.prompts import TAGS, RatingScale

pytest.importorskip("transformers")
from tiny_chat import tiny_model, tiny_tokenizer  # noqa: E402


def test_a_model_without_a_chat_template_is_refused() -> None:
    tokenizer = tiny_tokenizer(chat_template=None)
    with pytest.raises(SeqrecError, match="no chat template"):
        prepare_lm(tiny_model(tokenizer), tokenizer)


def test_tags_become_single_tokens_starting_at_the_mean_of_their_pieces() -> None:
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    pieces = tokenizer("<answer>", add_special_tokens=False)["input_ids"]
    expected = model.get_input_embeddings().weight[pieces].mean(dim=0).detach().clone()
    ids = add_reasoning_tokens(model, tokenizer)
    assert all(len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1 for tag in TAGS)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    torch.testing.assert_close(model.get_input_embeddings().weight[ids[2]], expected)
    assert add_reasoning_tokens(model, tokenizer) == ids  # a second call adds nothing


def test_prepare_is_deterministic_and_pads_left() -> None:
    first, second = (prepare_lm(tiny_model(tiny_tokenizer()), tiny_tokenizer()) for _ in range(2))
    assert first[1].padding_side == "left" and first[1].pad_token is not None
    torch.testing.assert_close(first[0].lm_head.weight, second[0].lm_head.weight)


def test_rating_tokens() -> None:
    tokenizer = tiny_tokenizer()
    ids = rating_token_ids(tokenizer, RatingScale(1.0, 5.0))
    assert sorted(ids) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert tokenizer.decode([ids[4.0]]) == "4"
    assert sorted(rating_token_ids(tokenizer, RatingScale(0.0, 10.0))) == [float(v) for v in range(10)]  # "10": 2
