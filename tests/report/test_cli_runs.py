"""`seqrec runs list|compare` and `seqrec report`: tables within 80 columns, files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.runs import METRICS

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal far wider than 80 columns: the tables must still stay within 80."""
    monkeypatch.setattr(common.console, "width", 300)


def invoke(*argv: str) -> str:
    result = runner.invoke(cli.app, list(argv))
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines() if "/tmp" not in line), result.output
    return result.output


def test_runs_list(runs_root: Path) -> None:
    out = invoke("runs", "list", str(runs_root))
    metrics = json.loads((runs_root / "gru4rec" / METRICS).read_text())
    row = next(line for line in out.splitlines() if line.startswith("gru4rec"))
    assert "finished" in row and f"{metrics['test']['NDCG@10']:.4f}" in row
    assert f"{metrics['valid']['NDCG@10']:.4f}" in row
    assert "unfinished" in out and "notes" not in out


def test_runs_compare_prints_tables_and_writes_curves(runs_root: Path, tmp_path: Path) -> None:
    runs = [str(runs_root / n) for n in ("sasrec", "gru4rec", "unfinished", "<script>alert(1)")]
    out = invoke("runs", "compare", *runs, "--out", str(tmp_path / "curves"))
    metrics = json.loads((runs_root / "sasrec" / METRICS).read_text())
    assert f"{metrics['test']['HR@10']:.4f}" in out and "train.lr" in out and "continued" in out
    assert "seen items masked" in out
    assert sorted(p.name for p in (tmp_path / "curves").iterdir()) == ["train_loss.png", "valid_NDCG_at_10.png"]


def test_report_writes_one_page(runs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    invoke("report", str(runs_root / "sasrec"), str(runs_root / "gru4rec"), "--out", str(out))
    assert "test.NDCG@10" in out.read_text()
    invoke("report", str(runs_root / "sasrec"), "--out", str(out), "--force")


def test_user_mistakes_are_one_line_errors(runs_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    assert_cli_error(["runs", "list", str(tmp_path / "nowhere")], "folder not found", monkeypatch, capsys)
    assert_cli_error(["runs", "compare", str(tmp_path / "nowhere")], "run directory not found", monkeypatch, capsys)
    assert_cli_error(["report", str(runs_root / "notes"), "--out", str(tmp_path / "r.html")], "is not a seqrec run",
                     monkeypatch, capsys)
    (tmp_path / "r.html").write_text("mine")
    assert_cli_error(["report", str(runs_root / "sasrec"), "--out", str(tmp_path / "r.html")], "--force",
                     monkeypatch, capsys)
