"""The HTTP app on tiny synthetic runs: every endpoint gives the library's numbers, steering per request equals the
library's steered scores, and bad requests get clear 4xx answers without hurting the server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import seqrec
from helpers import TINY_SYNTHETIC, assert_cli_error
from seqrec.data.config import DataConfig
from seqrec.data.synthetic import SyntheticConfig
from seqrec.experiment import ExperimentConfig
from seqrec.runs import load_recommending
from seqrec.serving.batching import Direct, MicroBatcher
from seqrec.serving.http import RUN_ENV, ServeSettings, app_from_env, create_app, load_service
from seqrec.steering import SAEConfig, probe, train_sae
from seqrec.steering.pipeline import popsteer_run

TINY_SAE = SAEConfig(k=4, scale=4, epochs=3, batch_size=128, lr=3e-3, max_vectors=1000, valid_vectors=50)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny SASRec run, an SAE run with a popularity probe inside it, and a steered run (α = 1.5) inside that."""
    exp = ExperimentConfig(
        data=DataConfig(name="synthetic", synthetic=SyntheticConfig(**TINY_SYNTHETIC)),
        model=seqrec.SASRecConfig(max_len=10, hidden=16, blocks=1, dropout=0.1),
        train=seqrec.TrainConfig(epochs=2, batch_size=32, lr=3e-3, patience=0, device="cpu", seed=0),
        eval=seqrec.EvalConfig(ks=(5, 10)), name="tiny")
    run = seqrec.run_experiment(exp, tmp_path_factory.mktemp("serve") / "runs", progress=False)
    data = seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)
    sae = train_sae(run, TINY_SAE, data=data, progress=False)
    probe(sae, data, profiles=256, seed=0)
    steered = popsteer_run(sae, alpha=1.5, data=data)
    return {"base": run.path, "sae": sae.path, "steered": steered.path}  # type: ignore[dict-item]


@pytest.fixture(scope="module")
def client(runs: dict[str, Path]) -> TestClient:
    return TestClient(create_app(load_service(runs["base"])))


@pytest.fixture(scope="module")
def sae_client(runs: dict[str, Path]) -> TestClient:
    return TestClient(create_app(load_service(runs["sae"], ServeSettings(cache_size=2))))


def library_rows(rows: list[dict], drop: str) -> list[dict]:
    return [{key: value for key, value in row.items() if key != drop} for row in rows]


def test_recommend_for_a_user_is_the_library_list(client: TestClient, runs: dict[str, Path]) -> None:
    rec = load_recommending(runs["base"]).recommender
    for user in rec.user_map.external[:5]:
        answer = client.post("/recommend", json={"user": user, "k": 5})
        assert answer.status_code == 200
        body = answer.json()
        assert body["recommendations"] == library_rows(rec.recommend([user], 5), "user")
        assert (body["user"], body["k"], body["mask_seen"], body["steering"], body["unknown_items"]) == \
            (user, 5, True, None, None)
    user = rec.user_map.external[0]
    unmasked = client.post("/recommend", json={"user": user, "k": 40, "mask_seen": False}).json()
    assert unmasked["recommendations"] == library_rows(rec.recommend([user], 40, mask_seen=False), "user")
    seen = {rec.item_map.external[i - 1] for i in rec.histories[0]}
    masked = client.post("/recommend", json={"user": user, "k": 40 - len(seen)}).json()["recommendations"]
    assert not seen & {row["item"] for row in masked} and seen <= {row["item"] for row in unmasked["recommendations"]}


def test_numeric_ids_read_as_ids(client: TestClient, runs: dict[str, Path]) -> None:
    rec = load_recommending(runs["base"]).recommender
    user = rec.user_map.external[3]
    assert user.isdigit()
    as_number = client.post("/recommend", json={"user": int(user), "k": 3}).json()
    assert as_number["user"] == user
    assert as_number["recommendations"] == client.post("/recommend", json={"user": user, "k": 3}).json()[
        "recommendations"]


def test_recommend_for_a_session_skips_and_lists_unknown_items(client: TestClient, runs: dict[str, Path]) -> None:
    rec = load_recommending(runs["base"]).recommender
    session = ["3", "no-such-item", "7", "12", "gone"]
    body = client.post("/recommend", json={"items": session, "k": 4}).json()
    expected = rec.recommend_sessions([session], 4)
    assert body["recommendations"] == library_rows(expected.rows, "session")
    assert body["unknown_items"] == ["no-such-item", "gone"] and body["user"] is None
    assert not {"3", "7", "12"} & {row["item"] for row in body["recommendations"]}


def test_allow_and_deny(client: TestClient, runs: dict[str, Path]) -> None:
    rec = load_recommending(runs["base"]).recommender
    user = rec.user_map.external[1]
    allow = [str(i) for i in range(1, 41, 3)]
    body = client.post("/recommend", json={"user": user, "k": 3, "allow": allow, "deny": allow[:2],
                                           "mask_seen": False}).json()
    assert body["recommendations"] == library_rows(
        rec.recommend([user], 3, mask_seen=False, allow=allow, deny=allow[:2]), "user")
    assert {row["item"] for row in body["recommendations"]} <= set(allow[2:])


def test_similar_items_are_the_library_list(client: TestClient, runs: dict[str, Path]) -> None:
    rec = load_recommending(runs["base"]).recommender
    body = client.post("/similar", json={"item": "5", "k": 6, "deny": ["1"]}).json()
    expected = rec.similar_items(["5"], 6, deny=["1"])
    assert body["item"] == "5"
    assert body["similar"] == [{"rank": r["rank"], "item": r["similar"], "score": r["score"], "title": r["title"]}
                               for r in expected]
    assert len(body["similar"]) == 6 and not {"5", "1"} & {row["item"] for row in body["similar"]}
    assert client.post("/similar", json={"item": "5", "k": 39}).status_code == 200
    too_many = client.post("/similar", json={"item": "5", "k": 40})
    assert too_many.status_code == 422 and "at most 39" in too_many.json()["detail"]


def test_item_details_come_from_the_catalogue(client: TestClient, runs: dict[str, Path]) -> None:
    catalog = load_recommending(runs["base"]).recommender.catalog
    body = client.get("/items/9").json()
    genres = list(catalog.attributes["genre"][9])
    assert body == {"item": "9", "title": catalog.title(9), "attributes": {"genre": genres}}
    assert body["title"] and body["attributes"]["genre"]
    missing = client.get("/items/999")
    assert missing.status_code == 404 and missing.json()["id"] == "999" and "999" in missing.json()["detail"]


def test_health_metadata_and_docs(client: TestClient, runs: dict[str, Path]) -> None:
    assert client.get("/health").json() == {"status": "ok", "run": "tiny"}
    meta = client.get("/metadata").json()
    model_run = load_recommending(runs["base"]).model_run
    assert meta["protocol"] == model_run.metrics["protocol"] and meta["test_metrics"] == model_run.metrics["test"]
    assert (meta["run"], meta["kind"], meta["users"], meta["items"], meta["mask_seen"], meta["steering"]) == \
        ("tiny", "base", 60, 40, True, {})
    assert meta["model"]["name"] == "sasrec" and meta["data"]["name"] == "synthetic" and meta["batching"] is True
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar", "/items/{item_id}", "/health", "/metadata"} <= set(paths)


def test_unknown_ids_are_404_naming_the_id(client: TestClient) -> None:
    cases = [("/recommend", {"user": "nobody"}, "user", "nobody"),
             ("/recommend", {"items": ["x1", "x2"]}, "items", "x1"),
             ("/recommend", {"user": "1", "allow": ["2", "bad-item"]}, "allow", "bad-item"),
             ("/recommend", {"user": "1", "deny": ["bad-item"]}, "deny", "bad-item"),
             ("/similar", {"item": "404"}, "item", "404")]
    for path, body, field, unknown in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == 404, body
        assert answer.json()["field"] == field and answer.json()["id"] == unknown
        assert repr(unknown) in answer.json()["detail"]


def test_k_above_the_catalogue_says_so(client: TestClient) -> None:
    assert client.post("/recommend", json={"user": "1", "k": 40, "mask_seen": False}).status_code == 200
    for body, most in [({"user": "1", "k": 41}, 40), ({"user": "1", "k": 10**30}, 40),
                       ({"user": "1", "k": 3, "allow": ["1", "2", "3"], "deny": ["3"]}, 2)]:
        answer = client.post("/recommend", json=body)
        assert answer.status_code == 422 and answer.json()["field"] == "k"
        assert f"at most {most}" in answer.json()["detail"]


def test_steering_a_run_without_it_is_refused(client: TestClient) -> None:
    answer = client.post("/recommend", json={"user": "1", "steering": {"alpha": 1.5}})
    assert answer.status_code == 422 and answer.json()["field"] == "steering"
    assert "offers no steering" in answer.json()["detail"]


def test_live_steering_equals_the_library(sae_client: TestClient, runs: dict[str, Path]) -> None:
    popsteer = load_recommending(runs["sae"]).steering["popsteer"]
    width = popsteer.parameters()["neurons"]["max"]
    for params in [{"alpha": 2.0}, {"alpha": 0.5, "neurons": 3}, {"alpha": 2.0}, {"name": "popsteer", "alpha": 4}]:
        body = sae_client.post("/recommend", json={"user": "2", "k": 8, "steering": params}).json()
        values = {key: value for key, value in params.items() if key != "name"}
        expected = popsteer.recommender(**values).recommend(["2"], 8)
        assert body["recommendations"] == library_rows(expected, "user")
        assert body["steering"] == {"name": "popsteer", "neurons": width, "stage": "pre", **values}
        session = sae_client.post("/recommend", json={"items": ["4", "8"], "k": 5, "steering": params}).json()
        assert session["recommendations"] == library_rows(
            popsteer.recommender(**values).recommend_sessions([["4", "8"]], 5).rows, "session")
    plain = sae_client.post("/recommend", json={"user": "2", "k": 8}).json()
    steered = sae_client.post("/recommend", json={"user": "2", "k": 8, "steering": {"alpha": 4}}).json()
    assert [r["score"] for r in plain["recommendations"]] != [r["score"] for r in steered["recommendations"]]
    meta = sae_client.get("/metadata").json()
    assert meta["kind"] == "sae" and meta["steering"]["popsteer"]["alpha"]["max"] == 10.0


def test_steering_parameters_are_checked(sae_client: TestClient) -> None:
    cases = [({"alpha": 11}, "steering.alpha", "out of range"), ({"alpha": -1}, "steering.alpha", "[0.0, 10.0]"),
             ({"alpha": "high"}, "steering.alpha", "finite number"), ({"alpha": True}, "steering.alpha", "number"),
             ({"neurons": 0}, "steering.neurons", "out of range"), ({"neurons": 2.5}, "steering.neurons", "integer"),
             ({"beta": 1}, "steering.beta", "popsteer (alpha, neurons, stage)"),
             ({"name": "recftt"}, "steering.name", "choose one of popsteer")]
    for params, field, message in cases:
        answer = sae_client.post("/recommend", json={"user": "2", "steering": params})
        assert answer.status_code == 422, params
        assert answer.json()["field"] == field and message in answer.json()["detail"], answer.json()


def test_steered_recommenders_are_cached_and_bounded(runs: dict[str, Path]) -> None:
    service = load_service(runs["sae"], ServeSettings(cache_size=2))
    client = TestClient(create_app(service))
    for alpha in [1.0, 2.0, 1.0, 3.0, 4.0]:
        assert client.post("/recommend", json={"user": "2", "steering": {"alpha": alpha}}).status_code == 200
    assert len(service.steered) == 2
    cached = list(service.steered._cache)
    assert [dict(choice.params)["alpha"] for choice in cached] == [3.0, 4.0]
    first = service.steered.get(cached[0])
    assert service.steered.get(cached[0]) is first  # a hit returns the same recommender, nothing rebuilt


def test_a_steered_run_serves_its_saved_setting(runs: dict[str, Path]) -> None:
    client = TestClient(create_app(load_service(runs["steered"])))
    body = client.post("/recommend", json={"user": "5", "k": 6}).json()
    assert body["recommendations"] == library_rows(load_recommending(runs["steered"]).recommender.recommend(["5"], 6),
                                                   "user")
    assert client.get("/metadata").json()["kind"] == "steered"


BAD_BODIES: list[tuple[object, str | None]] = [
    ({}, None), ({"user": "1", "items": ["1"]}, None), ({"items": []}, "items"), ({"user": ""}, "user"),
    ({"user": "1", "k": 0}, "k"), ({"user": "1", "k": -3}, "k"), ({"user": "1", "k": "ten"}, "k"),
    ({"user": "1", "k": 2.5}, "k"), ({"user": "1", "k": None}, "k"), ({"user": ["1"]}, "user"),
    ({"user": {"id": 1}}, "user"), ({"items": "1 2 3"}, "items"), ({"items": [["1"]]}, "items"),
    ({"user": "1", "mask_seen": "maybe"}, "mask_seen"), ({"user": "1", "allow": "1"}, "allow"),
    ({"user": "1", "steering": [1.5]}, "steering"), ({"user": "1", "steering": {"alpha": [1]}}, "steering"),
    ({"user": "1", "kk": 10}, "kk"), ({"user": "1", "alpha": 1.5}, "alpha"), ([], None), ("user", None),
    ({"user": "x" * 300}, "user"), ({"items": ["1"] * 10_001}, "items"),
]


def test_bad_bodies_get_4xx_and_the_server_keeps_serving(client: TestClient) -> None:
    for body, field in BAD_BODIES:
        answer = client.post("/recommend", json=body)
        assert answer.status_code == 422, body
        errors = answer.json()["detail"]
        assert isinstance(errors, list) and errors
        if field is not None:
            assert any(field in map(str, error["loc"]) for error in errors), (body, errors)
    raw = [(b'{"user": "1",', "application/json", 422), (b"\xff\xfe", "application/json", 422),
           (b"", "application/json", 422), (b"NaN", "application/json", 422),
           (b'{"user": "1", "k": 1e400}', "application/json", 422), (b'{"user": "1"}', "text/plain", 415),
           (b'{"user": "1"}', "", 415), (b"", "", 415)]
    for content, kind, status in raw:
        answer = client.post("/recommend", content=content, headers={"content-type": kind} if kind else {})
        assert answer.status_code == status and answer.json()["detail"], (content, answer.text)
    assert "Content-Type: application/json" in answer.json()["detail"]
    for path, body in [("/similar", {"item": "1", "k": 0}), ("/similar", {}), ("/similar", {"item": "1", "x": 1})]:
        assert client.post(path, json=body).status_code == 422
    assert client.get("/recommend").status_code == 405
    assert client.get("/no-such-page").status_code == 404
    huge = client.post("/recommend", content=b'{"items": ["' + b"1" * (5 * 2**20) + b'"]}',
                       headers={"content-type": "application/json"})
    assert huge.status_code in (413, 422)
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/recommend", json={"user": "1", "k": 2}).status_code == 200


def test_batched_concurrent_requests_equal_one_at_a_time(runs: dict[str, Path]) -> None:
    service = load_service(runs["sae"])
    calls: list[int] = []
    answer = service.answer
    service.answer = lambda options, inputs: calls.append(len(inputs)) or answer(options, inputs)  # type: ignore[method-assign]
    batched = create_app(service, ServeSettings(batching=True, window_ms=5))
    direct = create_app(load_service(runs["sae"]), ServeSettings(batching=False))
    users = [str(u) for u in range(1, 21)] + ["nobody", "3"]
    bodies = [{"user": u, "k": 5} for u in users] + [{"items": ["1", "u", "9"], "k": 5},
                                                     {"user": "4", "k": 5, "steering": {"alpha": 2.0}}]

    async def ask(app: object) -> list[tuple[int, dict]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
            answers = await asyncio.gather(*(http.post("/recommend", json=body) for body in bodies))
        return [(a.status_code, a.json()) for a in answers]

    together, alone = asyncio.run(ask(batched)), asyncio.run(ask(direct))
    assert [status for status, _ in together] == [status for status, _ in alone]
    for (_, batch), (_, one) in zip(together, alone, strict=True):  # a batch's float sums may round differently
        scores = [row.pop("score") for row in batch.get("recommendations", [])]
        assert scores == pytest.approx([row.pop("score") for row in one.get("recommendations", [])], rel=1e-5)
        assert batch == one
    assert [status for status, _ in together].count(404) == 1 and together[-3][0] == 200
    assert max(calls) >= 10 and len(calls) <= 4  # 21 user requests scored in at most a few calls


def test_a_failing_input_fails_alone_in_a_batch() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def handle(key: str, inputs: list[int]) -> list[object]:
        if any(value < 0 for value in inputs):
            raise ValueError("a negative input spoils the batch")
        return [value * 10 for value in inputs]

    def handle_each(key: str, inputs: list[int]) -> list[object]:
        out: list[object] = []
        for value in inputs:
            try:
                out.extend(handle(key, [value]))
            except ValueError as exc:
                out.append(exc)
        return out

    async def submit_all(scorer: MicroBatcher | Direct) -> list[object]:
        return await asyncio.gather(*(scorer.submit("key" if v % 2 else "other", v) for v in [1, 2, -3, 4, 5]),
                                    return_exceptions=True)

    with ThreadPoolExecutor(1) as pool:
        for scorer in [MicroBatcher(handle_each, pool, max_batch=2), Direct(handle_each, pool)]:
            results = asyncio.run(submit_all(scorer))
            assert results[:2] + results[3:] == [10, 20, 40, 50] and isinstance(results[2], ValueError)


def test_the_worker_factory_reads_the_run_and_settings_from_the_environment(runs: dict[str, Path],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv(RUN_ENV, str(runs["base"]))
    for key, value in ServeSettings(batching=False, cache_size=3, threads=1).to_env().items():
        monkeypatch.setenv(key, value)
    assert ServeSettings.from_env() == ServeSettings(batching=False, cache_size=3, threads=1)
    threads = torch.get_num_threads()
    try:
        client = TestClient(app_from_env())
    finally:
        torch.set_num_threads(threads)
    assert client.get("/metadata").json()["batching"] is False
    assert client.post("/recommend", json={"user": "1", "k": 2}).status_code == 200
    monkeypatch.delenv(RUN_ENV)
    with pytest.raises(seqrec.errors.SeqrecError, match=RUN_ENV):
        app_from_env()


def test_serve_refuses_bad_runs_and_addresses(runs: dict[str, Path], tmp_path: Path, monkeypatch, capsys) -> None:
    assert_cli_error(["serve", str(tmp_path / "missing")], "run directory not found", monkeypatch, capsys)
    assert_cli_error(["serve", str(runs["base"]), "--port", "70000"], "--port must be between 1 and 65535",
                     monkeypatch, capsys)
    assert_cli_error(["serve", str(runs["base"]), "--workers", "0"], "--workers and --threads must be at least 1",
                     monkeypatch, capsys)
    assert_cli_error(["serve", str(runs["base"]), "--host", "no.such.host.invalid"], "is not an address",
                     monkeypatch, capsys)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_cli_error(["serve", str(runs["base"]), "--port", str(port)], f"cannot listen on 127.0.0.1:{port}",
                         monkeypatch, capsys)


def test_scoring_runs_off_the_event_loop(runs: dict[str, Path]) -> None:
    service = load_service(runs["base"])
    threads: list[str] = []
    answer = service.answer
    service.answer = lambda options, inputs: threads.append(threading.current_thread().name) or answer(  # type: ignore[method-assign]
        options, inputs)
    for batching in (True, False):
        client = TestClient(create_app(service, ServeSettings(batching=batching)))
        assert client.post("/recommend", json={"user": "1", "k": 2}).status_code == 200
    assert len(threads) == 2 and all(name.startswith("seqrec-score") for name in threads)


def test_a_fault_of_the_server_is_a_500_and_the_next_request_is_answered(runs: dict[str, Path]) -> None:
    service = load_service(runs["base"])
    answer = service.answer

    def faulty(options, inputs):  # noqa: ANN001, ANN202
        if "2" in inputs:
            raise RuntimeError("a bug")
        return answer(options, inputs)

    service.answer = faulty  # type: ignore[method-assign]
    for batching in (True, False):
        client = TestClient(create_app(service, ServeSettings(batching=batching)), raise_server_exceptions=False)
        failed = client.post("/recommend", json={"user": "2"})
        assert failed.status_code == 500 and failed.json()["detail"].startswith("internal error (RuntimeError)")
        assert client.post("/recommend", json={"user": "1", "k": 2}).status_code == 200
