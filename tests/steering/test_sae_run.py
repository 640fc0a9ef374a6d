"""SAE run directories: save -> load gives the same scores; a missing or mismatched base run is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from seqrec.data.splits import SplitData
from seqrec.errors import RunError
from seqrec.steering import SAERun, load_sae_run, popsteer
from seqrec.steering.sae_run import SAE_CONFIG, SAE_WEIGHTS


def test_train_sae_reports_reconstruction_quality(sae_run: SAERun, steer_data: SplitData) -> None:
    m = sae_run.metrics
    prefixes = int((steer_data.train.lengths - 1).sum())  # fewer than max_vectors=3000: all are used
    assert 0.0 <= m["valid_fvu"] < 1.0 and 0.0 <= m["dead_ratio"] <= 1.0 and m["train_vectors"] == min(prefixes, 3000)
    for split in ("valid", "test"):
        assert m[f"{split}_base_NDCG@10"] > 0 and m[f"{split}_sae_NDCG@10"] > 0
    assert sae_run.path is not None and sae_run.path.parent == sae_run.base.path
    assert sae_run.path.name == "sae-popsteer"


def test_save_load_gives_the_same_scores(sae_run: SAERun, steer_data: SplitData) -> None:
    loaded = load_sae_run(sae_run.path)  # type: ignore[arg-type]
    assert loaded.config == sae_run.config and loaded.metrics == sae_run.metrics
    assert len(loaded.history) == len(sae_run.history)
    items = torch.from_numpy(steer_data.test.histories.padded(20))
    with torch.no_grad():
        assert torch.equal(loaded.recommender.score(items), sae_run.recommender.score(items))
        steered = popsteer(loaded, alpha=1.5, data=steer_data)
        again = popsteer(sae_run.path, alpha=1.5)  # type: ignore[arg-type]  # by path, probe read from disk
        assert torch.equal(steered.score(items), again.score(items))


def _copy(sae_run: SAERun, tmp_path: Path) -> Path:
    """A copy of the base run with its SAE run inside, so tests can damage it."""
    base = tmp_path / "base"
    shutil.copytree(sae_run.base.path, base)  # type: ignore[arg-type]
    return base / sae_run.path.name  # type: ignore[union-attr]


def test_missing_base_run(sae_run: SAERun, tmp_path: Path) -> None:
    moved = tmp_path / "alone"
    shutil.copytree(sae_run.path, moved)  # type: ignore[arg-type]
    (moved / SAE_CONFIG).write_text((moved / SAE_CONFIG).read_text().replace("base_run: ..", "base_run: ../gone"))
    with pytest.raises(RunError, match="base run .* is missing"):
        load_sae_run(moved)


def test_base_run_of_another_dimension(sae_run: SAERun, tmp_path: Path) -> None:
    path = _copy(sae_run, tmp_path)
    meta = yaml.safe_load((path / SAE_CONFIG).read_text())
    meta["dim"] = 32
    (path / SAE_CONFIG).write_text(yaml.safe_dump(meta))
    with pytest.raises(RunError, match="32-dim"):
        load_sae_run(path)


def test_damaged_weights_and_foreign_directories(sae_run: SAERun, tmp_path: Path) -> None:
    path = _copy(sae_run, tmp_path)
    (path / SAE_WEIGHTS).write_bytes((path / SAE_WEIGHTS).read_bytes()[:100])
    with pytest.raises(RunError, match="damaged"):
        load_sae_run(path)
    with pytest.raises(RunError, match="not an SAE run"):
        load_sae_run(sae_run.base.path)  # type: ignore[arg-type]


def _edit(file: Path, **changes: object) -> None:
    meta = yaml.safe_load(file.read_text())
    file.write_text(yaml.safe_dump({**meta, **changes}))


@pytest.mark.parametrize(("text", "message"), [
    ("base_run: [..\nsae: {k: 4", r"sae\.yaml:\d+: invalid YAML.*retrain the SAE"),
    ("- just\n- a list\n", r"sae\.yaml.*retrain the SAE"),
])
def test_damaged_sae_yaml(sae_copy: Path, text: str, message: str) -> None:
    (sae_copy / SAE_CONFIG).write_text(text)
    with pytest.raises(RunError, match=message):
        load_sae_run(sae_copy)


def test_sae_yaml_that_is_not_text(sae_copy: Path) -> None:
    (sae_copy / SAE_CONFIG).write_bytes(b"\xff\xfe\x00base_run\x9c")
    with pytest.raises(RunError, match=r"sae\.yaml.*retrain the SAE"):
        load_sae_run(sae_copy)


@pytest.mark.parametrize(("changes", "message"), [
    ({"latents": 2}, r"sae\.yaml is damaged .*sae\.k.*retrain the SAE"),  # k=4 > 2 latents
    ({"latents": -5}, r"sae\.yaml is damaged .*retrain the SAE"),
    ({"base_run": None}, r"sae\.yaml is damaged \(base_run must be .*got None\)"),
    ({"base_run": 3}, r"sae\.yaml is damaged \(base_run must be"),
])
def test_inconsistent_sae_yaml(sae_copy: Path, changes: dict, message: str) -> None:
    _edit(sae_copy / SAE_CONFIG, **changes)
    with pytest.raises(RunError, match=message):
        load_sae_run(sae_copy)


@pytest.mark.parametrize("pointer", [".", "", "../{name}", "./"])
def test_sae_run_pointing_at_itself(sae_copy: Path, pointer: str) -> None:
    _edit(sae_copy / SAE_CONFIG, base_run=pointer.format(name=sae_copy.name))
    with pytest.raises(RunError, match=r"sae\.yaml.*(points at this run itself|base_run must be)"):
        load_sae_run(sae_copy)


def test_sae_runs_pointing_at_each_other(sae_copy: Path) -> None:
    other = sae_copy.parent / "sae-under-test"  # a name no other test uses
    shutil.copytree(sae_copy, other)
    _edit(sae_copy / SAE_CONFIG, base_run=f"../{other.name}")
    _edit(other / SAE_CONFIG, base_run=f"../{sae_copy.name}")
    with pytest.raises(RunError, match=rf"{sae_copy / SAE_CONFIG}: base_run \.\./{other.name} is a derived run"):
        load_sae_run(sae_copy)


def test_base_run_that_is_not_a_run(sae_copy: Path) -> None:
    empty = sae_copy.parent / "not-a-run"
    empty.mkdir()
    _edit(sae_copy / SAE_CONFIG, base_run=f"../{empty.name}")
    message = rf"base run of .*sae\.yaml: base_run \.\./{empty.name}.*not a complete seqrec run"
    with pytest.raises(RunError, match=message):
        load_sae_run(sae_copy)


@pytest.mark.parametrize(("name", "text"), [("metrics.json", '{"valid_fvu": 0.1,'),
                                            ("history.jsonl", '{"epoch": 0}\n{"epoch": \n')])
def test_damaged_records_of_an_sae_run(sae_copy: Path, name: str, text: str) -> None:
    """metrics.json / history.jsonl are read by seqrec.runs.read_records (with files.read_json*)."""
    (sae_copy / name).write_text(text)
    with pytest.raises(RunError, match=rf"{name}:\d+: damaged JSON"):
        load_sae_run(sae_copy)


def test_base_run_behind_a_symbolic_link_loop(sae_copy: Path) -> None:
    (sae_copy.parent / "loop-a").symlink_to("loop-b")
    (sae_copy.parent / "loop-b").symlink_to("loop-a")
    _edit(sae_copy / SAE_CONFIG, base_run="../loop-a")
    with pytest.raises(RunError, match=r"sae\.yaml: base_run: \.\./loop-a cannot be followed"):
        load_sae_run(sae_copy)


def test_steered_recommenders_keep_the_runs_masking(sae_run: SAERun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sae_run.base.recommender, "mask_seen", False)
    assert sae_run.recommender.mask_seen is False
    assert popsteer(sae_run, alpha=1.0).mask_seen is False
