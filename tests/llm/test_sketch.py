"""Interest sketch: clustering a planted catalogue, topic names (terms and a fake chat model with a resumable
cache), the mean-rating rule, no leakage from the target or later interactions, save/load, prompt lengths."""

from __future__ import annotations

import dataclasses
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from seqrec.errors import ConfigError, DataError, SeqrecError
from seqrec.llm.prompts import user_message
from seqrec.llm.rating_rows import SYNTHETIC_TOPICS, Event, split_users, synthetic_rating_data
from seqrec.llm.rows import RatedItem, RatingData
from seqrec.llm.sketch import (
    InterestSketcher,
    build_sketcher,
    cluster_items,
    dedupe_names,
    embed_items,
    item_terms,
    name_topics,
    parse_theme,
    prompt_token_report,
    read_name_cache,
    term_names,
)

K = 4
WORDS = [words for words, _ in SYNTHETIC_TOPICS[:K]]  # "Space Saga", "Haunted House", "Love Letters", "Cartoon Pals"


def planted_topic(text: str) -> int:
    return next(k for k, words in enumerate(WORDS) if text.startswith(words))


def fake_embedder(texts: list[str]) -> np.ndarray:
    """One-hot planted topic + small noise seeded by the text, so it does not depend on the order.  # [T, 8]"""
    out = np.zeros((len(texts), 8), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i, planted_topic(text)] = 1.0
        out[i] += 0.05 * np.random.default_rng(zlib.crc32(text.encode())).standard_normal(8)
    return out


@pytest.fixture(scope="module")
def data() -> RatingData:
    return synthetic_rating_data(num_users=30, num_items=40, num_topics=K, seed=1)


@pytest.fixture(scope="module")
def sketcher(data: RatingData) -> InterestSketcher:
    return build_sketcher(data.items(), fake_embedder, n_clusters=K, top_k=8, seed=0)


def topic_named(sketcher: InterestSketcher, items: dict[str, str], planted: int) -> int:
    """The cluster id that holds the planted topic's items."""
    (cluster,) = {sketcher.topic_of[key] for key, text in items.items() if planted_topic(text) == planted}
    return cluster


# ---------------------------------------------------------------- clusters and names


def test_clusters_recover_the_planted_topics(data: RatingData) -> None:
    texts = list(data.items().values())
    ids, distances = cluster_items(embed_items(texts, fake_embedder), n_clusters=K, seed=0)
    assert ids.shape == distances.shape == (len(texts),) and (distances >= 0).all()
    planted = [planted_topic(t) for t in texts]
    assert len({(p, c) for p, c in zip(planted, ids.tolist(), strict=True)}) == K  # one cluster per planted topic


def test_term_names_contain_the_planted_words(sketcher: InterestSketcher, data: RatingData) -> None:
    items = data.items()
    for planted, (words, path) in enumerate(SYNTHETIC_TOPICS[:K]):
        name = sketcher.names[topic_named(sketcher, items, planted)]
        terms = set(name.split(" / "))
        assert 2 <= len(terms) <= 3 and terms <= set(words.split()) | set(path.split("|")), name
    assert sketcher.settings["n_clusters"] == K and sketcher.settings["naming"] == "terms"


def test_item_terms_and_dedupe() -> None:
    terms = item_terms("Up, Close, and Personal (DVD), Drama|Romance")
    assert set(terms) == {"close", "personal", "drama", "romance"}  # short words, stopwords and formats dropped
    assert terms["drama"] == "Drama"
    assert dedupe_names(["A", "B", "A", "C", "A"]) == ["A_0", "B", "A_1", "C", "A_2"]


def test_term_names_skip_overlapping_terms() -> None:
    texts = ["X1, Science Fiction & Fantasy|Fantasy|Robots", "X2, Science Fiction & Fantasy|Fantasy|Robots",
             "Y1, Horror", "Y2, Horror", "Z1, Drama"]
    assert term_names(texts, [[0, 1], [2, 3], [4]]) == ["Fantasy / Robots", "Horror", "Drama"]
    assert term_names(texts, [[0, 1], []]) == ["Fantasy / Robots", "Topic_1"]


# ---------------------------------------------------------------- the liked / disliked rule


def test_sketch_by_hand(sketcher: InterestSketcher, data: RatingData) -> None:
    items = data.items()
    by_topic = {p: [k for k, t in items.items() if planted_topic(t) == p] for p in range(K)}
    space, haunted, love, _cartoon = (topic_named(sketcher, items, p) for p in range(K))
    history = (RatedItem(items[by_topic[0][0]], 5.0, by_topic[0][0]), RatedItem(items[by_topic[0][1]], 4.0,
               by_topic[0][1]), RatedItem(items[by_topic[1][0]], 4.0, by_topic[1][0]),  # haunted: mean 3.5
               RatedItem(items[by_topic[1][1]], 3.0, by_topic[1][1]), RatedItem(items[by_topic[2][0]], 2.0,
               by_topic[2][0]), RatedItem("Unknown film, Drama", 5.0, "zzz"))  # not in the map: ignored
    assert sketcher.topic_means(history) == {space: 4.5, haunted: 3.5, love: 2.0}
    disliked = "\n".join(f"- {sketcher.names[k]}" for k in sorted([haunted, love]))
    assert sketcher.sketch_history(history) == (
        "The user shows preference for the following topics (ratings ≥ 4):\n"
        f"- {sketcher.names[space]}\n\n"
        "The user shows dislike for the following topics (ratings < 4):\n" + disliked)
    lenient = dataclasses.replace(sketcher, theta=3.5)
    assert lenient.liked_disliked(history) == (sorted([space, haunted]), [love])
    assert "(ratings ≥ 3.5)" in lenient.sketch_history(history)
    assert sketcher.sketch_history(()) == "" and sketcher.sketch_history(history[-1:]) == ""


def test_items_without_ids_are_keyed_by_text() -> None:
    sketcher = InterestSketcher(["Cosmos", "Ghosts"], {"Alien, Sci-Fi": 0, "B1": 1})
    history = (RatedItem("Alien, Sci-Fi", 5.0), RatedItem("Boo, Horror", 1.0, "B1"))
    assert sketcher.liked_disliked(history) == ([0], [1])


# ---------------------------------------------------------------- no leakage


def test_sketch_uses_only_the_history(sketcher: InterestSketcher, data: RatingData) -> None:
    for row in data.train + data.valid + data.test:
        sketch = sketcher.sketch(row)
        assert sketch == sketcher.sketch_history(row.history)
        assert sketcher.sketch(dataclasses.replace(row, label=6.0 - row.label)) == sketch
        assert sketcher.sketch(dataclasses.replace(row, item="x", target="Other, Drama")) == sketch
    valid = {r.user: sketcher.sketch(r) for r in data.valid}
    assert all(sketcher.sketch(r) == valid[r.user] for r in data.test)


def test_later_interactions_never_change_a_sketch(sketcher: InterestSketcher, data: RatingData) -> None:
    """Flip the ratings of every interaction from position p on: rows whose targets come at or after p keep
    their sketch (a sketch built from the whole pre-valid history, as the original does, would not)."""
    events = {r.user: [Event(h.item, h.text, h.rating) for h in r.history] + [Event(r.item, r.target, r.label)]
              for r in data.valid}
    for r in data.test:
        events[r.user].append(Event(r.item, r.target, r.label))
    users = sorted(events)
    before = split_users([(u, events[u]) for u in users], "before")
    changed_somewhere = False
    for p in range(3, 9):
        flipped = [(u, [e if t < p else dataclasses.replace(e, rating=6.0 - e.rating)
                        for t, e in enumerate(events[u])]) for u in users]
        after = split_users(flipped, "after")
        for split in ("train", "valid", "test"):
            for old, new in zip(before.split(split), after.split(split), strict=True):
                assert old.sample_id == new.sample_id
                if len(old.history) <= p:
                    assert sketcher.sketch(new) == sketcher.sketch(old), (p, old.sample_id)
                changed_somewhere |= sketcher.sketch(new) != sketcher.sketch(old)
    assert changed_somewhere  # the check can fail


# ---------------------------------------------------------------- save / load


def test_save_and_load(sketcher: InterestSketcher, data: RatingData, tmp_path: Path) -> None:
    path = sketcher.save(tmp_path / "run" / "sketcher.json")
    loaded = InterestSketcher.load(path)
    assert loaded == sketcher
    assert all(loaded.sketch(r) == sketcher.sketch(r) for r in data.test)
    with pytest.raises(DataError, match="not found"):
        InterestSketcher.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="not an interest sketcher file"):
        InterestSketcher.load(tmp_path / "other.json")
    raw = json.loads(path.read_text())
    raw["topic_of"]["i0"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="topic outside"):
        InterestSketcher.load(path)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("theta", float("nan"), "not valid JSON|not a finite number|NaN"),
    ("theta", True, "theta must be a finite number"),
    ("theta", "4", "theta must be a finite number"),
    ("topic_of", {"i0": 1.5}, "integer topics"),
    ("topic_of", {"i0": True}, "integer topics"),
    ("names", "Cosmos", "names must be a list"),
])
def test_a_damaged_sketcher_file_is_a_data_error(sketcher: InterestSketcher, tmp_path: Path, key: str,
                                                 value: object, expected: str) -> None:
    path = sketcher.save(tmp_path / "sketcher.json")
    raw = json.loads(path.read_text())
    raw[key] = value
    path.write_text(json.dumps(raw))  # json.dumps writes NaN as the non-JSON token NaN
    with pytest.raises(DataError, match=expected):
        InterestSketcher.load(path)


@pytest.mark.parametrize("line", ['{"topic": Infinity, "fingerprint": "a", "reply": "x"}',
                                  '{"topic": 1e400, "fingerprint": "a", "reply": "x"}',
                                  '{"topic": "1", "fingerprint": "a", "reply": "x"}', '[1, 2]'])
def test_a_damaged_name_cache_line_names_the_line(tmp_path: Path, line: str) -> None:
    cache = tmp_path / "names.jsonl"
    cache.write_text('\ufeff{"topic": 0, "fingerprint": "a", "reply": "ok"}\r\n' + line + "\n")
    with pytest.raises(DataError, match="names.jsonl:2: not a topic-name cache line"):
        read_name_cache(cache)


# ---------------------------------------------------------------- LLM naming


class FakeNamer:
    """A ChatBackend stand-in: answers by the planted words in the prompt; can fail after some calls."""

    context_length = 4096

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_after = fail_after

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, conversations: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise SeqrecError("cannot reach the chat endpoint http://x (refused)")
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            self.calls.append(prompt)
            if "Space Saga" in prompt:
                out.append("**Theme:** Cosmic adventures*\nmore text")
            elif "Haunted House" in prompt:
                out.append("I am not sure.")
            else:
                out.append("Theme: Gentle stories")
        return out


def naming_inputs(data: RatingData) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = sorted(data.items().values())
    ids, distances = cluster_items(fake_embedder(texts), n_clusters=K, seed=0)
    return texts, ids, distances


def test_llm_names_parse_fallback_and_dedupe(data: RatingData) -> None:
    texts, ids, distances = naming_inputs(data)
    default = name_topics(texts, ids, distances, top_k=5)
    namer = FakeNamer()
    names = name_topics(texts, ids, distances, top_k=5, namer=namer, batch_size=3)
    assert len(namer.calls) == K and all("Theme: <phrase>" in c and c.count("\n- ") == 5 for c in namer.calls)
    cluster = {planted_topic(texts[i]): int(ids[i]) for i in range(len(texts))}
    assert names[cluster[0]] == "Cosmic adventures"
    assert names[cluster[1]] == default[cluster[1]]  # unparsable reply: the term name
    assert {names[cluster[2]], names[cluster[3]]} == {"Gentle stories_0", "Gentle stories_1"}


def test_parse_theme() -> None:
    assert parse_theme("Theme: Space operas\nsecond line") == "Space operas"
    assert parse_theme("**Theme:** *Noir*") == "Noir"
    assert parse_theme("Theme:   ") is None and parse_theme("no theme") is None


def test_llm_naming_cache_resumes_after_a_failing_endpoint(data: RatingData, tmp_path: Path) -> None:
    texts, ids, distances = naming_inputs(data)
    cache = tmp_path / "topic_names.jsonl"
    with pytest.raises(SeqrecError, match="cannot reach"):
        name_topics(texts, ids, distances, top_k=5, namer=FakeNamer(fail_after=2), cache=cache, batch_size=1)
    assert len(read_name_cache(cache)) == 2  # the two answered topics are kept
    resumed = FakeNamer()
    names = name_topics(texts, ids, distances, top_k=5, namer=resumed, cache=cache, batch_size=1)
    assert len(resumed.calls) == 2  # only the rest was asked
    assert names == name_topics(texts, ids, distances, top_k=5, namer=FakeNamer())
    again = FakeNamer()
    assert name_topics(texts, ids, distances, top_k=5, namer=again, cache=cache) == names and not again.calls
    fresh = FakeNamer()
    name_topics(texts, ids, distances, top_k=4, namer=fresh, cache=cache)
    assert len(fresh.calls) == K  # other items nearest the centroids: a new fingerprint, asked again
    with cache.open("a") as f:
        f.write("{broken\n")
    with pytest.raises(DataError, match=r"topic_names\.jsonl:\d+: not a topic-name cache line"):
        read_name_cache(cache)


def test_the_sketch_stage_names_topics_at_an_endpoint_safely(data: RatingData, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from seqrec.distill.chat import OpenAICompatibleChat
    from seqrec.llm.stage_config import SketchStageConfig
    from seqrec.llm.stage_sketch import sketch_stage

    def stage(name: str, url: str | None, **options: object) -> Path:
        config = SketchStageConfig(clusters=K, top_k=5, tokenizer=None, endpoint=url, endpoint_model="m", **options)
        return sketch_stage(config, tmp_path / name, data, embedder=fake_embedder)

    with pytest.raises(ConfigError, match="plain http to the non-local endpoint http://example.com/v1.*--allow-http"):
        stage("a", "http://example.com/v1")
    with pytest.raises(ConfigError, match="apply to --endpoint only"):
        stage("d", None, allow_http=True)
    monkeypatch.delenv("SEQREC_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SEQREC_TEST_KEY .* is unset or empty"):
        stage("b", "https://example.com/v1", api_key_env="SEQREC_TEST_KEY")
    monkeypatch.setenv("SEQREC_TEST_KEY", "secret")
    seen: list[tuple[str, str | None]] = []

    def answer(self: OpenAICompatibleChat, conversations: list, max_new_tokens: int) -> list[str]:
        seen.append((self.url, self.api_key))  # no request is sent
        return ["Theme: Named"] * len(conversations)

    monkeypatch.setattr(OpenAICompatibleChat, "generate", answer)
    stage("c", "http://example.com/v1", api_key_env="SEQREC_TEST_KEY", allow_http=True)
    assert seen and set(seen) == {("http://example.com/v1/chat/completions", "secret")}


# ---------------------------------------------------------------- errors and prompt length


def test_embedding_and_clustering_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SeqrecError, match=r"shape \(3,\)"):
        embed_items(["a", "b", "c"], lambda texts: np.zeros(3))
    with pytest.raises(ConfigError, match="lower n_clusters"):
        cluster_items(np.zeros((3, 2), dtype=np.float32), n_clusters=5)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(SeqrecError, match=r"pip install 'seqrec\[llm\]'"):
        cluster_items(np.eye(4, dtype=np.float32), n_clusters=2)


def test_prompt_token_report(sketcher: InterestSketcher, data: RatingData) -> None:
    def words(text: str) -> int:
        return len(text.split())

    rows = data.test
    report = prompt_token_report(rows, sketcher, words, max_history=3)
    raw = np.mean([words(user_message(r, "", len(r.history))) for r in rows])
    sketched = np.mean([words(user_message(r, sketcher.sketch(r), 3)) for r in rows])
    assert report["raw_prompt_tokens"] == pytest.approx(raw)
    assert report["sketch_prompt_tokens"] == pytest.approx(sketched)
    assert report["reduction"] == pytest.approx(1 - sketched / raw) and report["rows"] == len(rows)
    long_row = dataclasses.replace(rows[0], history=rows[0].history * 20)  # a long raw history
    assert prompt_token_report([long_row], sketcher, words)["reduction"] > 0.5
    with pytest.raises(DataError, match="at least one"):
        prompt_token_report([], sketcher, words)
