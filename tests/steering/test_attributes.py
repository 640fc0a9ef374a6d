"""Attribute labels from item text: keyword rules and zero-shot similarity (with a stand-in embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import SeqrecError
from seqrec.steering.attributes import attribute_matrix, keyword_labels, with_attribute, zero_shot_labels

TITLES = ["", "Organic Vegan Granola", "Beef Jerky Original", "Decaf Green Tea", "Kids Fruit Snacks (vegan)"]


def test_keyword_rules_match_whole_words_case_insensitively() -> None:
    labels = keyword_labels(TITLES, {"vegan": ["vegan"], "caffeine_free": ["decaf", "caffeine-free"],
                                     "children": ["kids"], "empty": []})
    assert labels == [(), ("vegan",), (), ("caffeine_free",), ("vegan", "children")]
    assert keyword_labels(["Veganism Today"], {"vegan": ["vegan"]}) == [()]  # not a whole word


def test_zero_shot_labels_threshold_cosine_similarity() -> None:
    vocab = ["vegan", "beef", "tea", "kids"]

    def embed(texts: list[str]) -> np.ndarray:  # bag of words over a tiny vocabulary
        return np.array([[float(w in t.lower()) for w in vocab] + [0.01] for t in texts])

    labels = zero_shot_labels(TITLES, {"plant-based": "vegan", "drink": "tea"}, embed, threshold=0.5)
    assert labels == [(), ("plant-based",), (), ("drink",), ("plant-based",)]
    with pytest.raises(SeqrecError, match="at least one attribute description"):
        zero_shot_labels(TITLES, {}, embed)


def test_a_labelled_attribute_feeds_the_membership_matrix() -> None:
    catalog = with_attribute(ItemCatalog(4, TITLES), "diet", keyword_labels(TITLES, {"vegan": ["vegan"]}))
    np.testing.assert_array_equal(attribute_matrix(catalog, ["vegan"])[:, 0], [False, True, False, False, True])
    with pytest.raises(SeqrecError, match="one label tuple per item"):
        with_attribute(catalog, "x", [()])
    with pytest.raises(SeqrecError, match="no item attributes"):
        attribute_matrix(ItemCatalog(4, TITLES), ["vegan"])
