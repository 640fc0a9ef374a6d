"""Item attributes for targeted steering: membership matrices, and labels derived from item text
(keyword rules, or zero-shot similarity of sentence embeddings to a description of each attribute)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import SeqrecError, suggest
from seqrec.text import DEFAULT_TEXT_MODEL, Embedder, sentence_embedder

__all__ = ["DEFAULT_TEXT_MODEL", "Embedder", "attribute_matrix", "available_values", "keyword_labels",
           "sentence_embedder", "with_attribute", "zero_shot_labels"]


def available_values(catalog: ItemCatalog) -> list[str]:
    """Every value of every multi-valued attribute of the catalog (e.g. all genres)."""
    return sorted({v for name in catalog.attributes for v in catalog.attribute_values(name)})


def attribute_matrix(catalog: ItemCatalog, values: Sequence[str]) -> np.ndarray:
    """Membership of each item in each attribute value.  -> [N+1, C] bool (row 0, padding, all False)

    Unknown values and values no item carries are errors that list what is available.
    """
    if not values:
        raise SeqrecError("name at least one item attribute (for example --attribute Comedy --attribute Horror)")
    if not catalog.attributes:
        raise SeqrecError("this dataset's catalog has no item attributes; add some from item titles with "
                          "keyword rules or zero-shot labelling (seqrec.steering.attributes)")
    known = set(available_values(catalog))
    for value in values:
        if value not in known:
            raise SeqrecError(f"unknown item attribute {value!r}; available: {suggest(known)}")
    columns = [catalog.has_value(v) for v in values]
    return np.stack(columns, axis=1)


def keyword_labels(titles: Sequence[str], rules: dict[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """Attribute values per item from whole-word, case-insensitive keyword matches in its text.

    rules: value -> keywords, e.g. {"vegetarian": ["vegan", "vegetarian", "meatless"]}.  -> one tuple per item
    """
    patterns = {value: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
                for value, words in rules.items() if words}
    return [tuple(v for v, pattern in patterns.items() if text and pattern.search(text)) for text in titles]


def zero_shot_labels(texts: Sequence[str], descriptions: dict[str, str], embed: Embedder,
                     threshold: float = 0.3) -> list[tuple[str, ...]]:
    """Attribute values per item whose text embedding has cosine similarity >= `threshold` with the value's
    description (e.g. {"vegetarian": "a vegetarian food product without meat"}).  -> one tuple per item"""
    if not descriptions:
        raise SeqrecError("zero-shot labelling needs at least one attribute description")
    names = list(descriptions)
    items = _unit(embed(list(texts)))  # [T, E]
    anchors = _unit(embed([descriptions[n] for n in names]))  # [C, E]
    similar = items @ anchors.T >= threshold  # [T, C]
    return [tuple(n for n, hit in zip(names, row, strict=True) if hit and text)
            for text, row in zip(texts, similar, strict=True)]


def with_attribute(catalog: ItemCatalog, name: str, labels: list[tuple[str, ...]]) -> ItemCatalog:
    """A copy of the catalog with one more multi-valued attribute (labels: one tuple per item, padding first)."""
    if len(labels) != catalog.num_items + 1:
        raise SeqrecError(f"need one label tuple per item plus padding ({catalog.num_items + 1}); got {len(labels)}")
    return ItemCatalog(catalog.num_items, catalog.titles, {**catalog.attributes, name: [(), *labels[1:]]})


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
