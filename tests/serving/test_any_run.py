"""Every run kind that recommends loads with `seqrec.load`, recommends, offers its steering and evaluates the same
way; steering parameters are checked; a run that does not recommend is a clear error."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import seqrec
from helpers import TINY_EVAL, assert_cli_error, tiny_model_config, tiny_train_config
from seqrec import cli
from seqrec.api import evaluate_run
from seqrec.data.splits import SplitData
from seqrec.distill.config import DistillConfig
from seqrec.errors import ConfigError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.llm.stage_runs import save_stage
from seqrec.runs import Run, save_run
from seqrec.steering import NeuronStats, PopularitySteering, SAEConfig, SAERun, popsteer, popsteer_run, probe, train_sae
from seqrec.steering.recftt import REPORT_KS, tune
from seqrec.steering.sweep import SWEEP_METRICS, popularity_sweep
from seqrec.steering.tuned_run import TunedRun
from seqrec.steering.tuning import TuneConfig

runner = CliRunner()
ALPHA, NEURONS = 2.0, 8
ITEMS = torch.tensor([[0, 0, 1, 2, 3, 4], [0, 5, 6, 7, 8, 9], [11, 12, 13, 14, 15, 16]])  # [3, 6] left-padded


@dataclass
class Runs:
    """One saved run of every kind, built once, and what they were built from."""

    data: SplitData
    base: Run
    sae: SAERun
    stats: NeuronStats
    tuned: TunedRun
    paths: dict[str, Path]


def _variant(run: Run, **sections: object) -> Run:
    config = ExperimentConfig(data=run.config.data, model=run.config.model, train=run.config.train,
                              eval=run.config.eval, **sections)  # type: ignore[arg-type]
    return Run(config, copy.copy(run.recommender), dict(run.metrics), list(run.history))


def _retrieval(base: Run, folder: Path) -> Path:
    from seqrec.retrieval.augmented import RetrievalAugmented
    from seqrec.retrieval.config import RetrievalConfig

    config = RetrievalConfig(base_run=str(base.path), top_k=2)
    model = RetrievalAugmented(seqrec.load(base.path).model, config)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    n, items = 30, len(base.recommender.item_map)
    model.use_knowledge(rng.normal(size=(n, base.config.model.hidden)).astype(np.float32),
                        rng.integers(1, items + 1, n), rng.integers(0, 5, n), rng.integers(1, 6, n))
    run = _variant(base, retrieval=config)
    run.recommender.model = model.eval()
    return save_run(run, folder)


@pytest.fixture(scope="module")
def runs(tiny_data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("any-run")
    base = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(epochs=2), TINY_EVAL, progress=False)
    save_run(base, root / "base")
    duorec = seqrec.train(tiny_model_config("duorec"), tiny_data, tiny_train_config(), TINY_EVAL, progress=False)
    config = SAEConfig(k=4, scale=4, epochs=2, batch_size=128, max_vectors=600, valid_vectors=50)
    sae = train_sae(base, config, data=tiny_data, progress=False)
    stats, _ = probe(sae, tiny_data, profiles=256, seed=0)
    steered = popsteer_run(sae, ALPHA, NEURONS, data=tiny_data, stats=stats)
    tuned = tune(sae, TuneConfig(targets=["Comedy"], latents=4, epochs=2, batch_size=64, max_instances=300),
                 data=tiny_data, progress=False)
    paths = {"base": base.path, "duorec": save_run(duorec, root / "duorec"),
             "distilled": save_run(_variant(base, distill=DistillConfig(profiles="profiles.json")),
                                   root / "distilled"),
             "sae": sae.path, "steered": steered.path, "tuned": tuned.path,
             "llm-evaluate": save_stage(root / "llm", "evaluate", {"data": "synthetic"}, {"mae": 0.7})}
    try:
        import faiss  # noqa: F401
    except ImportError:
        pass
    else:
        paths["retrieval"] = _retrieval(base, root / "retrieval")
    return Runs(tiny_data, base, sae, stats, tuned, paths)  # type: ignore[arg-type]


def scores(recommender: object) -> torch.Tensor:
    with torch.no_grad():
        return recommender.eval().score(ITEMS)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- every kind loads and recommends


KINDS = {"base": "base", "duorec": "base", "distilled": "distilled", "retrieval": "retrieval", "sae": "sae",
         "steered": "steered", "tuned": "tuned"}
OFFERS = {"base": set(), "duorec": set(), "distilled": set(), "retrieval": set(), "sae": {"popsteer", "recftt"},
          "steered": {"popsteer"}, "tuned": {"recftt"}}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_loads_and_recommends(name: str, runs: Runs) -> None:
    if name not in runs.paths:
        pytest.skip("faiss is not installed")
    run = seqrec.load(runs.paths[name])
    assert run.kind == KINDS[name] and run.path == runs.paths[name]
    assert run.model_run.kind in ("base", "distilled", "retrieval") and set(run.steering) == OFFERS[name]
    user = runs.data.user_map.external[3]
    rows = run.recommender.recommend([user], k=5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and {r["user"] for r in rows} == {str(user)}
    seen = set(runs.data.item_map.to_external(list(run.recommender.histories[3])))
    assert not seen & {r["item"] for r in rows}  # the run's protocol masks seen items


def test_each_kind_serves_its_default_behaviour(runs: Runs) -> None:
    loaded = {name: seqrec.load(runs.paths[name]) for name in ("base", "sae", "steered", "tuned")}
    assert torch.equal(scores(loaded["base"].recommender), scores(runs.base.recommender))
    assert torch.equal(scores(loaded["sae"].recommender), scores(runs.sae.steered("recon")))
    expected = popsteer(runs.sae, alpha=ALPHA, neurons=NEURONS, stats=runs.stats)
    assert torch.equal(scores(loaded["steered"].recommender), scores(expected))
    assert torch.equal(scores(loaded["tuned"].recommender), scores(runs.tuned.recommender))
    assert not torch.equal(scores(expected), scores(runs.base.recommender))  # steering changed the scores


def test_a_stage_run_is_a_clear_error(runs: Runs) -> None:
    with pytest.raises(RunError, match=r"is a run of kind llm-evaluate, which does not recommend items; pass a run "
                                       r"that does \(kinds: base, distilled, retrieval, sae, steered, tuned\), or "
                                       r"read this one with seqrec.runs.load_run"):
        seqrec.load(runs.paths["llm-evaluate"])


# ---------------------------------------------------------------- steering


@pytest.mark.parametrize("name", ["sae", "steered"])
@pytest.mark.parametrize(("alpha", "neurons"), [(0.0, None), (1.0, 4), (3.5, None)])
def test_popsteer_steering_equals_the_library_path(name: str, alpha: float, neurons: int | None, runs: Runs) -> None:
    control = seqrec.load(runs.paths[name]).steering["popsteer"]
    params = {"alpha": alpha} if neurons is None else {"alpha": alpha, "neurons": neurons}
    if name == "steered" and neurons is None:
        neurons = NEURONS  # the steered run's saved setting is the default
    expected = popsteer(runs.sae, alpha=alpha, neurons=neurons, stats=runs.stats)
    assert torch.equal(scores(control.recommender(**params)), scores(expected))


def test_popsteer_parameters(runs: Runs) -> None:
    latents = runs.sae.sae.latents
    steered = seqrec.load(runs.paths["steered"]).steering["popsteer"].parameters()
    assert {k: {f: v for f, v in spec.items() if f != "help"} for k, spec in steered.items()} == {
        "alpha": {"type": "float", "min": 0.0, "max": 10.0, "default": ALPHA},
        "neurons": {"type": "int", "min": 1, "max": latents, "default": NEURONS},
        "stage": {"type": "str", "choices": ["pre", "post"], "default": "pre"}}
    sae = seqrec.load(runs.paths["sae"]).steering["popsteer"].parameters()
    assert sae["alpha"]["default"] == 1.5 and sae["neurons"]["default"] == latents
    json.dumps(steered)


def test_popsteer_stage_per_request(runs: Runs) -> None:
    control = seqrec.load(runs.paths["steered"]).steering["popsteer"]
    post = runs.sae.steered("delta", PopularitySteering(runs.stats, ALPHA, NEURONS, stage="post"))
    assert torch.equal(scores(control.recommender(stage="post")), scores(post))
    assert not torch.equal(scores(control.recommender(stage="post")), scores(control.recommender()))
    with pytest.raises(ConfigError, match="popsteer stage must be one of"):
        control.recommender(stage="middle")


def test_recftt_steering_serves_the_tunings_under_the_sae_run(runs: Runs) -> None:
    name = runs.paths["tuned"].name
    sae_control = seqrec.load(runs.paths["sae"]).steering["recftt"]
    assert sae_control.parameters()["target"]["choices"] == [name]
    assert sae_control.parameters()["target"]["default"] is None
    assert torch.equal(scores(sae_control.recommender(target=name)), scores(runs.tuned.recommender))
    tuned_control = seqrec.load(runs.paths["tuned"]).steering["recftt"]
    assert tuned_control.parameters()["target"]["default"] == name
    assert torch.equal(scores(tuned_control.recommender()), scores(runs.tuned.recommender))


@pytest.mark.parametrize(("name", "steering", "params", "message"), [
    ("steered", "popsteer", {"alpha": -1.0}, "popsteer alpha must be between 0.0 and 10.0; got -1.0"),
    ("steered", "popsteer", {"alpha": 10.5}, "popsteer alpha must be between 0.0 and 10.0; got 10.5"),
    ("steered", "popsteer", {"alpha": float("nan")}, "popsteer alpha must be a finite number"),
    ("steered", "popsteer", {"alpha": "high"}, "popsteer alpha must be a finite number between 0.0 and 10.0; got "
                                               "'high'"),
    ("steered", "popsteer", {"alpha": True}, "popsteer alpha must be a finite number"),
    ("steered", "popsteer", {"neurons": 0}, "popsteer neurons must be between 1 and 64; got 0"),
    ("steered", "popsteer", {"neurons": 65}, "popsteer neurons must be between 1 and 64; got 65"),
    ("steered", "popsteer", {"neurons": 2.5}, "popsteer neurons must be a whole number between 1 and 64; got 2.5"),
    ("sae", "popsteer", {"beta": 1.0, "alpha": 1.0}, "popsteer steering has no parameter 'beta'; its parameters: "
                                                     "alpha, neurons"),
    ("sae", "recftt", {"target": "Drama"}, "recftt target must be one of tune-Comedy; got 'Drama'"),
    ("sae", "recftt", {}, "recftt target is required; one of: tune-Comedy"),
    ("tuned", "recftt", {"alpha": 1.0}, "recftt steering has no parameter 'alpha'; its parameters: target"),
])
def test_steering_parameters_are_checked(name: str, steering: str, params: dict, message: str, runs: Runs) -> None:
    assert runs.sae.sae.latents == 64  # the ranges in the messages
    control = seqrec.load(runs.paths[name]).steering[steering]
    with pytest.raises(ConfigError) as exc:
        control.recommender(**params)
    assert str(exc.value) == message or str(exc.value).startswith(message)


# ---------------------------------------------------------------- evaluation


def test_evaluating_a_steered_run_gives_the_steer_tables_numbers(runs: Runs) -> None:
    mask_seen = runs.base.config.eval.mask_seen
    rows = popularity_sweep(runs.sae, runs.data.test, runs.stats, [ALPHA], [], NEURONS, "delta", mask_seen)
    result = evaluate_run(runs.paths["steered"], data=runs.data)
    assert {m: result.metrics[m] for m in SWEEP_METRICS} == {m: rows[1][m] for m in SWEEP_METRICS}
    saved = json.loads((runs.paths["steered"] / "metrics.json").read_text())
    assert {m: saved["test"][m] for m in SWEEP_METRICS} == {m: rows[1][m] for m in SWEEP_METRICS}
    assert result.protocol["ks"] == list(TINY_EVAL.ks) and result.protocol["seen_items_masked"] is mask_seen
    assert rows[1]["NDCG@10"] != rows[0]["NDCG@10"] or rows[1]["arp@10"] != rows[0]["arp@10"]


def test_evaluating_a_tuned_run_gives_what_tuning_reported(runs: Runs) -> None:
    reported = runs.tuned.metrics["test"]["tuned"]
    result = evaluate_run(runs.paths["tuned"], ks=REPORT_KS, attributes=["Comedy"], data=runs.data)
    assert {k: result.metrics[k] for k in reported} == pytest.approx(reported, abs=1e-9)


def test_evaluating_an_sae_run_gives_its_reconstruction_metrics(runs: Runs) -> None:
    result = evaluate_run(runs.paths["sae"], ks=(10,), data=runs.data)
    assert result.metrics["NDCG@10"] == runs.sae.metrics["test_sae_NDCG@10"]


def test_a_steered_run_keeps_the_masking_it_was_measured_with(runs: Runs, tmp_path: Path) -> None:
    run = popsteer_run(runs.sae, 1.0, mask_seen=False, data=runs.data, stats=runs.stats,
                       output_dir=tmp_path / "unmasked")
    loaded = seqrec.load(tmp_path / "unmasked")
    assert loaded.recommender.mask_seen is False and run.metrics["protocol"]["seen_items_masked"] is False
    result = evaluate_run(loaded, data=runs.data)
    assert result.protocol["seen_items_masked"] is False
    assert {m: result.metrics[m] for m in SWEEP_METRICS} == {m: run.metrics["test"][m] for m in SWEEP_METRICS}


@pytest.mark.parametrize(("change", "message"), [
    ({"alpha": -2.0}, r"steer\.yaml is damaged \(steer\.alpha must be >= 0"),
    ({"mode": "sideways"}, r"steer\.yaml is damaged \(steer\.mode must be one of delta, recon"),
    ({"neurons": 65}, r"steer\.yaml does not fit its SAE run \(neurons must be between 1 and the SAE's 64"),
    ({"sae_run": "../.."}, r"steer\.yaml: sae_run \.\./\.\. .* is not an SAE run"),
    ({"sae_run": "."}, r"steer\.yaml: sae_run: \. points at this run itself"),
])
def test_a_damaged_steered_run_is_a_clear_error(change: dict, message: str, runs: Runs, tmp_path: Path) -> None:
    from seqrec.config import read_yaml, write_yaml

    folder = runs.paths["sae"] / f"damaged-{tmp_path.name}"
    shutil.copytree(runs.paths["steered"], folder)
    try:
        write_yaml({**read_yaml(folder / "steer.yaml"), **change}, folder / "steer.yaml")
        with pytest.raises(RunError, match=message):
            seqrec.load(folder)
    finally:
        shutil.rmtree(folder)


# ---------------------------------------------------------------- command line


def test_steer_save_and_evaluate_from_the_command_line(runs: Runs, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    sae_dir = runs.paths["sae"]
    before = {p.name for p in sae_dir.iterdir()}
    result = runner.invoke(cli.app, ["steer", str(sae_dir), "--alpha", "2", "--neurons", str(NEURONS), "--save"])
    assert result.exit_code == 0, result.output
    (new,) = {p.name for p in sae_dir.iterdir()} - before
    assert new == "steered-popularity-a2-n8-2"  # the Python run above took the first name
    evaluated = runner.invoke(cli.app, ["evaluate", str(sae_dir / new), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["metrics"]
    saved = json.loads((sae_dir / new / "metrics.json").read_text())["test"]
    assert {m: metrics[m] for m in SWEEP_METRICS} == {m: saved[m] for m in SWEEP_METRICS}
    assert metrics == evaluate_run(runs.paths["steered"], data=runs.data).metrics
    tuned = runner.invoke(cli.app, ["evaluate", str(runs.paths["tuned"]), "--json", "--k", "10"])
    assert tuned.exit_code == 0 and json.loads(tuned.stdout)["metrics"]["NDCG@10"] == pytest.approx(
        runs.tuned.metrics["test"]["tuned"]["NDCG@10"], abs=1e-9)
    assert_cli_error(["steer", str(sae_dir), "--alpha", "1", "--alpha", "2", "--save"],
                     "--save keeps one setting as a run; give one --alpha (got 2)", monkeypatch, capsys)
    assert_cli_error(["evaluate", str(runs.paths["llm-evaluate"])],
                     "is a run of kind llm-evaluate, which does not recommend items", monkeypatch, capsys)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_serves_over_http(name: str, runs: Runs) -> None:
    """`seqrec serve` takes every kind: /recommend answers with the run's own list, /metadata offers its steering."""
    from fastapi.testclient import TestClient

    from seqrec.serving.http import ServeSettings, create_app, load_service

    if name not in runs.paths:
        pytest.skip("faiss is not installed")
    user = str(runs.data.user_map.external[3])
    expected = seqrec.load(runs.paths[name]).recommender.recommend([user], k=5)
    settings = ServeSettings(batching=False)
    with TestClient(create_app(load_service(runs.paths[name], settings), settings)) as client:
        answer = client.post("/recommend", json={"user": user, "k": 5})
        assert answer.status_code == 200, answer.text
        got = answer.json()["recommendations"]
        assert [r["item"] for r in got] == [r["item"] for r in expected]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-6)
        assert set(client.get("/metadata").json()["steering"]) == OFFERS[name]


def test_a_steered_run_keeps_its_stage_and_older_runs_load_as_pre(runs: Runs, tmp_path: Path) -> None:
    from seqrec.config import read_yaml, write_yaml

    run = popsteer_run(runs.sae, ALPHA, NEURONS, data=runs.data, stats=runs.stats, stage="post",
                       output_dir=tmp_path / "post")
    assert read_yaml(tmp_path / "post" / "steer.yaml")["stage"] == "post"
    loaded = seqrec.load(tmp_path / "post")
    expected = runs.sae.steered("delta", PopularitySteering(runs.stats, ALPHA, NEURONS, stage="post"))
    assert torch.equal(scores(loaded.recommender), scores(expected))
    assert loaded.steering["popsteer"].parameters()["stage"]["default"] == "post"
    measured = evaluate_run(loaded, data=runs.data).metrics
    assert {m: measured[m] for m in SWEEP_METRICS} == {m: run.metrics["test"][m] for m in SWEEP_METRICS}
    older = {k: v for k, v in read_yaml(tmp_path / "post" / "steer.yaml").items() if k != "stage"}
    write_yaml(older, tmp_path / "post" / "steer.yaml")  # saved before the stage was recorded
    assert seqrec.load(tmp_path / "post").steering["popsteer"].parameters()["stage"]["default"] == "pre"
