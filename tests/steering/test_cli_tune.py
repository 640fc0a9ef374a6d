"""`seqrec sae sweep|choose|tune` through the CLI, including bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.steering import SAERun
from seqrec.steering.tuned_run import load_tuned_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 300)


@pytest.fixture(scope="module")
def cli_sae(sae_run: SAERun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the base run and its SAE run (tuned runs land inside the SAE run)."""
    assert sae_run.path is not None
    base = tmp_path_factory.mktemp("cli-tune") / "base"
    shutil.copytree(sae_run.base.path, base, ignore=shutil.ignore_patterns("sae-*"))  # type: ignore[arg-type]
    shutil.copytree(sae_run.path, base / "sae", ignore=shutil.ignore_patterns("latent-sweep-*", "tune-*"))
    return base / "sae"


def test_sweep_choose_tune(cli_sae: Path) -> None:
    swept = runner.invoke(cli.app, ["sae", "sweep", str(cli_sae), "--attribute", "Comedy", "--attribute", "Sci-Fi",
                                    "--top", "20"])
    assert swept.exit_code == 0, swept.output
    sweep = cli_sae / "latent-sweep-valid"
    assert (sweep / "Sci_Fi_regulation_scores.json").exists() and "raising latents" in swept.output
    assert (sweep / "strongest_latents.png").read_bytes()[:4] == b"\x89PNG"

    chosen = runner.invoke(cli.app, ["sae", "choose", str(sweep), "--attribute", "Comedy", "-x", "3"])
    assert chosen.exit_code == 0, chosen.output
    picked = json.loads((sweep / "controller_Comedy.json").read_text())
    scores = json.loads((sweep / "Comedy_regulation_scores.json").read_text())
    assert picked["ablations"][:3] == [r["latent_id"] for r in scores[:3]]  # best positive first
    assert picked["ablations"][3:] == [r["latent_id"] for r in scores[::-1][:3]]  # most negative next
    again = runner.invoke(cli.app, ["sae", "choose", str(sweep), "--attribute", "Comedy"])
    assert again.exit_code == 1 and "exists; pass --force" in str(again.exception)

    tuned = runner.invoke(cli.app, ["sae", "tune", str(cli_sae), "--target", "Comedy", "--suppress", "Drama",
                                    "--lambda", "0.5", "--latents", "5", "--set", "epochs=2"])
    assert tuned.exit_code == 0, tuned.output
    assert "target is Comedy" in tuned.output and "target is Drama" in tuned.output and "base → tuned" in tuned.output
    run = load_tuned_run(cli_sae / "tune-Comedy-minus-Drama")
    assert run.config.targets == ["Comedy"] and run.config.suppress == ["Drama"] and run.config.weight == 0.5
    assert len(run.history) <= 3

    from_choose = runner.invoke(cli.app, ["sae", "tune", str(cli_sae), "--target", "Comedy", "--set", "epochs=1"])
    assert from_choose.exit_code == 0, from_choose.output
    assert f"latent sweep: {sweep}" in from_choose.output and "6 latents from" in from_choose.output, from_choose.output
    assert load_tuned_run(cli_sae / "tune-Comedy").metrics["latent_ids"] == sorted(picked["ablations"])


def test_tune_auto_chooses_lambda_and_latents_on_validation(cli_sae: Path) -> None:
    result = runner.invoke(cli.app, ["sae", "tune", str(cli_sae), "--target", "Sci-Fi", "--auto", "--set",
                                     "epochs=1"])
    assert result.exit_code == 0, result.output
    assert "choosing on validation: weight in 0.1, 0.3, 1, 3, 10, latents in 50, 100" in result.output
    assert "10 trials (10 finished" in result.output and "best: trial" in result.output
    assert "target is Sci-Fi" in result.output and "chosen tuned run:" in result.output
    chosen = result.output.split("chosen tuned run:")[1].split("(load")[0].strip()
    assert load_tuned_run(Path(chosen)).config.targets == ["Sci-Fi"]
    refused = runner.invoke(cli.app, ["sae", "tune", str(cli_sae), "--target", "Sci-Fi", "--auto", "--lambda", "2"])
    assert refused.exit_code != 0 and "--auto chooses λ and the latents" in str(refused.exception)


@pytest.mark.parametrize(("args", "expected"), [
    (["sae", "sweep", "{sae}", "--attribute", "Western"], "unknown item attribute 'Western'; available:"),
    (["sae", "sweep", "{sae}", "--attribute", "Comedy", "--scale", "10"], "at least two different positive"),
    (["sae", "sweep", "{sae}", "--attribute", "Comedy", "--split", "train"], "valid or test"),
    (["sae", "choose", "{sae}", "--attribute", "Comedy"], "is not a latent sweep"),
    (["sae", "tune", "{sae}"], "at least one attribute"),
    (["sae", "tune", "{sae}", "--target", "Western"], "unknown item attribute 'Western'"),
    (["sae", "tune", "{sae}", "--target", "Comedy", "--set", "lr=0"], "lr > 0"),
    (["sae", "tune", "{base}", "--target", "Comedy"], "is not an SAE run"),
])
def test_bad_input_is_one_error_line(args: list[str], expected: str, cli_sae: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"sae": str(cli_sae), "base": str(cli_sae.parent)}
    assert_cli_error([a.format(**paths) for a in args], expected, monkeypatch, capsys)


def test_missing_base_run_is_reported(cli_sae: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "sae"
    shutil.copytree(cli_sae, lonely)  # its relative base_run path now points nowhere
    result = runner.invoke(cli.app, ["sae", "tune", str(lonely), "--target", "Comedy"])
    assert result.exit_code == 1 and "is not a complete seqrec run" in str(result.exception)


def test_sweep_and_tune_read_an_attributes_file(cli_sae: Path, tmp_path: Path) -> None:
    from seqrec.api import load
    from seqrec.data.attribute_files import write_attribute_file

    base = load(cli_sae.parent).recommender
    n = len(base.item_map)
    titles = [base.catalog.title(i) for i in range(1, n + 1)]
    labels = [("funny",) if t.startswith("Comedy") else () for t in titles]
    file = tmp_path / "moods.tsv"
    write_attribute_file(file, base.item_map.to_external(range(1, n + 1)), titles, "mood", labels)
    swept = runner.invoke(cli.app, ["sae", "sweep", str(cli_sae), "--attributes-file", str(file), "--attribute",
                                    "funny", "--top", "20", "--split", "test"])
    assert swept.exit_code == 0, swept.output
    assert (cli_sae / "latent-sweep-test" / "funny_regulation_scores.json").exists()
    tuned = runner.invoke(cli.app, ["sae", "tune", str(cli_sae), "--attributes-file", str(file), "--target", "funny",
                                    "--latents", "3", "--set", "epochs=1", "--out", str(tmp_path / "tuned")])
    assert tuned.exit_code == 0, tuned.output
    assert "target is funny" in tuned.output
