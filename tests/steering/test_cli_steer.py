"""`seqrec sae train|probe|explain` and `seqrec steer` through the CLI, including bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.runs import Run
from seqrec.steering import load_sae_run

runner = CliRunner()
SMALL = ["--set", "k=4", "--set", "scale=4", "--set", "epochs=3", "--set", "max_vectors=2000",
         "--set", "valid_vectors=200"]


def alphas(*values: float) -> list[str]:
    """`--alpha A --alpha B …` for a sweep."""
    return [arg for v in values for arg in ("--alpha", f"{v:g}")]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 300)


@pytest.fixture(scope="module")
def cli_sae(base_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the base run with an SAE trained through the CLI."""
    base = tmp_path_factory.mktemp("cli-steer") / "base"
    shutil.copytree(base_run.path, base, ignore=shutil.ignore_patterns("sae-*"))  # type: ignore[arg-type]
    result = runner.invoke(cli.app, ["sae", "train", str(base), *SMALL])
    assert result.exit_code == 0, result.output
    assert "FVU" in result.output and "SAE NDCG@10" in result.output
    return base / "sae-popsteer"


def test_sae_train_writes_an_sae_run(cli_sae: Path) -> None:
    run = load_sae_run(cli_sae)
    assert run.config.k == 4 and run.sae.latents == 4 * 16 and len(run.history) <= 3


def test_probe_then_steer_sweep_writes_table_and_plot(cli_sae: Path) -> None:
    probed = runner.invoke(cli.app, ["sae", "probe", str(cli_sae), "--profiles", "256"])
    assert probed.exit_code == 0, probed.output
    assert "popular neurons" in probed.output and (cli_sae / "probe-popularity.csv").exists()
    result = runner.invoke(cli.app, ["steer", str(cli_sae), "--sweep", *alphas(0, 1, 3), "--beta", "0", "--beta",
                                     "2"])
    assert result.exit_code == 0, result.output
    out = cli_sae / "sweep-popularity-test"
    saved = json.loads((out / "sweep.json").read_text())
    assert [(r["method"], r["strength"]) for r in saved["rows"]] == [
        ("base", 0.0), ("popsteer", 0.0), ("popsteer", 1.0), ("popsteer", 3.0), ("reweight", 0.0), ("reweight", 2.0)]
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG" and (out / "sweep.csv").exists()
    for row in saved["rows"]:
        assert f"{row['NDCG@10']:.4f}" in result.output
    again = runner.invoke(cli.app, ["steer", str(cli_sae), "--sweep", *alphas(0, 1), "--beta", "0"])
    assert again.exit_code == 0 and (cli_sae / "sweep-popularity-test-2").exists()  # never overwritten


def test_single_alpha_and_explain(cli_sae: Path) -> None:
    result = runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "2", "--mode", "delta", "--no-mask-seen"])
    assert result.exit_code == 0, result.output
    assert "popsteer" in result.output and "seen items kept" in result.output
    explained = runner.invoke(cli.app, ["sae", "explain", str(cli_sae), "--latent", "0", "--n", "3"])
    assert explained.exit_code == 0, explained.output
    assert "items latent 0 promotes" in explained.output


@pytest.mark.parametrize(("args", "expected"), [
    (["steer", "{sae}", "--alpha", "-1"], "alpha must be"),
    (["steer", "{sae}", "--neurons", "100000"], "neurons must be between 1 and"),
    (["steer", "{sae}", "--concept", "genre"], "unknown concept 'genre'; available: popularity"),
    (["steer", "{sae}", "--sweep", "--alpha", "1"], "--sweep compares strengths"),
    (["sae", "explain", "{sae}", "--latent", "9999"], "latent must be between 0 and 63"),
    (["sae", "train", "{base}", "--set", "kk=3"], "unknown config key sae.kk"),
    (["steer", "{base}"], "is not an SAE run"),
])
def test_bad_input_is_one_error_line(args: list[str], expected: str, cli_sae: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"sae": str(cli_sae), "base": str(cli_sae.parent)}
    assert_cli_error([a.format(**paths) for a in args], expected, monkeypatch, capsys)


def test_a_strength_past_a_saved_turn_is_a_warning(cli_sae: Path) -> None:
    def row(method: str, strength: float, ndcg: float, cov: float, gini: float) -> dict:
        return {"method": method, "strength": strength, "NDCG@10": ndcg, "deep_lt_coverage@10": cov,
                "gini@10": gini}

    planted = cli_sae / "sweep-popularity-planted"
    planted.mkdir()
    rows = [row("base", 0, 0.2, 0.5, 0.8), row("popsteer", 1, 0.19, 0.7, 0.6), row("popsteer", 2, 0.15, 0.6, 0.7)]
    try:
        (planted / "sweep.json").write_text(json.dumps({"settings": {"neurons": None, "mode": "delta"},
                                                        "rows": rows}))
        past = runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "1.5"])
        assert past.exit_code == 0, past.output
        assert "α 1.5 is past the point where the curve turns (α 1, from the sweep in" in past.output
        mild = runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "0.5"])
        assert mild.exit_code == 0 and "past the point" not in mild.output
        other_mode = runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "1.5", "--mode", "recon"])
        assert other_mode.exit_code == 0 and "past the point" not in other_mode.output
        other_stage = runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "1.5", "--stage", "post"])
        assert other_stage.exit_code == 0 and "past the point" not in other_stage.output  # that sweep was pre
        (planted / "sweep.json").write_text("[]")  # damaged sweeps teach nothing and break nothing
        assert runner.invoke(cli.app, ["steer", str(cli_sae), "--alpha", "1.5"]).exit_code == 0
    finally:
        shutil.rmtree(planted)


def test_sae_train_auto_size_reports_every_size_tried(base_run: Run, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(base_run.path, base, ignore=shutil.ignore_patterns("sae-*"))  # type: ignore[arg-type]
    small = ["--set", "k=1", "--set", "scale=1", "--set", "epochs=2", "--set", "max_vectors=1000",
             "--set", "valid_vectors=100"]
    result = runner.invoke(cli.app, ["sae", "train", str(base), "--auto-size", *small])
    assert result.exit_code == 0, result.output
    assert "SAE sizes tried (smallest first)" in result.output and "NDCG@10 cost" in result.output
    tried = load_sae_run(base / "sae-popsteer").metrics["sizes_tried"]
    assert len(tried) >= 2 and tried[0]["latents"] == 16


def test_steering_after_top_k_through_the_cli(cli_sae: Path) -> None:
    result = runner.invoke(cli.app, ["steer", str(cli_sae), "--stage", "post", "--sweep", *alphas(0, 2),
                                     "--beta", "0"])
    assert result.exit_code == 0, result.output
    folder = sorted(cli_sae.glob("sweep-popularity-test*"), key=lambda p: p.stat().st_mtime)[-1]
    assert json.loads((folder / "sweep.json").read_text())["settings"]["stage"] == "post"
    saved = runner.invoke(cli.app, ["steer", str(cli_sae), "--stage", "post", "--alpha", "2", "--save"])
    assert saved.exit_code == 0, saved.output
    run = cli_sae / "steered-popularity-a2-post"
    assert "stage: post" in (run / "steer.yaml").read_text()
    bad = runner.invoke(cli.app, ["steer", str(cli_sae), "--stage", "middle"])
    assert bad.exit_code != 0 and "--stage must be pre or post" in str(bad.exception)
