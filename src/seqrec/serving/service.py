"""A served run without HTTP: recommendations for users and sessions (plain or steered per request), similar
items, item details and metadata, with every request checked first so that a bad one gets a clear error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from seqrec.config import to_dict
from seqrec.errors import SeqrecError
from seqrec.recommender import Recommender
from seqrec.serving.errors import NotFound, RequestError
from seqrec.serving.live_steering import SteeredRecommenders, SteeringChoice, choose_steering

Input = str | tuple[str, ...]  # a user id, or a session of item ids


@dataclass(frozen=True)
class Options:
    """What the requests scored together share: everything but the user or session."""

    kind: Literal["user", "session"]
    k: int
    mask_seen: bool
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    steering: SteeringChoice | None = None


@dataclass
class Answer:
    """One request's recommendations: rows {rank, item, score, title}, and a session's unknown item ids."""

    rows: list[dict[str, Any]]
    unknown: list[str] | None = None


class Service:
    """A loaded run (any kind that recommends: `.recommender`, `.steering`, `.model_run`) ready to answer requests.

    `answer` scores many requests that share `Options` in one call; it runs in a worker thread, never on the
    event loop. Steered recommenders are built on first use and the `cache_size` most recent are kept.
    """

    def __init__(self, run: Any, path: str | Path, cache_size: int = 8) -> None:
        self.run, self.path = run, Path(path)
        self.recommender: Recommender = run.recommender.eval()
        self.offered: dict[str, Any] = dict(run.steering)
        self.steered = SteeredRecommenders(self.offered, cache_size)

    @property
    def kind(self) -> str:
        return str(self.run.kind)

    @property
    def num_items(self) -> int:
        return len(self.recommender.item_map)

    # ------------------------------------------------------------------ checks (on the event loop, cheap)

    def options(self, kind: Literal["user", "session"], k: int, mask_seen: bool | None, allow: list[str] | None,
                deny: list[str] | None, steering: dict[str, Any] | None) -> Options:
        """The checked options of a /recommend request."""
        allowed, denied = self.known_items(allow, "allow"), self.known_items(deny, "deny")
        self.check_k(k, self.candidates(allowed, denied), filtered=bool(allowed is not None or denied))
        return Options(kind, k, self.recommender.mask_seen if mask_seen is None else mask_seen, allowed, denied,
                       choose_steering(self.offered, steering))

    def candidates(self, allow: tuple[str, ...] | None, deny: tuple[str, ...] | None) -> int:
        """How many items `allow` (default: all) minus `deny` leaves (both hold known ids)."""
        if allow is None:
            return self.num_items - len(set(deny or ()))
        return len(set(allow) - set(deny or ()))

    def check_k(self, k: int, most: int, filtered: bool = False) -> None:
        if k > most:
            where = "after allow and deny" if filtered else f"the catalogue has {self.num_items} items"
            raise RequestError(f"k = {k} is more than the {most} items this request can return ({where}); ask "
                               f"for at most {most}", field="k")

    def check_user(self, user_id: str) -> str:
        if user_id not in self.recommender.user_map:
            raise NotFound(f"unknown user id {user_id!r}: this run's data has no such user (send its items as a "
                           "session with `items` instead)", field="user", id=user_id)
        return user_id

    def check_item(self, item_id: str, field: str = "item") -> str:
        if item_id not in self.recommender.item_map:
            raise NotFound(f"unknown item id {item_id!r}: not in this run's catalogue", field=field, id=item_id)
        return item_id

    def check_session(self, item_ids: list[str]) -> tuple[str, ...]:
        if not (self.recommender.item_map.lookup(item_ids) >= 0).any():
            raise NotFound(f"none of the session's {len(item_ids)} item id(s) is in this run's catalogue (the first "
                           f"is {item_ids[0]!r}); send at least one item the run knows", field="items",
                           id=item_ids[0])
        return tuple(item_ids)

    def known_items(self, item_ids: list[str] | None, field: str) -> tuple[str, ...] | None:
        if item_ids is None:
            return None
        found = self.recommender.item_map.lookup(item_ids)
        missing = [item_ids[i] for i in range(len(item_ids)) if found[i] < 0]
        if missing:
            raise NotFound(f"unknown item id {missing[0]!r} in `{field}` ({len(missing)} not in this run's "
                           "catalogue)", field=field, id=missing[0])
        return tuple(item_ids)

    # ------------------------------------------------------------------ scoring (in a worker thread)

    def recommender_for(self, steering: SteeringChoice | None) -> Recommender:
        return self.recommender if steering is None else self.steered.get(steering)

    def answer(self, options: Options, inputs: list[Input]) -> list[Answer | SeqrecError]:
        """Recommendations for each input (one call for all); an input that fails gets its own error."""
        try:
            return list(self._score(options, inputs))
        except SeqrecError as exc:
            if len(inputs) == 1:
                return [exc]
        answers: list[Answer | SeqrecError] = []
        for one in inputs:  # find the culprit: score each input alone
            try:
                answers.extend(self._score(options, [one]))
            except SeqrecError as exc:
                answers.append(exc)
        return answers

    def _score(self, options: Options, inputs: list[Input]) -> list[Answer]:
        rec = self.recommender_for(options.steering)
        filters = {"allow": list(options.allow) if options.allow is not None else None,
                   "deny": list(options.deny) if options.deny is not None else None}
        if options.kind == "user":
            users = list(dict.fromkeys(inputs))  # each user scored once
            by_user: dict[str, list[dict[str, Any]]] = {str(u): [] for u in users}
            for row in rec.recommend(users, options.k, options.mask_seen, **filters):
                by_user[row.pop("user")].append(row)
            return [Answer(list(by_user[str(user)])) for user in inputs]
        sessions = [list(items) for items in inputs]
        result = rec.recommend_sessions(sessions, options.k, options.mask_seen, **filters)
        rows: list[list[dict[str, Any]]] = [[] for _ in sessions]
        for row in result.rows:
            rows[row.pop("session")].append(row)
        return [Answer(r, unknown) for r, unknown in zip(rows, result.unknown_ids, strict=True)]

    def warm_up(self) -> None:
        """Score one user, so that the first request does not pay for torch's first call."""
        users = self.recommender.user_map.external[:1]
        if users:
            self.recommender.recommend(users, 1)

    def similar(self, item_id: str, k: int, allow: tuple[str, ...] | None, deny: tuple[str, ...] | None
                ) -> list[dict]:
        """The `k` items closest to `item_id`: rows {rank, item, score, title}."""
        rows = self.recommender.similar_items([item_id], k, allow=allow, deny=deny)
        return [{"rank": r["rank"], "item": r["similar"], "score": r["score"], "title": r["title"]} for r in rows]

    # ------------------------------------------------------------------ descriptions

    def item(self, item_id: str) -> dict[str, Any]:
        """Title and attributes of an item from the run's catalogue."""
        self.check_item(item_id)
        internal = int(self.recommender.item_map.to_internal([item_id], kind="item id")[0])
        catalog = self.recommender.catalog
        return {"item": item_id, "title": catalog.title(internal),
                "attributes": {name: list(values[internal]) for name, values in catalog.attributes.items()}}

    def metadata(self, batching: bool) -> dict[str, Any]:
        """What is served: model, data source, protocol, test metrics, steering on offer."""
        model_run = self.run.model_run
        return {"run": self.path.name, "kind": self.kind,
                "model": to_dict(model_run.config.model), "data": to_dict(model_run.config.data),
                "protocol": model_run.metrics.get("protocol", {}), "test_metrics": model_run.metrics.get("test", {}),
                "users": len(self.recommender.user_map), "items": self.num_items,
                "mask_seen": self.recommender.mask_seen,
                "steering": {name: s.parameters() for name, s in self.offered.items()}, "batching": batching}
