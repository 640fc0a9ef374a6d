"""A trained model plus what it needs to serve users by their own ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Sequences
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import mask_seen_items, require_finite
from seqrec.models.base import SequentialEncoder


class Recommender:
    """Top-k recommendations in external ids from each user's known history.

    `mask_seen` is the default for `recommend`: the protocol the run was evaluated with.
    """

    def __init__(self, model: SequentialEncoder, user_map: IdMap, item_map: IdMap, histories: Sequences,
                 catalog: ItemCatalog, mask_seen: bool = True) -> None:
        self.model = model
        self.mask_seen = mask_seen
        self.user_map = user_map
        self.item_map = item_map
        self.histories = histories  # per internal user, every known interaction
        self.catalog = catalog

    @property
    def max_len(self) -> int:
        return self.model.max_len

    @property
    def device(self) -> torch.device:
        return self.model.device

    def score(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, N+1]
        return self.model.score(items)

    def eval(self) -> Recommender:
        self.model.eval()
        return self

    @torch.no_grad()
    def recommend(self, user_ids: list[str] | list[int], k: int = 10, mask_seen: bool | None = None) -> list[dict]:
        """Rows of {user, rank, item, score, title}, best first per user; `mask_seen` None = the run's protocol."""
        mask_seen = self.mask_seen if mask_seen is None else mask_seen
        if k < 1:
            raise SeqrecError(f"k must be >= 1, got {k}")
        users = self.user_map.to_internal(user_ids, kind="user id")
        hist = self.histories.take(users)
        self.model.eval()
        scores = self.model.score(torch.from_numpy(hist.padded(self.max_len)).to(self.device)).float()
        require_finite(scores, users)
        if mask_seen:
            mask_seen_items(scores, hist)
        k = min(k, self.model.num_items)
        top = scores.topk(k, dim=1)
        rows_out = []
        for user, items, values in zip(user_ids, top.indices.cpu().numpy(), top.values.cpu().numpy(), strict=True):
            for rank, (item, value) in enumerate(zip(items, values, strict=True), start=1):
                if not np.isfinite(value):
                    break
                rows_out.append({"user": str(user), "rank": rank, "item": self.item_map.to_external([item])[0],
                                 "score": float(value), "title": self.catalog.title(int(item))})
        return rows_out

    def recommend_frame(self, user_ids: list[str] | list[int], k: int = 10, mask_seen: bool | None = None) -> Any:
        """`recommend` as a pandas DataFrame (columns user, rank, item, score, title)."""
        from seqrec.evaluation.frames import recommendations_frame

        return recommendations_frame(self.recommend(user_ids, k, mask_seen))
