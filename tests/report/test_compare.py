"""`compare_runs`: metrics equal to each run's metrics.json, differing settings, learning curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrec.errors import RunError, SeqrecError
from seqrec.report.compare import MISSING, compare_runs, differing, flatten, unique_labels
from seqrec.runs import METRICS


def test_metrics_table_holds_every_number_of_metrics_json(runs_root: Path) -> None:
    comparison = compare_runs([runs_root / "sasrec", runs_root / "gru4rec", runs_root / "unfinished"])
    assert comparison.labels == ["sasrec", "gru4rec", "unfinished"]
    for label in ("sasrec", "gru4rec"):
        metrics = json.loads((runs_root / label / METRICS).read_text())
        expected = {f"{split}.{k}": v for split in ("valid", "test") for k, v in metrics[split].items()}
        expected |= {k: metrics[k] for k in ("best_epoch", "epochs_run", "train_seconds")}
        assert {k: v[label] for k, v in comparison.metrics.items()} == expected
        assert comparison.protocols[label] == metrics["protocol"]
    assert all(values["unfinished"] is None for values in comparison.metrics.values())
    assert comparison.protocols["unfinished"]["seen_items_masked"] is True  # from its config


def test_config_diff_finds_the_settings_that_differ(runs_root: Path) -> None:
    diff = compare_runs([runs_root / "sasrec", runs_root / "gru4rec"], curves=False).config_diff
    assert diff["train.lr"] == {"sasrec": 0.003, "gru4rec": 0.01}
    assert diff["model.name"] == {"sasrec": "sasrec", "gru4rec": "gru4rec"}
    assert diff["model.blocks"]["gru4rec"] is MISSING
    assert "eval.ks" not in diff and "train.epochs" not in diff


def test_learning_curves_are_pngs_written_on_request(runs_root: Path, tmp_path: Path) -> None:
    comparison = compare_runs([runs_root / "sasrec", runs_root / "gru4rec"])
    assert set(comparison.curves) == {"train_loss", "valid_NDCG@10"}
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in comparison.curves.values())
    written = comparison.write_curves(tmp_path / "curves")
    assert sorted(p.name for p in written) == ["train_loss.png", "valid_NDCG_at_10.png"]
    with pytest.raises(SeqrecError, match="already exists"):
        comparison.write_curves(tmp_path / "curves")
    assert comparison.write_curves(tmp_path / "curves", overwrite=True) == written


def test_missing_or_foreign_folders_are_run_errors(runs_root: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        compare_runs([tmp_path / "nowhere"])
    with pytest.raises(RunError, match="is not a seqrec run"):
        compare_runs([runs_root / "notes"])


def test_helpers() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    assert differing({"x": {"a": 1, "b": 2}, "y": {"a": 1}}) == {"b": {"x": 2, "y": MISSING}}
    assert unique_labels([Path("a/run"), Path("b/run"), Path("c")]) == ["a/run", "b/run", "c"]
