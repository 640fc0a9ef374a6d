"""A trained model plus what it needs to serve users, anonymous sessions and similar items by their own ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Sequences, offsets_of
from seqrec.errors import NonFiniteError, SeqrecError
from seqrec.evaluation.evaluate import mask_seen_items, require_finite
from seqrec.models.base import SequentialEncoder

ItemIds = Iterable[str] | Iterable[int]


@dataclass
class TopItems:
    """Best-first lists of a batch of rows as arrays; masking can leave a row fewer than k items."""

    items: np.ndarray  # [R, K] internal item ids; 0 past a row's length
    scores: np.ndarray  # [R, K] float32; -inf past a row's length
    lengths: np.ndarray  # [R] real entries per row

    @property
    def short(self) -> np.ndarray:
        """Rows whose list has fewer than k items.  # [S]"""
        return np.flatnonzero(self.lengths < self.items.shape[1])


class Recommendations(list):
    """The rows of `Recommender.recommend` (a list of dicts, best first per user), plus `short`: the users whose
    list has fewer than k rows because masking their seen items left fewer candidates."""

    def __init__(self, rows: list[dict], short: list[str]) -> None:
        super().__init__(rows)
        self.short = short


@dataclass
class SessionRecommendations:
    """`Recommender.recommend_sessions`: rows {session, rank, item, score, title} (session = index in the input),
    `unknown[s]` = how many item ids of session s the run does not know (skipped), `unknown_ids[s]` = those ids,
    `short` = sessions whose list has fewer than k rows because masking their own items left fewer candidates."""

    rows: list[dict]
    unknown: list[int]
    unknown_ids: list[list[str]] = field(default_factory=list)
    short: list[int] = field(default_factory=list)

    def records(self) -> list[dict]:
        return list(self.rows)

    def frame(self) -> Any:
        """The rows as a pandas DataFrame (columns session, rank, item, score, title)."""
        return _frame(self.rows, ["session", "rank", "item", "score", "title"])


class Recommender:
    """Top-k recommendations in external ids from each user's known history or from an anonymous session.

    `mask_seen` is the default for `recommend`: the protocol the run was evaluated with. Every path scores its
    inputs with `top_items` (the last `max_len` items, left-padded to `max_len`), so the same histories scored in
    the same chunks give bit-identical scores whichever path they come from.
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

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def score(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, N+1]
        return self.model.score(items)

    def eval(self) -> Recommender:
        self.model.eval()
        return self

    def recommend(self, user_ids: Iterable[str] | Iterable[int], k: int = 10, mask_seen: bool | None = None, *,
                  allow: ItemIds | None = None, deny: ItemIds | None = None,
                  chunk_size: int = 1024) -> Recommendations:
        """Rows of {user, rank, item, score, title}, best first per user; `mask_seen` None = the run's protocol.

        `allow` / `deny`: external item ids the lists are restricted to / never contain. A user whose unseen
        candidates are fewer than k gets a shorter list and is named in the result's `short`.
        """
        candidates = self.candidate_mask(allow, deny)
        self.check_k(k, candidates)
        user_ids = list(user_ids)
        users = self.user_map.to_internal(user_ids, kind="user id")
        top = self.top_items(self.histories.take(users), k, self._masking(mask_seen), candidates, chunk_size,
                             rows=users)
        names = [str(u) for u in user_ids]
        return Recommendations(self._rows("user", names, top), [names[r] for r in top.short])

    def recommend_frame(self, user_ids: Iterable[str] | Iterable[int], k: int = 10,
                        mask_seen: bool | None = None, **options: Any) -> Any:
        """`recommend` as a pandas DataFrame (columns user, rank, item, score, title)."""
        from seqrec.evaluation.frames import recommendations_frame

        return recommendations_frame(self.recommend(user_ids, k, mask_seen, **options))

    def recommend_sessions(self, sessions: Iterable[Iterable[str] | Iterable[int]], k: int = 10,
                           mask_seen: bool | None = None, *, allow: ItemIds | None = None,
                           deny: ItemIds | None = None, chunk_size: int = 1024) -> SessionRecommendations:
        """Top-k for anonymous sessions of external item ids (oldest first); unknown items are skipped and
        counted, the last `max_len` known items are the input, and `mask_seen` masks the session's own items."""
        candidates = self.candidate_mask(allow, deny)
        self.check_k(k, candidates)
        histories, unknown = self.session_histories(sessions)
        top = self.top_items(histories, k, self._masking(mask_seen), candidates, chunk_size)
        rows = self._rows("session", list(range(len(histories))), top)
        return SessionRecommendations(rows, [len(ids) for ids in unknown], unknown, top.short.tolist())

    def session_histories(self, sessions: Iterable[Iterable[str] | Iterable[int]]
                          ) -> tuple[Sequences, list[list[str]]]:
        """Sessions of external item ids -> their known items (CSR) and the unknown ids of each session."""
        lists = []
        for index, session in enumerate(sessions):
            if isinstance(session, str | bytes) or not isinstance(session, Iterable):
                raise SeqrecError(f"session {index} is {session!r}, not a list of item ids; give each session as "
                                  "a list of item ids, oldest first")
            lists.append(list(session))
        lengths = np.array([len(s) for s in lists], dtype=np.int64)
        flat = np.fromiter((item for s in lists for item in s), dtype=object, count=int(lengths.sum()))  # [n]
        internal = self.item_map.lookup(flat)  # [n] -1 where unknown
        known = internal >= 0
        rows = np.repeat(np.arange(len(lists)), lengths)
        counts = np.bincount(rows[known], minlength=len(lists))  # [S] known items per session
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            first = int(empty[0])
            shown = ", ".join(str(i) for i in lists[first][:5]) or "no items"
            raise SeqrecError(f"session {first} has no item this run knows ({shown}); give at least one item id "
                              f"of the run's catalogue ({len(empty)} such session(s))")
        unknown: list[list[str]] = [[] for _ in lists]
        for row, item in zip(rows[~known].tolist(), flat[~known].tolist(), strict=True):
            unknown[row].append(str(item))
        return Sequences(offsets_of(counts), internal[known]), unknown

    def candidate_mask(self, allow: ItemIds | None = None, deny: ItemIds | None = None) -> np.ndarray:
        """Items that may be recommended: `allow` (default: every item) minus `deny`.  # [N+1] bool, [0] False"""
        if allow is None:
            mask = np.ones(self.num_items + 1, dtype=bool)
        else:
            mask = np.zeros(self.num_items + 1, dtype=bool)
            mask[self.item_map.to_internal(_id_list(allow, "allow"), kind="item id")] = True
        if deny is not None:
            mask[self.item_map.to_internal(_id_list(deny, "deny"), kind="item id")] = False
        mask[0] = False
        return mask

    def check_k(self, k: int, candidates: np.ndarray) -> None:
        """k must be a positive integer no larger than the number of candidate items."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise SeqrecError(f"k must be >= 1, got {k}")
        available = int(candidates.sum())
        if k > available:
            scope = "the catalogue" if available == self.num_items else "the catalogue after allow/deny"
            raise SeqrecError(f"k = {k} is more than the {available} candidate items ({scope}); ask for at most "
                              f"{available}")

    @torch.no_grad()
    def top_items(self, histories: Sequences, k: int, mask_seen: bool, candidates: np.ndarray | None = None,
                  chunk_size: int = 1024, rows: np.ndarray | None = None) -> TopItems:
        """Score rows of `histories` in chunks (last `max_len` items as input), mask items that are not
        candidates (and seen items), keep the top k.  `rows`: internal user ids for error messages.

        Rows are scored in order of length, each chunk trimmed to its longest row; the result keeps the input
        order. The same histories in the same call give the same scores bit for bit, whichever method asks.
        """
        rows = np.arange(len(histories)) if rows is None else np.asarray(rows)
        excluded = None if candidates is None or candidates[1:].all() else torch.from_numpy(~candidates)
        items = np.zeros((len(histories), k), dtype=np.int64)
        scores = np.full((len(histories), k), -np.inf, dtype=np.float32)
        for part, inputs in self._batches(histories, chunk_size):
            chunk = self.model.score(inputs).float()  # [C, N+1]
            require_finite(chunk, rows[part])
            if excluded is not None:
                chunk.masked_fill_(excluded.to(chunk.device), float("-inf"))
            if mask_seen:
                mask_seen_items(chunk, histories.take(part))
            top = chunk.topk(k, dim=1)
            scores[part] = top.values.cpu().numpy()
            items[part] = top.indices.cpu().numpy()
        real = np.isfinite(scores)  # masked items score -inf and sort last
        items[~real] = 0
        return TopItems(items, scores, real.sum(axis=1))

    def similar_items(self, item_ids: Iterable[str] | Iterable[int], k: int = 10, *, allow: ItemIds | None = None,
                      deny: ItemIds | None = None, chunk_size: int = 1024) -> list[dict]:
        """Rows of {item, rank, similar, score, title}: the k items whose vectors (`item_vectors`) have the
        highest cosine similarity with each item's, the item itself excluded; `title` is the similar item's."""
        if chunk_size < 1:
            raise SeqrecError(f"chunk_size must be >= 1, got {chunk_size}")
        item_ids = list(item_ids)
        queries = self.item_map.to_internal(item_ids, kind="item id")
        candidates = self.candidate_mask(allow, deny)
        self.check_k(k, candidates)
        if len(queries) and k > int(candidates.sum()) - int(candidates[queries].max()):
            first = item_ids[int(np.flatnonzero(candidates[queries])[0])]
            raise SeqrecError(f"k = {k}: item {first} is one of the {k} candidate items and is never its own "
                              f"similar item; ask for at most {k - 1}")
        vectors = self._item_embeddings().float()
        if not bool(torch.isfinite(vectors[1:]).all()):
            raise NonFiniteError("the model's item vectors hold NaN or infinite values; retrain the run")
        unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)  # [N+1, D]
        excluded = torch.from_numpy(~candidates).to(unit.device)
        names = [str(i) for i in item_ids]
        out = []
        with torch.no_grad():
            for start in range(0, len(queries), chunk_size):
                part = torch.from_numpy(queries[start : start + chunk_size]).to(unit.device)
                sims = (unit[part] @ unit.T).masked_fill_(excluded, float("-inf"))  # [C, N+1]
                sims[torch.arange(len(part)), part] = float("-inf")
                top = sims.topk(k, dim=1)
                found = TopItems(top.indices.cpu().numpy(), top.values.cpu().numpy(), np.full(len(part), k))
                out += self._rows("item", names[start : start + chunk_size], found, item_key="similar")
        return out

    def item_vectors(self) -> tuple[list[str], np.ndarray]:
        """External item ids in internal order (1..N) and their output vectors, aligned.  -> [N], [N, D] float32"""
        with torch.no_grad():
            vectors = self._item_embeddings()[1:].float().cpu().numpy()
        return list(self.item_map.external), np.ascontiguousarray(vectors)

    def user_vectors(self, user_ids: Iterable[str] | Iterable[int], chunk_size: int = 1024) -> np.ndarray:
        """The vectors that score items (`vector @ item_vectors().T`) of users' known histories.  # [U, D]"""
        users = self.user_map.to_internal(list(user_ids), kind="user id")
        return self._vectors(self.histories.take(users), chunk_size)

    def session_vectors(self, sessions: Iterable[Iterable[str] | Iterable[int]],
                        chunk_size: int = 1024) -> np.ndarray:
        """`user_vectors` of anonymous sessions (unknown item ids skipped, as in `recommend_sessions`).  # [S, D]"""
        return self._vectors(self.session_histories(sessions)[0], chunk_size)

    @torch.no_grad()
    def _vectors(self, histories: Sequences, chunk_size: int) -> np.ndarray:  # [R, D]
        encoder = self._encoder()
        out = np.zeros((len(histories), int(self._item_embeddings().shape[1])), dtype=np.float32)
        for part, inputs in self._batches(histories, chunk_size):
            out[part] = encoder.user_vector(inputs).float().cpu().numpy()
        return out

    def _batches(self, histories: Sequences, chunk_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Rows in order of length, `chunk_size` at a time: (rows [C], their last `max_len` items left-padded to
        the chunk's longest row [C, W] on the model's device). Trimming is exact: positions are right-aligned."""
        if chunk_size < 1:
            raise SeqrecError(f"chunk_size must be >= 1, got {chunk_size}")
        if self.model.training:  # eval() walks every module: not on each request of a served model
            self.model.eval()
        lengths = np.minimum(histories.lengths, self.max_len)
        order = np.argsort(lengths, kind="stable")  # similar lengths per chunk -> less padding
        padded = histories.padded(self.max_len)  # [R, L]
        for start in range(0, len(histories), chunk_size):
            part = order[start : start + chunk_size]
            width = max(int(lengths[part].max()), 1)
            yield part, torch.from_numpy(padded[part, -width:]).to(self.device)

    def _encoder(self) -> SequentialEncoder:
        if not isinstance(self.model, SequentialEncoder):
            raise SeqrecError(f"this recommender scores items with a {type(self.model).__name__}, which has no user "
                              "or item vectors; vectors and similar items need a model with the encoder seam")
        return self.model

    def _item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self._encoder().item_embeddings().detach()[: self.num_items + 1]

    def _masking(self, mask_seen: bool | None) -> bool:
        return self.mask_seen if mask_seen is None else bool(mask_seen)

    def _rows(self, key: str, names: Sequence[object], top: TopItems, item_key: str = "item") -> list[dict]:
        """One dict per real entry of `top`: {key: name, rank, item_key: external id, score, title}."""
        external, offset, titles = self.item_map.external, self.item_map.offset, self.catalog.titles
        out = []
        for name, items, scores, length in zip(names, top.items.tolist(), top.scores.tolist(), top.lengths.tolist(),
                                               strict=True):
            for rank in range(length):
                item = items[rank]
                out.append({key: name, "rank": rank + 1, item_key: external[item - offset], "score": scores[rank],
                            "title": titles[item] if titles else ""})
        return out


def _id_list(ids: ItemIds, name: str) -> list[object]:
    if isinstance(ids, str | bytes):
        raise SeqrecError(f"{name} must be a list of item ids, not the single string {ids!r}")
    return list(ids)


def _frame(rows: list[dict], columns: list[str]) -> Any:
    try:
        import pandas
    except ImportError:
        raise SeqrecError("DataFrames need pandas: pip install 'seqrec[data]' (or pip install pandas)") from None
    return pandas.DataFrame(rows, columns=columns)
