"""Item side features: catalogue attributes (genres, categories, brand; multi-valued) embedded beside the item id.

Each configured attribute is a bag of value embeddings averaged per item; the attributes' averages are summed and
combined with the id embedding by sum, or by concatenation and a linear projection. An item's vector therefore
depends on its features as well as its id, so an item that had no training interactions still gets a vector
from the values it shares with trained items (cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError, suggest

Combine = Literal["sum", "concat"]


@dataclass(frozen=True)
class ItemFeatureIndex:
    """Every item's feature values as one flat bag per item (rows are internal item ids, row 0 = padding).

    values [V] value ids (attributes numbered one after the other, values sorted within each); offsets [N+1]
    where each item's values start; weights [V] 1 / (the item's number of values of that attribute), so a bag's
    weighted sum is the sum over attributes of the mean of the item's values.
    """

    names: tuple[str, ...]
    vocabulary: tuple[tuple[str, ...], ...]  # per attribute, its sorted values
    values: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray

    @property
    def size(self) -> int:
        """Number of distinct (attribute, value) pairs."""
        return sum(len(v) for v in self.vocabulary)

    @property
    def num_items(self) -> int:
        return len(self.offsets) - 1

    def coverage(self) -> float:
        """Share of real items with at least one value."""
        counts = np.diff(np.append(self.offsets, len(self.values)))[1:]
        return float((counts > 0).mean()) if len(counts) else 0.0


def feature_index(catalog: ItemCatalog, names: Sequence[str]) -> ItemFeatureIndex:
    """The bags of `names` (attributes of `catalog`); an unknown name is a `ConfigError` listing the known ones."""
    missing = [n for n in names if n not in catalog.attributes]
    if missing:
        known = suggest(catalog.attributes) or "none (add an item file with attribute columns: data.items)"
        raise ConfigError(f"model.item_features: the catalogue has no attribute {missing[0]!r}; available: {known}")
    vocabulary = tuple(tuple(catalog.attribute_values(n)) for n in names)
    empty = [n for n, values in zip(names, vocabulary, strict=True) if not values]
    if empty:  # it would embed nothing and train as if it were not there
        raise ConfigError(f"model.item_features: attribute {empty[0]!r} has no value on any item; check the item "
                          "file's column (data.items.attributes) or leave it out")
    starts = np.cumsum([0, *(len(v) for v in vocabulary)])
    codes = [{value: int(starts[a]) + i for i, value in enumerate(vocab)} for a, vocab in enumerate(vocabulary)]
    values: list[int] = []
    weights: list[float] = []
    offsets = np.zeros(catalog.num_items + 1, dtype=np.int64)
    for item in range(catalog.num_items + 1):
        offsets[item] = len(values)
        if item == 0:
            continue
        for a, name in enumerate(names):
            own = sorted(set(catalog.attributes[name][item]))
            values += [codes[a][v] for v in own]
            weights += [1.0 / len(own)] * len(own) if own else []
    return ItemFeatureIndex(tuple(names), vocabulary, np.asarray(values, dtype=np.int64), offsets,
                            np.asarray(weights, dtype=np.float32))


class ItemFeatureEmbedding(nn.Module):
    """Adds side features to an id embedding table.  id table [T, D] (T >= N+1; extra tokens get none) -> [T, D]"""

    def __init__(self, index: ItemFeatureIndex, hidden: int, combine: Combine = "sum", std: float = 0.02) -> None:
        super().__init__()
        self.values = nn.EmbeddingBag(max(index.size, 1), hidden, mode="sum")
        nn.init.trunc_normal_(self.values.weight, std=std, a=-2 * std, b=2 * std)
        self.register_buffer("ids", torch.from_numpy(index.values), persistent=False)
        self.register_buffer("offsets", torch.from_numpy(index.offsets), persistent=False)
        self.register_buffer("weights", torch.from_numpy(index.weights), persistent=False)
        # concat: a projection [D, 2D] that starts as the sum of the two halves (plain parameters, so a model's
        # weight initialisation leaves them as they are)
        self.project = nn.Parameter(torch.cat([torch.eye(hidden), torch.eye(hidden)], dim=1)) \
            if combine == "concat" else None
        self.project_bias = nn.Parameter(torch.zeros(hidden)) if combine == "concat" else None

    def bags(self) -> torch.Tensor:
        """Each item's feature vector; padding and items without values get zeros.  -> [N+1, D]"""
        return self.values(self.ids, self.offsets, per_sample_weights=self.weights)

    def forward(self, id_table: torch.Tensor) -> torch.Tensor:  # [T, D] -> [T, D]
        features = self.bags().to(id_table.dtype)
        extra = len(id_table) - len(features)
        if extra:  # tokens beyond the catalogue (e.g. BERT4Rec's mask) have no features
            features = torch.cat([features, features.new_zeros(extra, features.shape[1])])
        if self.project is None:
            return id_table + features
        return F.linear(torch.cat([id_table, features], dim=-1), self.project, self.project_bias)


def item_feature_embedding(names: Sequence[str], catalog: ItemCatalog | None, hidden: int, combine: Combine,
                           std: float = 0.02) -> ItemFeatureEmbedding | None:
    """The features module of a model config (None without `item_features`); the catalogue is then required."""
    if not names:
        return None
    if catalog is None:
        raise ConfigError("model.item_features needs the dataset's item catalogue; build the model with it")
    return ItemFeatureEmbedding(feature_index(catalog, names), hidden, combine, std)
