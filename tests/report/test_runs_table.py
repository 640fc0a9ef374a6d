"""`list_runs`: every run below a folder, with the numbers its metrics.json holds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from seqrec.config import read_yaml, write_yaml
from seqrec.errors import RunError
from seqrec.report.run_folder import read_run_folder
from seqrec.report.runs_table import list_runs
from seqrec.runs import CONFIG, METRICS


def test_list_runs_reports_each_run_with_its_metrics(runs_root: Path) -> None:
    runs = {r.path.name: r for r in list_runs(runs_root)}
    assert set(runs) == {"sasrec", "gru4rec", "<script>alert(1)", "unfinished"}  # "notes" is not a run
    for name in ("sasrec", "gru4rec"):
        metrics = json.loads((runs_root / name / METRICS).read_text())
        run = runs[name]
        assert (run.status, run.kind, run.model, run.dataset) == ("finished", "base", name, "synthetic")
        assert run.monitor == "NDCG@10" and run.valid == metrics["valid"]["NDCG@10"]
        assert run.test_ndcg10 == metrics["test"]["NDCG@10"] and run.test_hr10 == metrics["test"]["HR@10"]
    unfinished = runs["unfinished"]
    assert unfinished.status == "unfinished" and unfinished.valid is None and unfinished.test_ndcg10 is None
    assert unfinished.model == "sasrec"


def test_derived_runs_take_model_and_dataset_from_their_parent(runs_root: Path, tmp_path: Path) -> None:
    sae = tmp_path / "sae-popsteer"
    sae.mkdir()
    write_yaml({"base_run": os.path.relpath(runs_root / "gru4rec", sae), "dim": 16}, sae / "sae.yaml")
    (sae / METRICS).write_text(json.dumps({"valid_fvu": 0.2}))
    run = read_run_folder(sae)
    assert (run.kind, run.model, run.dataset, run.finished) == ("sae", "gru4rec", "synthetic", True)


def test_a_missing_folder_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="folder not found: "):
        list_runs(tmp_path / "nowhere")
    assert list_runs(tmp_path) == []


def test_a_recorded_kind_wins_and_derived_runs_inside_a_run_are_listed(runs_root: Path, tmp_path: Path) -> None:
    base = Path(shutil.copytree(runs_root / "gru4rec", tmp_path / "runs" / "gru4rec"))
    config = read_yaml(base / CONFIG)
    write_yaml({**config, "kind": "distilled"}, base / CONFIG)
    sae = base / "sae-recftt"
    sae.mkdir()
    write_yaml({"kind": "sae", "base_run": ".."}, sae / "sae.yaml")
    runs = {r.path.name: r for r in list_runs(tmp_path / "runs")}
    assert runs["gru4rec"].kind == "distilled"
    assert (runs["sae-recftt"].kind, runs["sae-recftt"].model, runs["sae-recftt"].status) == ("sae", "gru4rec",
                                                                                             "unfinished")
