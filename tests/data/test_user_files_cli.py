"""End to end: a CSV of the user's own interactions -> `seqrec train` -> `seqrec evaluate RUN` / `recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import seqrec
from helpers import assert_cli_error
from seqrec import cli
from seqrec.runs import CONFIG, METRICS

runner = CliRunner()


def write_clicks(path: Path, users: int = 40, items: int = 25, length: int = 8) -> Path:
    """Visitors with string ids, SKUs, ISO timestamps and star ratings, in no particular row order."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(users):
        start = rng.integers(0, items)
        for t in range(length):
            sku = (start + t + rng.integers(0, 2)) % items  # a sequential pattern to learn
            rows.append(f"v{u:03d},SKU-{sku},2024-03-{1 + t:02d}T{u % 24:02d}:00:00,{1 + rng.integers(0, 5)}\n")
    rng.shuffle(rows)
    path.write_text("visitor,sku,when,stars\n" + "".join(rows))
    return path


def experiment(folder: Path, data: dict) -> Path:
    config = {"name": "shop", "data": data, "model": {"name": "sasrec", "max_len": 8, "hidden": 16, "blocks": 1},
              "train": {"epochs": 1, "batch_size": 16, "patience": 0, "device": "cpu"}, "eval": {"ks": [5, 10]}}
    path = folder / "shop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_csv_to_train_to_evaluate(tmp_path: Path) -> None:
    clicks = write_clicks(tmp_path / "clicks.csv")
    items = tmp_path / "items.csv"
    items.write_text("sku,title,tags\n" + "".join(f"SKU-{i},Item {i},t{i % 3}|all\n" for i in range(25)))
    data = {"path": str(clicks), "columns": {"user": "visitor", "item": "sku", "timestamp": "when"},
            "items": {"path": str(items), "id": "sku", "attributes": ["tags"]}}
    out = tmp_path / "runs"
    result = runner.invoke(cli.app, ["train", str(experiment(tmp_path, data)), "--out", str(out),
                                     "--set", "data.columns.rating=stars", "--set", "data.duplicates=first"])
    assert result.exit_code == 0, result.output
    run = out / "shop"
    saved = yaml.safe_load((run / CONFIG).read_text())["data"]
    assert saved["path"] == str(clicks) and saved["columns"]["rating"] == "stars" and saved["duplicates"] == "first"
    evaluated = runner.invoke(cli.app, ["evaluate", str(run), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    trained = json.loads((run / METRICS).read_text())["test"]
    assert json.loads(evaluated.output)["metrics"]["HR@10"] == pytest.approx(trained["HR@10"])
    recommended = runner.invoke(cli.app, ["recommend", str(run), "--user", "v007", "--k", "3", "--json"])
    assert recommended.exit_code == 0, recommended.output
    rows = json.loads(recommended.output)
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["item"].startswith("SKU-") for r in rows)
    assert all(r["title"].startswith("Item ") for r in rows)
    frame = seqrec.load(run).recommender.recommend_frame(["v007"], k=3)
    assert frame.to_dict("records") == rows


def test_a_misnamed_column_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:
    clicks = write_clicks(tmp_path / "clicks.csv", users=5)
    data = {"path": str(clicks), "columns": {"user": "visitor", "item": "product"}}
    argv = ["train", str(experiment(tmp_path, data)), "--out", str(tmp_path / "runs")]
    assert_cli_error(argv, "data.columns.item names column 'product', which is not there; columns found: visitor, "
                     "sku, when, stars", monkeypatch, capsys)
    assert not (tmp_path / "runs" / "shop").exists()


def test_csv_run_goes_through_sae_probe_and_steer(tmp_path: Path) -> None:
    """Every later stage re-reads the run's own file: SAE training, the popularity probe, steering."""
    clicks = write_clicks(tmp_path / "clicks.csv", users=60, items=30)
    data = {"path": str(clicks), "columns": {"user": "visitor", "item": "sku", "timestamp": "when"}}
    out = tmp_path / "runs"
    trained = runner.invoke(cli.app, ["train", str(experiment(tmp_path, data)), "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    small = ["--set", "k=4", "--set", "scale=4", "--set", "epochs=2", "--set", "max_vectors=500",
             "--set", "valid_vectors=50"]
    sae = runner.invoke(cli.app, ["sae", "train", str(out / "shop"), *small])
    assert sae.exit_code == 0, sae.output
    sae_run = out / "shop" / "sae-popsteer"
    probed = runner.invoke(cli.app, ["sae", "probe", str(sae_run), "--profiles", "64"])
    assert probed.exit_code == 0, probed.output
    steered = runner.invoke(cli.app, ["steer", str(sae_run), "--alpha", "1"])
    assert steered.exit_code == 0, steered.output
    assert "NDCG" in steered.output


def test_a_dataframe_run_saved_from_python_is_evaluated_from_the_cli(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    clicks = pd.read_csv(write_clicks(tmp_path / "clicks.csv"))
    data = seqrec.datasets.from_frame(clicks, columns={"user": "visitor", "item": "sku", "timestamp": "when"})
    model = seqrec.SASRecConfig(max_len=8, hidden=16, blocks=1)
    run = seqrec.train(model, data, seqrec.TrainConfig(epochs=1, batch_size=16, device="cpu"), progress=False)
    run.save(tmp_path / "frame-run")
    evaluated = runner.invoke(cli.app, ["evaluate", str(tmp_path / "frame-run"), "--json"])
    assert "built in memory" in str(evaluated.exception)  # a frame cannot be re-read: say so, never guess
    again = seqrec.api.evaluate_run(seqrec.load(tmp_path / "frame-run"), data=data)
    assert again.metrics["HR@10"] == pytest.approx(run.metrics["test"]["HR@10"])
    from seqrec.evaluation.evaluate import evaluate
    from seqrec.steering import SAEConfig, popsteer, probe, train_sae

    sae_config = SAEConfig(k=4, scale=4, epochs=2, max_vectors=500, valid_vectors=50)
    sae_run = train_sae(seqrec.load(tmp_path / "frame-run"), sae_config, data=data, progress=False)
    stats, _ = probe(sae_run, data=data, profiles=64)
    steered = popsteer(sae_run, alpha=1.0, data=data, stats=stats)
    assert 0.0 <= evaluate(steered, data.test, ks=(10,))["NDCG@10"] <= 1.0
