"""Every stage uses the protocol the run recorded, prints every metric it computed within 80 columns and says
what it measured; user mistakes in settings are one line, never a traceback."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from helpers import TINY_SYNTHETIC, assert_cli_error
from seqrec import cli
from seqrec.api import evaluate_run
from seqrec.cli import common, data, sae, steer, train
from seqrec.runs import METRICS, load_run

runner = CliRunner()
TINY = {
    "name": "unmasked",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 2, "batch_size": 32, "patience": 0, "device": "cpu"},
    "eval": {"ks": [5, 10], "mask_seen": False},
}


def write(folder: Path, **sections: object) -> Path:
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump({**TINY, **sections}))
    return path


@pytest.fixture(scope="module")
def unmasked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run evaluated without masking seen items (as RecBole and PopSteer do)."""
    folder = tmp_path_factory.mktemp("protocol")
    result = runner.invoke(cli.app, ["train", str(write(folder)), "--out", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return folder / "runs" / "unmasked"


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's console as an 80-column terminal, recorded."""
    out = io.StringIO()
    console = Console(file=out, width=80)
    for module in (common, data, train, steer, sae):
        monkeypatch.setattr(module, "console", console)
    return out


def fits(text: str) -> bool:
    return max(len(line) for line in text.splitlines()) <= 80 and "…" not in text


def test_evaluate_uses_the_runs_own_protocol(unmasked: Path, narrow: io.StringIO) -> None:
    recorded = json.loads((unmasked / METRICS).read_text())["test"]
    result = runner.invoke(cli.app, ["evaluate", str(unmasked)])
    assert result.exit_code == 0, result.output
    assert evaluate_run(unmasked).metrics == recorded  # not re-masked: the numbers training reported
    assert "seen items not masked" in narrow.getvalue()
    masked = evaluate_run(unmasked, mask_seen=True)
    assert masked.protocol["seen_items_masked"] and masked.metrics != recorded  # a flag overrides it
    runner.invoke(cli.app, ["evaluate", str(unmasked), "--mask-seen"])
    assert "seen items masked" in narrow.getvalue()


def test_evaluate_json_has_the_numbers_and_the_protocol(unmasked: Path) -> None:
    result = runner.invoke(cli.app, ["evaluate", str(unmasked), "--json", "--k", "3", "--max-len", "5"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["protocol"] == {"dataset": "synthetic", "split": "test", "users": 60, "ranking": "full catalogue",
                               "seen_items_masked": False, "ks": [3], "max_len": 5}
    assert set(out["metrics"]) == {f"{m}@3" for m in ("HR", "NDCG", "MRR", "coverage", "lt_coverage",
                                                      "deep_lt_coverage", "gini", "arp")}
    assert out["metrics"] == evaluate_run(unmasked, ks=[3], max_len=5).metrics


def test_a_longer_window_than_the_model_is_refused(unmasked: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_error(["evaluate", str(unmasked), "--max-len", "50"], "model's max_len 10", monkeypatch, capsys)


def test_every_computed_metric_is_printed_within_80_columns(unmasked: Path, narrow: io.StringIO) -> None:
    genre = load_run(unmasked).recommender.catalog.attribute_values("genre")[0]
    ks = [a for k in (1, 2, 3, 5, 10, 20, 50, 100) for a in ("--k", str(k))]
    result = runner.invoke(cli.app, ["evaluate", str(unmasked), "--attribute", genre, *ks])
    assert result.exit_code == 0, result.output
    text = narrow.getvalue()
    assert fits(text) and "(continued)" in text  # eight cut-offs do not fit one 80-column table
    for label in ("LT coverage", "deep-LT coverage", "Gini", "ARP", f"{genre}_ratio", f"{genre}_HR",
                  f"{genre}_NDCG", "@100"):
        assert label in text, label


def test_recommend_follows_the_runs_masking(unmasked: Path) -> None:
    run = load_run(unmasked)
    assert run.recommender.mask_seen is False
    users = run.recommender.user_map.external[:20]
    rows = lambda *flags: json.loads(runner.invoke(  # noqa: E731
        cli.app, ["recommend", str(unmasked), *(a for u in users for a in ("--user", u)), "--k", "40", "--json",
                  *flags]).output)
    seen = {u: set(run.recommender.item_map.to_external(run.recommender.histories[int(i)]))
            for u, i in zip(users, run.recommender.user_map.to_internal(users), strict=True)}
    assert any(r["item"] in seen[r["user"]] for r in rows())  # as evaluated: seen items may come back
    assert not any(r["item"] in seen[r["user"]] for r in rows("--mask-seen"))


@pytest.mark.parametrize("ks", [[1, 3], [10, 100]])
def test_any_positive_cut_offs_work_end_to_end(ks: list[int], tmp_path: Path, narrow: io.StringIO) -> None:
    path = write(tmp_path, eval={"ks": ks})  # the default monitor NDCG@10 is validated whatever eval.ks is
    result = runner.invoke(cli.app, ["train", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    metrics = load_run(tmp_path / "runs" / "unmasked").metrics
    for split in ("valid", "test"):
        assert {f"HR@{k}" for k in ks} <= set(metrics[split])
    assert all(f"@{k}" in narrow.getvalue() for k in ks) and fits(narrow.getvalue())


def test_tune_and_steer_tables_fit_80_columns(narrow: io.StringIO) -> None:
    base = {f"{p}{k}": 0.2 for p in ("", "Comedy_", "Sci-Fi & Fantasy_") for k in sae.REPORT_KEYS}
    base |= {"Comedy_ratio@10": 0.1, "Sci-Fi & Fantasy_ratio@10": 0.05}
    sae.print_comparison(base, {k: v * 1.1 for k, v in base.items()}, ["Comedy", "Sci-Fi & Fantasy"], "test")
    from seqrec.steering.sweep import SWEEP_METRICS

    steer.print_sweep([{"method": "reweighting", "strength": 16, **dict.fromkeys(SWEEP_METRICS, 0.00012)}],
                          "popularity steering, test split, seen items masked")
    text = narrow.getvalue()
    assert fits(text) and "+10.0%" in text and "Sci-Fi & Fantasy_NDCG@50" in text and "0.00012" in text


# ---------------------------------------------------------------- settings torch would reject


@pytest.mark.parametrize(("override", "expected"), [
    ("train.lr=.inf", "train.lr must be a finite number"),
    ("train.lr=.nan", "train.lr must be a finite number"),
    ("model.dropout=nan", "model.dropout must be a finite number"),
    ("train.device=gpu", "train.device 'gpu' is not a device"),
    ("train.device=cuda:7", "is not available"),
    ("train.threads=-1", "threads"),
    ("train.dist_timeout=0", "train.dist_timeout"),
])
def test_settings_torch_would_reject_fail_before_anything_runs(override: str, expected: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_error(["train", str(write(tmp_path)), "--set", override, "--out", str(tmp_path / "runs")],
                     expected, monkeypatch, capsys)
    assert not (tmp_path / "runs").exists()


def test_diverged_training_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_error(["train", str(write(tmp_path)), "--set", "train.lr=1e30", "--set", "train.grad_clip=0",
                      "--out", str(tmp_path / "runs")], "training diverged at epoch 1", monkeypatch, capsys)
    assert not (tmp_path / "runs").exists()


def test_resume_mistakes_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_error(["train"], "give either CONFIG", monkeypatch, capsys)
    assert_cli_error(["train", "--resume", str(tmp_path)], "not a training run to resume", monkeypatch, capsys)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_leftover_world_size_fails_within_the_timeout(rank: str, tmp_path: Path) -> None:
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": rank, "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "seqrec.cli", "train", str(write(tmp_path)), "--set",
                           "train.dist_timeout=2", "--out", str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "could not meet the other processes within 2 s" in proc.stderr
    assert "unset WORLD_SIZE" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert time.monotonic() - start < 60
