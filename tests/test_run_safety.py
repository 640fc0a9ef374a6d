"""Runs survive faults: the output folder is checked first, names are names, concurrent trainings never collide,
files get normal permissions, leftovers of killed processes are cleaned, damaged run files are clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import seqrec
from helpers import TINY_SYNTHETIC, assert_cli_error
from seqrec.errors import ConfigError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.files import host_name, temp_sibling
from seqrec.runs import (
    CATALOG,
    HISTORIES,
    HISTORY,
    ID_MAPS,
    METRICS,
    check_run_name,
    load_run,
    unique_run_dir,
    write_atomically,
)

TINY = {
    "name": "tiny",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 1, "batch_size": 32, "patience": 0, "device": "cpu"},
    "eval": {"ks": [5, 10]},
}


def config(**sections: object) -> ExperimentConfig:
    raw = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return ExperimentConfig.from_dict(raw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seqrec.run_experiment(config(), tmp_path_factory.mktemp("safety"), progress=False).path  # type: ignore


# ---------------------------------------------------------------- the output location, before any work


def unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write into (root ignores permission bits, so use /proc for root)."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize("case", ["a file", "a broken link", "unwritable"])
def test_a_bad_output_location_fails_before_the_data_is_read(case: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    if case == "a file":
        target.write_text("not a folder")
    elif case == "a broken link":
        target.symlink_to(tmp_path / "gone")
    else:
        target = unwritable(tmp_path)
    bad_data = config(data={"name": "no-such-dataset"})  # reading data would fail with another message
    start = time.perf_counter()
    with pytest.raises(RunError, match="output folder|cannot write runs"):
        seqrec.run_experiment(bad_data, target, progress=False)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", ".", "..", ".hidden", "a/b", "a\\b", "tab\tname"])
def test_run_names_are_names_not_paths(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="single folder name"):
        seqrec.run_experiment(config(name=name), tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="is empty"):
        check_run_name("")


def test_a_path_as_name_is_one_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert_cli_error(["train", str(path), "--set", "name=../../x", "--out", str(tmp_path / "runs")],
                     "single folder name", monkeypatch, capsys)


# ---------------------------------------------------------------- permissions and leftovers


def test_runs_have_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = seqrec.run_experiment(config(), tmp_path, progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.path.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.path.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_leftovers_of_killed_processes_are_cleaned(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = temp_sibling(tmp_path / "exp")  # this (live) process: kept
    theirs = Path(str(temp_sibling(tmp_path / "exp")).replace(f"-{os.getpid()}-", f"-{dead.pid}-"))
    for folder in (mine, theirs):
        folder.mkdir()
        (folder / "half.bin").write_bytes(b"x")
    claimed = tmp_path / "old"
    claimed.mkdir()
    (claimed / f".seqrec-claim-{host_name()}-{dead.pid}").touch()
    unique_run_dir(tmp_path, "exp")
    assert mine.exists() and not theirs.exists() and not claimed.exists()


# ---------------------------------------------------------------- concurrent processes


def _claim_and_write(parent: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue) -> None:
    barrier.wait()
    for _ in range(5):
        path = write_atomically(unique_run_dir(parent, "exp"), lambda tmp: (tmp / "pid").write_text(str(os.getpid())))
        queue.put(str(path))


def test_concurrent_processes_never_share_a_run_name(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_claim_and_write, args=(str(tmp_path), barrier, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers)
    paths = [queue.get(timeout=5) for _ in range(20)]
    assert len(set(paths)) == 20  # none lost, none shared
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in paths)
    assert all((Path(p) / "pid").read_text().isdigit() for p in paths)


def test_two_trainings_with_the_same_name_give_two_runs(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    command = [sys.executable, "-m", "seqrec.cli", "train", str(path), "--out", str(tmp_path / "runs")]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny", "tiny-2"]
    for name in ("tiny", "tiny-2"):
        assert load_run(tmp_path / "runs" / name).metrics["test"]


# ---------------------------------------------------------------- signals


def test_sigterm_keeps_the_run_and_resume_finishes_it(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    # many epochs, stopped by a time budget of training seconds that a resumed run continues to count
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "epochs": 10_000, "time_budget": 6}}))
    run_dir = tmp_path / "runs" / "tiny"
    proc = subprocess.Popen([sys.executable, "-m", "seqrec.cli", "train", str(path), "--out",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"seqrec train --resume {run_dir}" in " ".join(err.split()) and "Traceback" not in out + err
    info = json.loads((run_dir / "checkpoint.json").read_text())
    assert 1 <= info["epoch"] < 10_000 and not info["stopped"]
    with pytest.raises(RunError, match="--resume"):
        load_run(run_dir)
    refused = subprocess.run([sys.executable, "-m", "seqrec.cli", "train", "--resume", str(run_dir),
                              "--set", "train.epochs=2"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--set" in refused.stderr  # a resumed run keeps its config
    resumed = subprocess.run([sys.executable, "-m", "seqrec.cli", "train", "--resume", str(run_dir)],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    run = load_run(run_dir)
    assert run.metrics["epochs_run"] > info["epoch"] and not (run_dir / "checkpoint.json").exists()


# ---------------------------------------------------------------- damaged run files


DAMAGE = {
    METRICS: b'{"test": {"HR@10": 0.5',
    ID_MAPS: b'{"users": {"offset": 0}}',
    CATALOG: b'{"num_items": 3, "titles": null, "attributes": {}}',
    HISTORY: b'{"epoch": 1}\n{"epoch": 2, \n',
    HISTORIES: b"PK\x03\x04 truncated",
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damaged_run_files_are_run_errors_naming_the_file(name: str, finished: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    (copy / name).write_bytes(DAMAGE[name])
    with pytest.raises(RunError, match=f"{name}.*(damaged|restore)"):
        load_run(copy)
    assert_cli_error(["evaluate", str(copy)], name, monkeypatch, capsys)


def test_histories_that_do_not_fit_the_run(finished: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    with np.load(copy / HISTORIES) as z:
        offsets, items = z["offsets"], z["items"]
    np.savez_compressed(copy / HISTORIES, offsets=offsets, items=items + 1000)  # items beyond the catalogue
    with pytest.raises(RunError, match="histories do not fit"):
        load_run(copy)


def test_rebuild_index_on_a_run_without_retrieval(finished: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_error(["rebuild-index", str(finished)], "without retrieval augmentation", monkeypatch, capsys)


def test_non_finite_metrics_are_never_written_as_json(tmp_path: Path) -> None:
    from seqrec.errors import SeqrecError
    from seqrec.runs import write_records

    with pytest.raises(SeqrecError, match=r"NaN or infinity.*test\.HR@10"):
        write_records(tmp_path, {"test": {"HR@10": float("nan")}}, [])
    assert not (tmp_path / METRICS).exists()


# ---------------------------------------------------------------- the run lifecycle's own faults


def test_a_finished_run_is_never_dropped_by_a_late_interruption(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import seqrec.api as api
    from seqrec.errors import Interrupted

    real = api.finish_run_dir

    def finish_then_interrupt(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        real(*args, **kwargs)
        raise KeyboardInterrupt  # e.g. Ctrl-C while the other processes meet at the barrier

    monkeypatch.setattr(api, "finish_run_dir", finish_then_interrupt)
    with pytest.raises(Interrupted, match="after the run was written"):
        seqrec.run_experiment(config(), tmp_path, progress=False)
    assert load_run(tmp_path / "tiny").metrics["test"]


def test_resume_refuses_a_folder_without_a_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "myexp"
    folder.mkdir()
    (folder / "config.yaml").write_text("# my notes\n" + yaml.safe_dump(TINY))
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="no training checkpoint"):
        seqrec.resume(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "notes.txt"]
    assert (folder / "config.yaml").read_text().startswith("# my notes")


def interrupted_run(tmp_path: Path) -> Path:
    from seqrec.errors import Interrupted

    def stop(record: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        seqrec.run_experiment(config(train={"epochs": 3}), tmp_path, progress=False, callbacks=[stop])
    return tmp_path / "tiny"


def test_two_processes_never_train_the_same_run(tmp_path: Path) -> None:
    run_dir = interrupted_run(tmp_path)
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".seqrec-lock").write_text(f"{host_name()} {busy.pid}")
        with pytest.raises(RunError, match=f"being trained by process {busy.pid}"):
            seqrec.resume(run_dir, progress=False)
    finally:
        busy.kill()
        busy.wait()
    run = seqrec.resume(run_dir, progress=False)  # the lock of a process that is gone is taken over
    assert run.metrics["epochs_run"] == 3 and not (run_dir / ".seqrec-lock").exists()


def test_a_checkpoint_write_cut_short_leaves_nothing_in_the_finished_run(tmp_path: Path) -> None:
    run_dir = interrupted_run(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = run_dir / f".checkpoint.pt.tmp-{host_name()}-{dead.pid}-abcd1234"
    leftover.write_bytes(b"half a checkpoint")
    seqrec.resume(run_dir, progress=False)
    assert not leftover.exists()


def test_a_long_multibyte_name_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert_cli_error(["train", str(path), "--set", f"name={'é' * 150}", "--out", str(tmp_path / "runs")],
                     "longer than 120 bytes", monkeypatch, capsys)


def test_files_written_by_other_libraries_get_normal_permissions(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "stage", lambda tmp: (tmp / "model").mkdir() or save_file(
            {"w": torch.zeros(2)}, str(tmp / "model" / "weights.safetensors")))
    finally:
        os.umask(old)
    assert stat.S_IMODE((path / "model" / "weights.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((path / "model").stat().st_mode) == 0o755
