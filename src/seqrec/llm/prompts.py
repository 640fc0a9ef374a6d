"""SIREN prompts: chat messages for one rating row, the answer-only suffix, and answer parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from seqrec.llm.rows import RatingRow

THINK, END_THINK, ANSWER, END_ANSWER = "<think>", "</think>", "<answer>", "</answer>"
TAGS = (THINK, END_THINK, ANSWER, END_ANSWER)
ANSWER_ONLY_SUFFIX = f"\n{THINK}\n{END_THINK}\n{ANSWER}"  # appended to the rendered chat prompt
_ANSWER = re.compile(re.escape(ANSWER) + r"(.*?)" + re.escape(END_ANSWER), re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")

Message = dict[str, str]


@dataclass(frozen=True)
class RatingScale:
    """The rating range [low, high]; E_max = high − low scales the accuracy reward."""

    low: float = 1.0
    high: float = 5.0

    @property
    def span(self) -> float:
        return self.high - self.low

    def clip(self, value: float) -> float:
        return min(max(value, self.low), self.high)

    def text(self) -> str:
        return f"{self.low:.1f} to {self.high:.1f}"


DEFAULT_SCALE = RatingScale()


def system_message(scale: RatingScale = DEFAULT_SCALE, category: str = "movie") -> str:
    return (f"You are a recommender assistant. Predict the rating ({scale.text()}) that a user will give to a "
            f"candidate {category}. First reason about how well the candidate matches the user's history, then "
            f"give the rating. Put the reasoning inside {THINK} {END_THINK} and the rating inside {ANSWER} "
            f"{END_ANSWER}. The rating must be a number between {scale.low:.1f} and {scale.high:.1f}; write "
            f"nothing after {END_ANSWER}.")


def history_lines(row: RatingRow, max_history: int) -> list[str]:
    """The last `max_history` interactions as "text, rating" lines, oldest first."""
    recent = row.history[-max_history:] if max_history > 0 else ()
    return [f"{h.text}, {h.rating:g}" for h in recent]


def user_message(row: RatingRow, sketch: str = "", max_history: int = 10, category: str = "movie",
                 scale: RatingScale = DEFAULT_SCALE, drop_oldest: int = 0) -> str:
    """Sketch, recent rated history, candidate and question; `drop_oldest` removes that many history lines."""
    lines = history_lines(row, max_history)[drop_oldest:]
    parts = [sketch.strip()] if sketch.strip() else []
    parts.append(f"Below are the user's recent {category} ratings in the format: Title, Genres, Rating. "
                 f"Ratings range from {scale.text()}.\n" + "\n".join(lines))
    parts.append(f"The candidate {category} is described as: {row.target}\n"
                 "Based on the above information, what rating will the user give?")
    return "\n\n".join(parts)


def messages(row: RatingRow, sketch: str = "", max_history: int = 10, category: str = "movie",
             scale: RatingScale = DEFAULT_SCALE, drop_oldest: int = 0) -> list[Message]:
    return [{"role": "system", "content": system_message(scale, category)},
            {"role": "user", "content": user_message(row, sketch, max_history, category, scale, drop_oldest)}]


def render(tokenizer: Any, conversation: list[Message]) -> str:
    """The chat prompt text with the generation prompt (the model writes next)."""
    return tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)


def parse_number(text: str) -> float | None:
    """A plain decimal number ("4", "4.5", " 3 ") or None; "4/5", "four", "" are not numbers."""
    text = text.strip()
    return float(text) if _NUMBER.match(text) else None


def parse_answer(completion: str) -> float | None:
    """The number inside the last <answer>…</answer>, or None when there is none or it is not a number."""
    found = _ANSWER.findall(completion)
    return parse_number(found[-1]) if found else None


def format_ok(completion: str) -> bool:
    """Exactly one of each tag, first occurrences in the order <think> </think> <answer> </answer>."""
    if any(completion.count(tag) != 1 for tag in TAGS):
        return False
    positions = [completion.index(tag) for tag in TAGS]
    return positions == sorted(positions) and len(set(positions)) == 4
