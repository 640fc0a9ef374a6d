"""The command line: DuoRec base run, retrieval fine-tuning with --set retrieval.base_run, rebuild-index, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from helpers import TINY_SYNTHETIC, assert_cli_error
from seqrec import cli
from seqrec.runs import load_run

runner = CliRunner()
DATA = {"name": "synthetic", "synthetic": TINY_SYNTHETIC}
TRAIN = {"epochs": 1, "batch_size": 32, "patience": 0, "device": "cpu"}


def write(folder: Path, name: str, **sections: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"data": DATA, "train": TRAIN, "eval": {"ks": [5, 10]}, **sections}))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("cli")
    duorec = write(folder, "duorec.yaml", model={"name": "duorec", "max_len": 10, "hidden": 16})
    assert runner.invoke(cli.app, ["train", str(duorec), "--out", str(folder / "runs")]).exit_code == 0
    ftragrec = write(folder, "ftragrec.yaml", model={"name": "duorec", "hidden": 16}, retrieval={"top_k": 3})
    result = runner.invoke(cli.app, ["train", str(ftragrec), "--out", str(folder / "runs"),
                                     "--set", f"retrieval.base_run={folder / 'runs' / 'duorec-synthetic'}"])
    assert result.exit_code == 0, result.output
    return folder


def test_retrieval_run_is_saved_with_its_knowledge_base(runs: Path) -> None:
    path = runs / "runs" / "ftragrec-synthetic"
    assert (path / "knowledge_base.faiss").is_file() and (path / "knowledge_base.npz").is_file()
    run = load_run(path)
    assert run.config.retrieval.top_k == 3 and run.config.model.name == "duorec"
    assert run.metrics["retrieval"]["knowledge_base"] == len(run.model.knowledge)
    assert runner.invoke(cli.app, ["evaluate", str(path)]).exit_code == 0


def test_rebuild_index_repairs_a_damaged_index(runs: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    path = runs / "runs" / "ftragrec-synthetic"
    good = (path / "knowledge_base.faiss").read_bytes()
    (path / "knowledge_base.faiss").write_bytes(good[: len(good) // 2])
    assert_cli_error(["evaluate", str(path)], "seqrec rebuild-index", monkeypatch, capsys)
    result = runner.invoke(cli.app, ["rebuild-index", str(path)])
    assert result.exit_code == 0 and "index rebuilt" in result.output
    assert (path / "knowledge_base.faiss").read_bytes() == good


def test_bad_base_runs_are_one_line_errors(runs: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    config = write(runs, "wide.yaml", model={"name": "duorec", "hidden": 32})
    base = runs / "runs" / "duorec-synthetic"
    assert_cli_error(["train", str(config), "--out", str(runs / "runs"), "--set",
                      f"retrieval.base_run={base}"], "hidden 16", monkeypatch, capsys)
    config = write(runs, "k.yaml", model={"name": "duorec", "hidden": 16}, retrieval={"top_k": 10**6})
    assert_cli_error(["train", str(config), "--out", str(runs / "runs"), "--set",
                      f"retrieval.base_run={base}"], "retrieval.top_k", monkeypatch, capsys)
    assert_cli_error(["train", str(config), "--set", "retrieval.alpha=2"], "retrieval.alpha", monkeypatch, capsys)


def test_damaged_knowledge_base_arrays_ask_for_retraining(runs: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """Next items outside the run's catalogue: `rebuild-index` cannot repair them, so both commands say retrain."""
    path = tmp_path / "ftragrec"
    shutil.copytree(runs / "runs" / "ftragrec-synthetic", path)
    with np.load(path / "knowledge_base.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["targets"][3] = len(load_run(runs / "runs" / "ftragrec-synthetic").recommender.item_map) + 1
    with open(path / "knowledge_base.npz", "wb") as f:
        np.savez(f, **arrays)
    for command in ("evaluate", "rebuild-index"):
        assert_cli_error([command, str(path)], "knowledge_base.npz is damaged (targets[3]", monkeypatch, capsys)
    assert_cli_error(["evaluate", str(path)], "retrain the run", monkeypatch, capsys)
