"""SIREN prompt rendering, answer parsing, and fitting prompts to a context."""

from __future__ import annotations

import pytest

from seqrec.errors import SeqrecError
from seqrec.llm.prompting import PromptSettings, chat_prompts
from seqrec.llm.prompts import (
    ANSWER_ONLY_SUFFIX,
    RatingScale,
    format_ok,
    messages,
    parse_answer,
    parse_number,
    user_message,
)
from seqrec.llm.rows import RatedItem, RatingRow

pytest.importorskip("transformers")
from tiny_chat import tiny_tokenizer  # noqa: E402


def row(history: int = 12, label: float = 4.0) -> RatingRow:
    items = tuple(RatedItem(f"Film {i}, Drama|Noir", float(1 + i % 5), f"i{i}") for i in range(history))
    return RatingRow("test:0", "test", "u", "target", label, "Gone Girl, Drama|Suspense", items)


def test_user_message_order_and_recent_history() -> None:
    text = user_message(row(), sketch="The user likes noir.", max_history=10)
    sketch, intro, candidate = text.split("\n\n")
    assert sketch == "The user likes noir."
    lines = intro.split("\n")[1:]
    assert lines[0] == "Film 2, Drama|Noir, 3" and lines[-1] == "Film 11, Drama|Noir, 2"  # the last 10, oldest first
    assert len(lines) == 10
    assert candidate.startswith("The candidate movie is described as: Gone Girl, Drama|Suspense")
    assert "what rating will the user give?" in candidate


def test_no_sketch_and_dropped_lines() -> None:
    text = user_message(row(), max_history=10, drop_oldest=3)
    assert text.startswith("Below are the user's recent movie ratings")
    assert "Film 4," not in text and "Film 5, Drama|Noir, 1" in text


def test_system_message_carries_the_scale() -> None:
    system = messages(row(), scale=RatingScale(0.0, 10.0), category="book")[0]["content"]
    assert "0.0 to 10.0" in system and "candidate book" in system and "<answer>" in system


@pytest.mark.parametrize(("completion", "expected"), [
    ("<think>x</think><answer>4</answer>", 4.0),
    ("<think>x</think><answer> 4.5 </answer>", 4.5),
    ("<answer>.5</answer>", 0.5),
    ("<answer>3</answer> then <answer>2</answer>", 2.0),  # the last answer counts
    ("<answer>4/5</answer>", None),
    ("<answer>four</answer>", None),
    ("<answer></answer>", None),
    ("<answer>4", None),  # never closed
    ("I think 4", None),
])
def test_parse_answer(completion: str, expected: float | None) -> None:
    assert parse_answer(completion) == expected


def test_parse_number() -> None:
    assert parse_number("5") == 5.0 and parse_number(" 3.0\n") == 3.0
    assert parse_number("\n") is None and parse_number("5 stars") is None and parse_number("-") is None


def test_format_ok() -> None:
    assert format_ok("<think>a</think>\n<answer>4</answer>")
    assert not format_ok("<answer>4</answer><think>a</think>")  # order
    assert not format_ok("<think>a</think><think>b</think><answer>4</answer>")  # twice
    assert not format_ok("<think>a</think>4")  # no answer tags
    assert ANSWER_ONLY_SUFFIX.endswith("<answer>")


def test_long_prompts_lose_their_oldest_lines_with_a_warning() -> None:
    tokenizer = tiny_tokenizer()  # one character per token
    settings = PromptSettings(max_history=10)
    full = chat_prompts([row()], tokenizer, settings=settings)[0]
    tokens = len(tokenizer(full)["input_ids"])
    line = len("Film 2, Drama|Noir, 3\n")  # the oldest shown lines, one token per character
    budget = tokens - 2 * line - 1  # two lines are not enough, three are
    with pytest.warns(UserWarning, match=r"1 of 1 prompts exceeded .* dropped their 3 oldest history lines"):
        fitted = chat_prompts([row()], tokenizer, settings=settings, max_tokens=budget)[0]
    assert "Film 4," not in fitted and "Film 5," in fitted and len(tokenizer(fitted)["input_ids"]) <= budget
    with pytest.raises(SeqrecError, match="even without history"):
        chat_prompts([row()], tokenizer, settings=settings, max_tokens=50)
