"""The command line: train / evaluate / recommend / data list, one-line errors with exit code 2, the demo."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from helpers import TINY_SYNTHETIC
from seqrec import cli
from seqrec.api import evaluate_run
from seqrec.cli import common
from seqrec.data.registry import DATASETS
from seqrec.demo import run_demo
from seqrec.runs import CONFIG, HISTORIES, HISTORY, ID_MAPS, METRICS, WEIGHTS, load_run

runner = CliRunner()
TINY_EXPERIMENT = {
    "name": "tiny",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 2, "batch_size": 32, "patience": 0, "device": "cpu"},
    "eval": {"ks": [5, 10]},
}


def write_config(folder: Path, name: str = "tiny.yaml", **sections: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**TINY_EXPERIMENT, **sections}))
    return path


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough that no column is elided (the console writes to whatever sys.stdout is)."""
    monkeypatch.setattr(common.console, "width", 300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run trained through the CLI: returns its directory."""
    folder = tmp_path_factory.mktemp("cli")
    result = runner.invoke(cli.app, ["train", str(write_config(folder)), "--out", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return folder / "runs" / "tiny"


def test_train_writes_a_complete_run(trained: Path) -> None:
    assert {CONFIG, WEIGHTS, METRICS, HISTORY, ID_MAPS, HISTORIES} <= {p.name for p in trained.iterdir()}
    metrics = json.loads((trained / METRICS).read_text())
    assert metrics["epochs_run"] == 2 and len((trained / HISTORY).read_text().splitlines()) == 2
    assert set(metrics["test"]) >= {"HR@5", "NDCG@10", "coverage@10"} and "HR@50" not in metrics["test"]
    saved = yaml.safe_load((trained / CONFIG).read_text())
    assert saved["name"] == "tiny" and saved["model"]["hidden"] == 16 and saved["train"]["epochs"] == 2


def test_train_never_overwrites(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"epochs": 1, "device": "cpu"})
    out = tmp_path / "runs"
    first = runner.invoke(cli.app, ["train", str(config), "--out", str(out)])
    assert first.exit_code == 0, first.output
    weights = (out / "tiny" / WEIGHTS).read_bytes()
    second = runner.invoke(cli.app, ["train", str(config), "--out", str(out), "--set", "train.seed=1"])
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in out.iterdir()) == ["tiny", "tiny-2"]
    assert (out / "tiny" / WEIGHTS).read_bytes() == weights
    assert yaml.safe_load((out / "tiny-2" / CONFIG).read_text())["train"]["seed"] == 1  # the override was applied
    assert f"run saved to {out / 'tiny-2'}" in second.output


def test_evaluate_prints_the_metrics(trained: Path) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(trained)])
    assert result.exit_code == 0, result.output
    metrics = evaluate_run(trained).metrics
    assert metrics == json.loads((trained / METRICS).read_text())["test"]  # the same numbers as at training
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert "test" in result.output and "seen items masked" in result.output
    for k, name, label in ((5, "HR", "HR"), (10, "NDCG", "NDCG"), (10, "MRR", "MRR"), (10, "coverage", "coverage"),
                           (10, "lt_coverage", "LT coverage"), (5, "deep_lt_coverage", "deep-LT coverage")):
        assert f"{metrics[f'{name}@{k}']:.4f}" in rows[label]  # one row per metric, a column per k


def test_recommend_json(trained: Path) -> None:
    run = load_run(trained)
    user = run.recommender.user_map.external[3]
    result = runner.invoke(cli.app, ["recommend", str(trained), "--user", user, "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == run.recommender.recommend([user], k=3)
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["user"] == user and r["title"] for r in rows)


def test_recommend_table(trained: Path) -> None:
    run = load_run(trained)
    users = run.recommender.user_map.external[:2]
    result = runner.invoke(cli.app, ["recommend", str(trained), "--user", users[0], "--user", users[1], "--k", "2"])
    assert result.exit_code == 0, result.output
    for row in run.recommender.recommend(users, k=2):
        assert row["title"] in result.output


def test_data_list(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["data", "list", "--data-dir", str(tmp_path)])  # an empty data root
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert set(rows) >= set(DATASETS) and "synthetic" in rows
    assert "present" in rows["synthetic"]  # generated, so always present
    assert "missing" in rows["ml-1m-sas"]
    assert f"read from {tmp_path}" in " ".join(result.output.split())  # absent: where the files should go


def _bad_inputs(folder: Path, run_dir: Path) -> dict[str, tuple[list[str], str]]:
    (folder / "broken.yaml").write_text("train:\n  epochs: 3\n lr: 0.1\n")
    return {
        "unknown dataset": (["train", str(write_config(folder, "d.yaml", data={"name": "nosuch"}))],
                            "unknown dataset 'nosuch'"),
        "unknown key": (["train", str(write_config(folder, "k.yaml", train={"lrr": 0.1}))], "train.lrr"),
        "unknown model": (["train", str(write_config(folder, "m.yaml", model={"name": "sasrek"}))],
                          "unknown model 'sasrek'"),
        "bad override": (["train", str(write_config(folder)), "--set", "train.epochs=ten"], "train.epochs"),
        "missing config": (["train", str(folder / "missing.yaml")], "config file not found"),
        "malformed yaml": (["train", str(folder / "broken.yaml")], f"{folder / 'broken.yaml'}:3"),
        "missing run": (["evaluate", str(folder / "no-run")], "run directory not found"),
        "unknown user": (["recommend", str(run_dir), "--user", "[b]nobody"], "unknown user id(s): [b]nobody"),
    }


CASES = ["unknown dataset", "unknown key", "unknown model", "bad override", "missing config", "malformed yaml",
         "missing run", "unknown user"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_with_exit_code_2(case: str, trained: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    args, expected = _bad_inputs(tmp_path, trained)[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["seqrec", *args, *(["--out", "runs"] if args[0] == "train" else [])])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.parametrize("case", ["unknown dataset", "unknown user"])
def test_bad_input_in_a_real_process(case: str, trained: Path, tmp_path: Path) -> None:
    args, expected = _bad_inputs(tmp_path, trained)[case]
    proc = subprocess.run([sys.executable, "-m", "seqrec.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and expected in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists()


def test_demo_writes_three_runs_and_a_plot(tmp_path: Path) -> None:
    out = io.StringIO()
    results = run_demo(tmp_path / "demo", users=80, epochs=1, models=("sasrec", "gru4rec", "bert4rec"),
                       console=Console(file=out, width=200))
    names = ("sasrec", "gru4rec", "bert4rec")
    assert set(results) == {"most-popular", *names}
    for name in names:
        run = load_run(tmp_path / "demo" / name)
        assert run.config.model.name == name
        assert run.metrics["test"] == results[name]
    assert (tmp_path / "demo" / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "most-popular" in out.getvalue()
    sweep = tmp_path / "demo" / "sasrec" / "sae-popsteer" / "sweep-popularity-test"  # the steering tour
    assert (sweep / "tradeoff.png").read_bytes()[:4] == b"\x89PNG" and (sweep / "sweep.csv").exists()
    assert "popularity probe" in out.getvalue() and "PopSteer" in out.getvalue()
