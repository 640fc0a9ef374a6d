"""Tuned-run directories: damaged or self-referencing tune.yaml and records are one-line RunErrors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from seqrec.errors import RunError
from seqrec.steering import load_sae_run
from seqrec.steering.tuned_run import TUNE_CONFIG, TUNE_WEIGHTS, TunedRun, load_tuned_run, save_tuned_run
from seqrec.steering.tuning import LatentController, TuneConfig


@pytest.fixture
def tuned_copy(sae_copy: Path) -> Path:
    """An untrained controller over latents 0 and 1, saved as a tuned run inside the copied SAE run."""
    sae_run = load_sae_run(sae_copy)
    controller = LatentController([0, 1], sae_run.sae.latents)
    with torch.no_grad():
        controller.bias.add_(0.5)
    run = TunedRun(TuneConfig(targets=["Comedy"]), controller, sae_run)
    return save_tuned_run(run, sae_copy / "tune-under-test")  # a name no other test uses


def _edit(file: Path, **changes: object) -> None:
    meta = yaml.safe_load(file.read_text())
    file.write_text(yaml.safe_dump({**meta, **changes}))


def test_round_trip(tuned_copy: Path) -> None:
    loaded = load_tuned_run(tuned_copy)
    assert loaded.controller.latents.tolist() == [0, 1] and torch.allclose(loaded.controller.bias, torch.full((2,), .5))


@pytest.mark.parametrize("pointer", [".", "../{name}", ""])
def test_tuned_run_pointing_at_itself(tuned_copy: Path, pointer: str) -> None:
    _edit(tuned_copy / TUNE_CONFIG, sae_run=pointer.format(name=tuned_copy.name))
    with pytest.raises(RunError, match=r"tune\.yaml.*(points at this run itself|sae_run must be)"):
        load_tuned_run(tuned_copy)


def test_tuned_runs_pointing_at_each_other(tuned_copy: Path) -> None:
    other = tuned_copy.parent / "tune-other-under-test"
    shutil.copytree(tuned_copy, other)
    _edit(tuned_copy / TUNE_CONFIG, sae_run=f"../{other.name}")
    _edit(other / TUNE_CONFIG, sae_run=f"../{tuned_copy.name}")
    with pytest.raises(RunError, match=rf"{tuned_copy / TUNE_CONFIG}: sae_run \.\./{other.name} .* is not an SAE run"):
        load_tuned_run(tuned_copy)


def test_tuned_run_pointing_at_the_base_run(tuned_copy: Path) -> None:
    _edit(tuned_copy / TUNE_CONFIG, sae_run="../..")
    with pytest.raises(RunError, match=r"tune\.yaml: sae_run \.\./\.\. .* is not an SAE run.*tune again"):
        load_tuned_run(tuned_copy)


@pytest.mark.parametrize(("text", "message"), [
    ("sae_run: ..\nlatents: [0, 1\n", r"tune\.yaml:\d+: invalid YAML.*tune again"),
    ("sae_run: ..\nlatents: [0, 999]\ntune: {targets: [Comedy]}\n", r"tune\.yaml.*latent ids.*tune again"),
    ("sae_run: ..\nlatents: [0, 1]\ntune: {targets: []}\n", r"tune\.yaml is damaged.*tune again"),
])
def test_damaged_tune_yaml(tuned_copy: Path, text: str, message: str) -> None:
    (tuned_copy / TUNE_CONFIG).write_text(text)
    with pytest.raises(RunError, match=message):
        load_tuned_run(tuned_copy)


def test_damaged_controller_and_records(tuned_copy: Path) -> None:
    good = (tuned_copy / TUNE_WEIGHTS).read_bytes()
    (tuned_copy / TUNE_WEIGHTS).write_bytes(good[:40])
    with pytest.raises(RunError, match=rf"{TUNE_WEIGHTS}.*tune again"):
        load_tuned_run(tuned_copy)
    (tuned_copy / TUNE_WEIGHTS).write_bytes(good)
    (tuned_copy / "metrics.json").write_text('{"valid": ')
    with pytest.raises(RunError, match=r"metrics\.json:\d+: damaged JSON"):
        load_tuned_run(tuned_copy)
