"""Prompts for LLM user profiles and the rendering of a user's training history as prompt lines.

Prompt types follow the profile-distillation paper: `short` (structured bullets with shares), `long`
(free-text analyst profile in fixed paragraphs, no item names) and `aspects` (several profiles per user,
one per aspect). Histories carry no ratings (the interaction table has none), so the paper's rating
paragraphs become taste-change and avoidance paragraphs.
"""

from __future__ import annotations

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError, suggest

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": text}
LINE_CHARS = 160  # one history line is cut to this many characters (so a single line always fits a context)
MAX_VALUES = 4  # attribute values shown per attribute and item
TASK_REMINDER = "Now write the profile as instructed; do not repeat the history."  # small models need it last

_ROLE = ("You are an analyst of user behaviour in a recommender system. You receive one user's interaction "
         "history, oldest first, one item per line: title, then attributes in brackets. ")

_SHORT = _ROLE + (
    "Write a short structured profile of this user as bullet points under four headings:\n"
    "Preferences: the attribute values (genres, categories, brands, ...) the user prefers, each with its "
    "approximate percentage of the history.\n"
    "Behavioral insights: habits such as variety seeking, loyalty, popular versus niche choices.\n"
    "Engagement trends: how the interests change from the older to the newer items.\n"
    "Summary: one sentence.\nBe concise and factual; use only what the history shows.")

_LONG = _ROLE + (
    "Write a profile of this user in exactly five paragraphs: (1) the kinds and categories of items the user "
    "engages with; (2) the features, themes, styles or brands the user favours; (3) how the interests changed "
    "over time; (4) what the user avoids or rarely chooses; (5) a summary of the user's taste. Do not name "
    "specific items.")

_ASPECTS = {
    "needs": _ROLE + ("Describe the needs and motivations this user's choices serve (for example relaxation, "
                      "learning, self-care, gifts) in a short paragraph. Do not name specific items."),
    "categories": _ROLE + ("Describe which genres or categories this user prefers, with approximate percentages, "
                           "and which ones the user ignores, in a short paragraph."),
    "patterns": _ROLE + ("Describe this user's brand, creator and consumption patterns: loyalty to brands, "
                         "series or creators, variety, popular versus niche choices, in a short paragraph."),
}

PROMPTS: dict[str, dict[str, str]] = {"short": {"short": _SHORT}, "long": {"long": _LONG}, "aspects": _ASPECTS}

_AGGREGATE = ("The profiles below describe the same user, each written from one consecutive part of the user's "
              "history, oldest part first. Merge them into one profile that follows the instructions below; "
              "where the parts disagree, give the newer parts more weight.\n\nInstructions: ")


def aspect_prompts(prompt: str) -> dict[str, str]:
    """aspect -> system prompt for a prompt type (short, long, aspects)."""
    if prompt not in PROMPTS:
        raise ConfigError(f"unknown profile prompt {prompt!r}; choose one of {suggest(PROMPTS)}")
    return PROMPTS[prompt]


def item_lines(catalog: ItemCatalog, item_ids: list[str]) -> list[str]:
    """One prompt line per item (index 0 = padding): title, then `[attribute: values; ...]`.

    item_ids: external item ids [N+1] (used where an item has no title).  -> [N+1] strings
    """
    lines = [""]
    for item in range(1, catalog.num_items + 1):
        title = " ".join(catalog.title(item).split()) or f"item {item_ids[item]}"
        attrs = [f"{name}: {', '.join(values[item][:MAX_VALUES])}"
                 for name, values in catalog.attributes.items() if values[item]]
        line = f"{title} [{'; '.join(attrs)}]" if attrs else title
        lines.append(line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…")
    return lines


def profile_messages(system: str, lines: list[str]) -> list[Message]:
    """Conversation that asks for a profile of the history `lines` (oldest first)."""
    history = "\n".join(lines)
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Interaction history ({len(lines)} items, oldest first):\n{history}\n\n"
                                        f"{TASK_REMINDER}"}]


def aggregate_messages(system: str, profiles: list[str]) -> list[Message]:
    """Conversation that merges profiles of consecutive history parts (oldest first) into one."""
    parts = "\n\n".join(f"Profile of part {k} of {len(profiles)}:\n{text}" for k, text in enumerate(profiles, 1))
    return [{"role": "system", "content": _AGGREGATE + system},
            {"role": "user", "content": f"{parts}\n\n{TASK_REMINDER}"}]
