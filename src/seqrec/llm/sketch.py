"""SIREN long-term interest sketch (spec §2): item topics by k-means over text embeddings, named topics, and a
per-row "liked / disliked topics" text.

Pipeline: `embed_items` → `cluster_items` (faiss k-means, k=20, niter 30, nredo 5) → `name_topics` (distinctive
terms of the items nearest each centroid, or a chat model) → `InterestSketcher`, which renders one sketch per
rating row with the paper's mean-rating rule: topic k is liked when the mean rating of the user's history items in
k is ≥ θ (4 on a 1–5 scale), disliked otherwise; topics without history items are left out.

No leakage: a sketch is built only from `row.history`, the interactions strictly before the row's target. The
original attaches one sketch per user, built from the whole pre-valid history, to every train row, so train prompts
see their own label (and later ratings) aggregated; here valid and test rows still get the full pre-valid history
(their histories are exactly that), and each train row sees only its past.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqrec.data.readers import read_text
from seqrec.errors import ConfigError, DataError, SeqrecError
from seqrec.jsonl import loads_finite, parse_json
from seqrec.llm.prompts import DEFAULT_SCALE, RatingScale, user_message
from seqrec.llm.rows import RatedItem, RatingRow

if TYPE_CHECKING:
    from seqrec.distill.chat import ChatBackend

Embedder = Callable[[list[str]], np.ndarray]  # texts -> [T, E]
MODEL_ALIASES = {"minilm": "all-MiniLM-L6-v2"}
SKETCH_FORMAT = "seqrec-siren-sketch"
SKETCH_VERSION = 1
STOPWORDS = frozenset("""a an and are as at be by for from in into is it its of on or the this that to with
vol volume part season series edition collection complete dvd blu ray""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'&\-]*")
_THEME = re.compile(r"Theme:\**\s*(.+)")


# ---------------------------------------------------------------- embeddings and clusters


def embed_items(texts: Sequence[str], model: str | Embedder = "minilm", batch_size: int = 256,
                device: str | None = None) -> np.ndarray:
    """Text embeddings [T, E] float32: a sentence-transformers name/path ("minilm" = the offline MiniLM) or a
    callable texts -> [T, E]."""
    if callable(model):
        embed = model
    else:
        from seqrec.text import sentence_embedder

        embed = sentence_embedder(MODEL_ALIASES.get(model, model), device=device, batch_size=batch_size)
    vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise SeqrecError(f"the embedder returned shape {vectors.shape} for {len(texts)} texts; expected "
                          f"[{len(texts)}, dim]")
    return vectors


def cluster_items(embeddings: np.ndarray, n_clusters: int = 20, niter: int = 30, nredo: int = 5,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """faiss k-means on every point: (cluster id [T] int64, squared L2 distance to its centroid [T] float32)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)  # [T, E]
    if x.ndim != 2 or n_clusters < 1 or len(x) < n_clusters:
        raise ConfigError(f"k-means needs at least n_clusters={n_clusters} items (got {len(x)} embeddings); "
                          "lower n_clusters")
    faiss = _faiss()
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=niter, nredo=nredo, seed=seed, verbose=False,
                          max_points_per_centroid=len(x), min_points_per_centroid=1)
    kmeans.train(x)
    distances, ids = kmeans.index.search(x, 1)  # [T, 1] each
    return ids[:, 0].astype(np.int64), distances[:, 0].astype(np.float32)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise SeqrecError("interest-sketch clustering needs faiss: pip install 'seqrec[llm]'") from None
    return faiss


def top_members(cluster_ids: np.ndarray, distances: np.ndarray, top_k: int = 100,
                n_clusters: int | None = None) -> list[list[int]]:
    """Per cluster, the indices of its `top_k` members nearest the centroid (ties by index)."""
    n_clusters = int(cluster_ids.max()) + 1 if n_clusters is None else n_clusters
    order = np.lexsort((np.arange(len(distances)), distances))  # by distance, then index
    members: list[list[int]] = [[] for _ in range(n_clusters)]
    for i in order.tolist():
        bucket = members[int(cluster_ids[i])]
        if len(bucket) < top_k:
            bucket.append(i)
    return members


# ---------------------------------------------------------------- topic names


def item_terms(text: str) -> dict[str, str]:
    """Lowercase key -> surface form of the terms of "title, cat1|cat2": category parts and title words."""
    title, sep, path = text.rpartition(", ")
    title = title if sep else path  # no ", ": the whole text is the title
    path = path if sep else ""
    terms = {w.lower(): w for w in _WORD.findall(title) if len(w) >= 3 and w.lower() not in STOPWORDS}
    terms.update({p.strip().lower(): p.strip() for p in path.split("|") if p.strip()})
    return terms


def term_names(texts: Sequence[str], members: list[list[int]], n_terms: int = 3) -> list[str]:
    """Deterministic names: the `n_terms` terms with the highest (share of the cluster's top items that contain
    the term) × log(N / items containing it), joined by " / "; a term whose words lie within a better term's
    ("Fantasy" after "Science Fiction & Fantasy") is skipped; "Topic_k" when no term stands out."""
    terms = [item_terms(t) for t in texts]
    df = Counter(key for t in terms for key in t)
    names = []
    for k, docs in enumerate(members):
        counts = Counter(key for i in docs for key in terms[i])
        need = 2 if len(docs) > 1 else 1
        scored = sorted((-(c / len(docs)) * math.log(len(texts) / df[key]), key)
                        for key, c in counts.items() if c >= need and df[key] < len(texts))
        chosen = _distinct([key for _, key in scored], n_terms)
        names.append(" / ".join(_surface(key, docs, terms) for key in chosen) or f"Topic_{k}")
    return names


def _distinct(keys: list[str], n: int) -> list[str]:
    """The first `n` keys whose word sets neither contain nor lie within an earlier chosen key's."""
    chosen: list[tuple[str, set[str]]] = []
    for key in keys:
        words = set(re.findall(r"\w+", key))
        if not any(words <= other or other <= words for _, other in chosen):
            chosen.append((key, words))
        if len(chosen) == n:
            break
    return [key for key, _ in chosen]


def _surface(key: str, docs: list[int], terms: list[dict[str, str]]) -> str:
    forms = Counter(terms[i][key] for i in docs if key in terms[i])
    return min(forms, key=lambda f: (-forms[f], f))


def dedupe_names(names: list[str]) -> list[str]:
    """Names used more than once get suffixes _0, _1, … in cluster order."""
    counts, seen = Counter(names), Counter()
    out = []
    for name in names:
        if counts[name] > 1:
            out.append(f"{name}_{seen[name]}")
            seen[name] += 1
        else:
            out.append(name)
    return out


def naming_prompt(texts: list[str], category: str = "movie") -> list[dict[str, str]]:
    """One chat conversation asking for the shared theme of a cluster's items (spec §2.6)."""
    listing = "\n".join(f"- {t}" for t in texts)
    return [{"role": "user", "content":
             f"Here are {len(texts)} {category}s enjoyed by the same type of users:\n{listing}\n\n"
             f"Infer the theme these {category}s share: common interests, frequent genres or keywords, core ideas. "
             "Answer with one abstract phrase of at most 10 words and no titles, in the format:\nTheme: <phrase>"}]


def parse_theme(reply: str) -> str | None:
    """The phrase after the first "Theme:" (its line only, `*` stripped), or None."""
    found = _THEME.search(reply or "")
    name = found.group(1).replace("*", "").strip() if found else ""
    return name or None


def name_topics(texts: Sequence[str], cluster_ids: np.ndarray, distances: np.ndarray, top_k: int = 100,
                namer: ChatBackend | None = None, cache: str | Path | None = None, n_clusters: int | None = None,
                n_terms: int = 3, category: str = "movie", batch_size: int = 4,
                max_new_tokens: int = 32) -> list[str]:
    """One unique name per cluster, in cluster order, from its `top_k` items nearest the centroid.

    Default: distinctive terms (`term_names`). With a `ChatBackend` as `namer`: its "Theme: …" answer, falling
    back to the term name when unparsable; replies go to the JSONL `cache` as they arrive, so when the endpoint
    fails (SeqrecError) the named topics are kept and a rerun asks only for the rest.
    """
    members = top_members(np.asarray(cluster_ids), np.asarray(distances), top_k, n_clusters)
    names = term_names(texts, members, n_terms)
    if namer is not None:
        replies = _llm_replies(namer, [[texts[i] for i in m] for m in members], cache, category, batch_size,
                               max_new_tokens)
        names = [parse_theme(r or "") or fallback for r, fallback in zip(replies, names, strict=True)]
    return dedupe_names(names)


def _llm_replies(namer: ChatBackend, groups: list[list[str]], cache: str | Path | None, category: str, batch_size: int,
                 max_new_tokens: int) -> list[str | None]:
    """The chat reply per non-empty cluster (None for empty clusters), cached by (topic, item fingerprint)."""
    fingerprints = [hashlib.sha1("\n".join(g).encode()).hexdigest()[:16] for g in groups]
    known = read_name_cache(cache) if cache else {}
    replies = [known.get((k, fp)) for k, fp in enumerate(fingerprints)]
    todo = [k for k, g in enumerate(groups) if g and replies[k] is None]
    for start in range(0, len(todo), max(batch_size, 1)):
        batch = todo[start : start + max(batch_size, 1)]
        answers = namer.generate([naming_prompt(groups[k], category) for k in batch], max_new_tokens)
        if len(answers) != len(batch):
            raise SeqrecError(f"the naming chat backend returned {len(answers)} replies for {len(batch)} prompts")
        for k, answer in zip(batch, answers, strict=True):
            replies[k] = str(answer)
        if cache:
            _append_cache(Path(cache), [{"topic": k, "fingerprint": fingerprints[k], "reply": replies[k]}
                                        for k in batch])
    return replies


def read_name_cache(path: str | Path) -> dict[tuple[int, str], str]:
    """(topic, fingerprint) -> reply from a topic-name cache file; empty when the file does not exist."""
    path = Path(path)
    out: dict[tuple[int, str], str] = {}
    if not path.exists():
        return out
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = loads_finite(line)
            if isinstance(raw["topic"], bool) or not isinstance(raw["topic"], int):
                raise TypeError(f"topic {raw['topic']!r} is not an integer")
            out[(raw["topic"], str(raw["fingerprint"]))] = str(raw["reply"])
        except (KeyError, TypeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise DataError(f"{path}:{number}: not a topic-name cache line ({type(exc).__name__}: {exc}); "
                            "each line needs topic, fingerprint and reply; fix or delete the line") from None
    return out


def _append_cache(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------- the sketcher


def item_key(item: RatedItem) -> str:
    """How the sketch keys an item: its id, or its text when the id is unknown."""
    return item.item or item.text


@dataclass
class InterestSketcher:
    """Item → topic map and topic names; renders a row's sketch from its history alone."""

    names: list[str]  # [K] topic names, cluster order
    topic_of: dict[str, int]  # item key (id, or text without id) -> topic id
    theta: float = 4.0  # mean rating ≥ theta → liked, else disliked
    settings: dict[str, Any] = field(default_factory=dict)  # how it was built (embedder, k, seed, …)

    def topic_means(self, history: Sequence[RatedItem]) -> dict[int, float]:
        """Mean rating per topic over the history items with a known topic."""
        sums: dict[int, list[float]] = {}
        for h in history:
            topic = self.topic_of.get(item_key(h))
            if topic is not None:
                sums.setdefault(topic, []).append(h.rating)
        return {k: sum(v) / len(v) for k, v in sums.items()}

    def liked_disliked(self, history: Sequence[RatedItem]) -> tuple[list[int], list[int]]:
        """(liked topics, disliked topics), each in cluster order."""
        means = self.topic_means(history)
        liked = sorted(k for k, m in means.items() if m >= self.theta)
        return liked, sorted(k for k in means if k not in liked)

    def sketch_history(self, history: Sequence[RatedItem]) -> str:
        """The sketch text of a history; "" when no history item has a topic."""
        liked, disliked = self.liked_disliked(history)
        blocks = []
        if liked:
            blocks.append(f"The user shows preference for the following topics (ratings ≥ {self.theta:g}):\n"
                          + "\n".join(f"- {self.names[k]}" for k in liked))
        if disliked:
            blocks.append(f"The user shows dislike for the following topics (ratings < {self.theta:g}):\n"
                          + "\n".join(f"- {self.names[k]}" for k in disliked))
        return "\n\n".join(blocks)

    def sketch(self, row: RatingRow) -> str:
        """The row's sketch, from `row.history` only (interactions strictly before its target)."""
        return self.sketch_history(row.history)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": SKETCH_FORMAT, "version": SKETCH_VERSION, "theta": self.theta, "names": self.names,
                   "settings": self.settings, "topic_of": self.topic_of}
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> InterestSketcher:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"interest sketcher file not found: {path} (build one with build_sketcher(...).save)")
        raw = parse_json(read_text(path), path)
        if not isinstance(raw, dict) or raw.get("format") != SKETCH_FORMAT:
            raise DataError(f"{path}: not an interest sketcher file (format {SKETCH_FORMAT!r} expected)")
        for key in ("names", "topic_of", "theta"):
            if key not in raw:
                raise DataError(f"{path}: missing key {key!r}; rebuild the sketcher")
        theta, names, topic_of = raw["theta"], raw["names"], raw["topic_of"]
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta):
            raise DataError(f"{path}: theta must be a finite number, got {theta!r}; rebuild the sketcher")
        if not isinstance(names, list) or not isinstance(topic_of, dict) or \
                not all(isinstance(v, int) and not isinstance(v, bool) for v in topic_of.values()):
            raise DataError(f"{path}: names must be a list and topic_of map items to integer topics; "
                            "rebuild the sketcher")
        sketcher = cls([str(n) for n in names], {str(k): v for k, v in topic_of.items()}, float(theta),
                       dict(raw.get("settings") or {}))
        bad = [k for k, v in sketcher.topic_of.items() if not 0 <= v < len(sketcher.names)]
        if bad:
            raise DataError(f"{path}: item {bad[0]!r} has a topic outside 0..{len(sketcher.names) - 1}")
        return sketcher


def build_sketcher(items: Mapping[str, str], embedder: str | Embedder = "minilm", n_clusters: int = 20,
                   theta: float = 4.0, top_k: int = 100, namer: ChatBackend | None = None,
                   cache: str | Path | None = None, seed: int = 0, niter: int = 30, nredo: int = 5,
                   batch_size: int = 256, n_terms: int = 3, category: str = "movie") -> InterestSketcher:
    """Embed, cluster and name every catalogue item (`items`: key -> text, e.g. `RatingData.items()`).

    Clustering uses item texts only (no ratings), so clustering test items too leaks no labels."""
    keys = sorted(items)
    texts = [items[k] for k in keys]
    ids, distances = cluster_items(embed_items(texts, embedder, batch_size), n_clusters, niter, nredo, seed)
    names = name_topics(texts, ids, distances, top_k, namer, cache, n_clusters, n_terms, category)
    settings = {"embedder": embedder if isinstance(embedder, str) else "callable", "n_clusters": n_clusters,
                "niter": niter, "nredo": nredo, "seed": seed, "top_k": top_k, "items": len(keys),
                "naming": "llm" if namer is not None else "terms"}
    return InterestSketcher(names, {k: int(c) for k, c in zip(keys, ids.tolist(), strict=True)}, theta, settings)


# ---------------------------------------------------------------- prompt length


def prompt_token_report(rows: Sequence[RatingRow], sketcher: InterestSketcher, count_tokens: Callable[[str], int],
                        max_history: int = 10, category: str = "movie",
                        scale: RatingScale = DEFAULT_SCALE) -> dict[str, float]:
    """Mean user-message tokens: sketch + last `max_history` items vs the raw full history, and the reduction."""
    if not rows:
        raise DataError("prompt_token_report needs at least one rating row")
    sketched, raw, sketch_only = [], [], []
    for row in rows:
        sketch = sketcher.sketch(row)
        sketch_only.append(count_tokens(sketch) if sketch else 0)
        sketched.append(count_tokens(user_message(row, sketch, max_history, category, scale)))
        raw.append(count_tokens(user_message(row, "", len(row.history), category, scale)))
    mean_sketched, mean_raw = float(np.mean(sketched)), float(np.mean(raw))
    return {"rows": float(len(rows)), "sketch_tokens": float(np.mean(sketch_only)),
            "sketch_prompt_tokens": mean_sketched, "raw_prompt_tokens": mean_raw,
            "reduction": 1.0 - mean_sketched / mean_raw if mean_raw else 0.0}
