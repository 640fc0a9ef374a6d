"""Label a catalog's items from their titles: keyword rules or zero-shot descriptions read from YAML files."""

from __future__ import annotations

from pathlib import Path

from seqrec.config import parse_yaml_file
from seqrec.data.catalog import ItemCatalog
from seqrec.errors import DataError
from seqrec.steering.attributes import Embedder, keyword_labels, zero_shot_labels


def read_keyword_rules(path: str | Path) -> dict[str, list[str]]:
    """`{value: [keywords]}` from YAML, e.g. `vegetarian: [vegan, vegetarian, meatless]`."""
    rules = _read_mapping(path, "attribute value -> list of keywords, e.g. `vegetarian: [vegan, meatless]`")
    for value, words in rules.items():
        if isinstance(words, str):
            words = [words]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise DataError(f"{path}: {value!r}: expected a non-empty list of keywords, got {words!r}")
        rules[value] = [w.strip() for w in words]
    return rules


def read_descriptions(path: str | Path) -> dict[str, str]:
    """`{value: description}` from YAML, e.g. `vegetarian: a vegetarian food product without meat`."""
    descriptions = _read_mapping(path, "attribute value -> description, e.g. `vegetarian: a meat-free food`")
    for value, text in descriptions.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: {value!r}: expected a description (text), got {text!r}")
    return descriptions


def item_texts(catalog: ItemCatalog) -> list[str]:
    """The text labels are matched on: each item's title.  -> [N+1], padding first"""
    if not catalog.titles or not any(catalog.titles[1:]):
        raise DataError("the dataset's items have no titles to label; give item titles (data.items with a title "
                        "column) first")
    return list(catalog.titles)


def label_items(catalog: ItemCatalog, keywords: dict[str, list[str]] | None = None,
                descriptions: dict[str, str] | None = None, embed: Embedder | None = None,
                threshold: float = 0.3) -> list[tuple[str, ...]]:
    """Attribute values per item (one tuple per item, padding first) from keyword rules or zero-shot similarity."""
    if (keywords is None) == (descriptions is None):
        raise DataError("label items with either keyword rules or zero-shot descriptions, not both or neither")
    texts = item_texts(catalog)
    if keywords is not None:
        return keyword_labels(texts, keywords)
    if embed is None:
        raise DataError("zero-shot labelling needs a text embedding model")
    return [(), *zero_shot_labels(texts[1:], descriptions or {}, embed, threshold)]


def _read_mapping(path: str | Path, expected: str) -> dict[str, object]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = parse_yaml_file(path, DataError)
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a mapping of {expected}")
    bad = next((k for k in data if not isinstance(k, str) or not k.strip()), None)
    if bad is not None:
        raise DataError(f"{path}: attribute value {bad!r} must be non-empty text")
    return {str(k).strip(): v for k, v in data.items()}
