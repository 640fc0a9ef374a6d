"""Processes started with one SQLite storage share one study: together they run exactly the trials asked for,
each trial once, none lost; a killed process loses only its running trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import TINY_SYNTHETIC
from seqrec.runs import load_run

optuna = pytest.importorskip("optuna")

CONFIG = {
    "name": "shared",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 3, "batch_size": 32, "patience": 0, "device": "cpu", "seed": 0, "threads": 1},
    "eval": {"ks": [5, 10]},
}
SPACE = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model.dropout": {"low": 0.0, "high": 0.5}}
TRIALS = 8


@pytest.mark.slow
def test_processes_share_one_study(tmp_path: Path) -> None:
    config, space = tmp_path / "shared.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    space.write_text(yaml.safe_dump(SPACE))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    command = [sys.executable, "-m", "seqrec", "-q", "search", str(config), "--space", str(space), "--trials",
               str(TRIALS), "--storage", url, "--study", "shared", "--out", str(tmp_path / "runs"),
               "--startup-trials", "2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for extra in ([], ["--jobs", "2"])]  # the second starts one more process of its own
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs

    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    dropped = [t for t in trials if t not in counted]
    assert len(counted) == TRIALS  # none lost, none run twice
    assert all(t.state.name == "FAIL" and t.user_attrs.get("surplus") for t in dropped)  # a tie at the end, if any
    assert len({t.number for t in counted}) == TRIALS and len({json.dumps(t.params) for t in counted}) == TRIALS
    assert len({t.user_attrs["process"] for t in counted}) >= 2  # trials of several processes

    folder = tmp_path / "runs" / "shared"
    complete = [t for t in counted if t.state.name == "COMPLETE"]
    assert sorted(p.name for p in folder.glob("trial-*")) == sorted(t.user_attrs["run"] for t in complete)
    for trial in complete:  # each run holds its own trial's values
        run = load_run(folder / trial.user_attrs["run"])
        assert (run.config.train.lr, run.config.model.dropout) == (trial.params["train.lr"],
                                                                   trial.params["model.dropout"])
        assert run.metrics["valid"]["NDCG@10"] == trial.value
    pruned = sorted(p.stem for p in (folder / "pruned").glob("*.json")) if (folder / "pruned").exists() else []
    assert pruned == sorted(f"trial-{t.number:04d}" for t in counted if t.state.name == "PRUNED")


@pytest.mark.slow
def test_a_killed_process_loses_only_its_running_trial(tmp_path: Path) -> None:
    """kill -9 during a trial: the next run of the same search fails that trial (its process is gone), removes its
    folder and redoes it."""
    import time

    from seqrec.search import SearchSettings, run_search
    from seqrec.search.backend import open_storage

    config = {**CONFIG, "name": "killed", "train": {**CONFIG["train"], "epochs": 15}}
    space = {"train.lr": SPACE["train.lr"]}
    (tmp_path / "killed.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    command = [sys.executable, "-m", "seqrec", "-q", "search", str(tmp_path / "killed.yaml"), "--space",
               str(tmp_path / "space.yaml"), "--trials", "3", "--storage", url, "--out", str(tmp_path / "runs"),
               "--pruner", "none"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage, running = open_storage(url), []
    deadline = time.monotonic() + 120
    while not running and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            trials = optuna.load_study(study_name="killed-search", storage=storage).get_trials()
        except KeyError:  # the study is not there yet
            continue
        running = [t.number for t in trials if t.state.name == "RUNNING" and "process" in t.user_attrs]
    process.kill()
    process.wait()
    assert running, "the search finished before a trial could be killed"

    outcome = run_search(config, space, 3, storage=url, output_dir=tmp_path / "runs", progress=False,
                         settings=SearchSettings(pruner="none"))
    trials = outcome.study.get_trials()
    killed = trials[running[0]]
    assert killed.state.name == "FAIL" and "error" not in killed.user_attrs
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3 and not any(t.state.name == "RUNNING" for t in trials)
    folder = tmp_path / "runs" / "killed-search"
    assert not (folder / f"trial-{killed.number:04d}").exists()
    assert sorted(p.name for p in folder.glob("trial-*")) == sorted(
        t.user_attrs["run"] for t in trials if t.state.name == "COMPLETE")
