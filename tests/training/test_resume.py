"""Checkpoints and resume: an interrupted run continues to exactly the result of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.errors import Interrupted, NonFiniteError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.models import build_model
from seqrec.runs import METRICS, WEIGHTS, load_run
from seqrec.training.checkpoint import CHECKPOINT, CHECKPOINT_INFO


def experiment(model: str = "sasrec", name: str = "exp", **train: object) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "name": name,
        "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
        "model": {"name": model, "max_len": 10, "hidden": 16, **({"blocks": 1} if model != "gru4rec" else {})},
        "train": {"epochs": 4, "batch_size": 16, "patience": 0, "device": "cpu", "seed": 3, **train},
        "eval": {"ks": [5, 10]},
    })


def interrupt_after(epoch: int):  # noqa: ANN201
    def callback(record: dict) -> None:
        if record["epoch"] == epoch:
            raise KeyboardInterrupt

    return callback


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in history]


@pytest.mark.parametrize("model", ["sasrec", "bert4rec", "gru4rec", "duorec"])
def test_interrupted_and_resumed_equals_uninterrupted(model: str, tmp_path: Path) -> None:
    whole = seqrec.run_experiment(experiment(model, "whole"), tmp_path, progress=False)
    with pytest.raises(Interrupted, match="--resume"):
        seqrec.run_experiment(experiment(model, "cut"), tmp_path, progress=False, callbacks=[interrupt_after(2)])
    cut = tmp_path / "cut"
    assert json.loads((cut / CHECKPOINT_INFO).read_text())["epoch"] == 2 and not (cut / METRICS).exists()
    with pytest.raises(RunError, match="seqrec train --resume"):  # an unfinished run says how to continue
        load_run(cut)
    resumed = seqrec.api.resume(cut, progress=False)
    assert resumed.path == cut and not (cut / CHECKPOINT).exists()  # finished in place, checkpoint dropped
    for key in ("valid", "test", "best_epoch", "epochs_run"):
        assert resumed.metrics[key] == whole.metrics[key], key
    assert without_timing(resumed.history) == without_timing(whole.history)
    a, b = load_file(str(cut / WEIGHTS)), load_file(str(tmp_path / "whole" / WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_early_stopping_only_writes_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training that already stopped (here: the final write failed) is not trained again on resume."""
    import seqrec.training_runs as training_runs

    real = training_runs.write_run_files

    def full_disk(run, folder):  # noqa: ANN001, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training_runs, "write_run_files", full_disk)
    with pytest.raises(RunError, match=r"No space left.*checkpoint\.pt.*--resume"):
        seqrec.run_experiment(experiment(epochs=3), tmp_path, progress=False)
    assert (tmp_path / "exp" / CHECKPOINT).exists()  # the trained model is kept where the message says
    monkeypatch.setattr(training_runs, "write_run_files", real)
    epochs = []
    run = seqrec.api.resume(tmp_path / "exp", progress=False, callbacks=[lambda r: epochs.append(r["epoch"])])
    assert epochs == [] and run.metrics["epochs_run"] == 3 and load_run(tmp_path / "exp").metrics == run.metrics


def test_without_checkpoints_a_failed_write_rescues_the_weights(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import seqrec.training_runs as training_runs

    def full_disk(run, folder):  # noqa: ANN001, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training_runs, "write_run_files", full_disk)
    config = experiment(epochs=1, checkpoint_every=0)
    with pytest.raises(RunError, match="trained weights are kept in") as exc:
        seqrec.run_experiment(config, tmp_path, progress=False)
    rescued = Path(str(exc.value).rsplit("kept in ", 1)[1])
    model = build_model(config.model, 40)
    assert set(load_file(str(rescued))) == set(model.state_dict())


def test_an_interruption_before_the_first_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Interrupted, match="no run directory was written"):
        seqrec.run_experiment(experiment(checkpoint_every=0), tmp_path / "runs", progress=False,
                              callbacks=[interrupt_after(1)])
    assert not (tmp_path / "runs").exists()  # not even the parent folder made for it


def test_checkpoints_follow_checkpoint_every(tmp_path: Path) -> None:
    saved = []
    cut = tmp_path / "exp"

    def watch(record: dict) -> None:
        info = cut / CHECKPOINT_INFO
        saved.append(json.loads(info.read_text())["epoch"] if info.exists() else None)

    with pytest.raises(Interrupted):
        seqrec.run_experiment(experiment(epochs=6, checkpoint_every=2), tmp_path, progress=False,
                              callbacks=[watch, interrupt_after(5)])
    assert saved == [None, 2, 2, 4, 4]  # read after each epoch (and its checkpoint, when due)
    resumed = seqrec.api.resume(cut, progress=False)
    assert resumed.metrics["epochs_run"] == 6


def test_diverged_training_stops_at_once_and_writes_no_run(tmp_path: Path) -> None:
    records = []
    with pytest.raises(NonFiniteError, match=r"epoch 1, batch \d+ of \d+.*train\.lr is 1e\+30"):
        seqrec.run_experiment(experiment(lr=1e30, grad_clip=0), tmp_path / "runs", progress=False,
                              callbacks=[records.append])
    assert records == [] and not (tmp_path / "runs").exists()


def test_a_damaged_checkpoint_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        seqrec.run_experiment(experiment(), tmp_path, progress=False, callbacks=[interrupt_after(1)])
    (tmp_path / "exp" / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=r"checkpoint\.pt is damaged.*delete it"):
        seqrec.api.resume(tmp_path / "exp", progress=False)


def test_a_checkpoint_of_another_format_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        seqrec.run_experiment(experiment(), tmp_path, progress=False, callbacks=[interrupt_after(1)])
    file = tmp_path / "exp" / CHECKPOINT
    state = torch.load(file, weights_only=True)
    del state["format"]  # what the previous layout looked like to this version
    torch.save(state, file)
    with pytest.raises(RunError, match=r"another version of seqrec \(checkpoint format 1.*delete it"):
        seqrec.api.resume(tmp_path / "exp", progress=False)


def test_resume_refuses_a_finished_run_and_a_non_run(tmp_path: Path) -> None:
    seqrec.run_experiment(experiment(epochs=1), tmp_path, progress=False)
    with pytest.raises(RunError, match="already finished"):
        seqrec.api.resume(tmp_path / "exp")
    with pytest.raises(RunError, match="not a training run to resume"):
        seqrec.api.resume(tmp_path / "nothing")


def resumed_equals_whole(config: dict, tmp_path: Path, cut_after: int) -> None:
    """Train `config` whole and cut after `cut_after` epochs then resumed: the same metrics, history, weights."""
    whole = seqrec.run_experiment(ExperimentConfig.from_dict({**config, "name": "whole"}), tmp_path, progress=False)
    with pytest.raises(Interrupted):
        seqrec.run_experiment(ExperimentConfig.from_dict({**config, "name": "cut"}), tmp_path, progress=False,
                              callbacks=[interrupt_after(cut_after)])
    resumed = seqrec.api.resume(tmp_path / "cut", progress=False)
    for key in ("valid", "test", "best_epoch"):
        assert resumed.metrics[key] == whole.metrics[key], key
    assert without_timing(resumed.history) == without_timing(whole.history)
    a, b = load_file(str(tmp_path / "cut" / WEIGHTS)), load_file(str(tmp_path / "whole" / WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cut_after", [1, 3])  # in the distilled phase, and after the switch to fine-tuning
def test_resume_across_the_distillation_phases(cut_after: int, tmp_path: Path) -> None:
    from seqrec.distill import write_profile_json

    rng = np.random.default_rng(0)
    profiles = write_profile_json(tmp_path / "profiles.json",
                                  {str(u): rng.normal(size=6) for u in range(100) if rng.random() < 0.7})
    config = experiment().to_dict() | {"distill": {"profiles": str(profiles), "fine_tune_epoch": 3}}
    resumed_equals_whole(config, tmp_path, cut_after)


def test_resume_keeps_the_retrieval_knowledge_base_as_last_encoded(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    base = seqrec.run_experiment(experiment("duorec", "base", epochs=1), tmp_path, progress=False)
    config = experiment("duorec", epochs=4).to_dict() | {
        "retrieval": {"base_run": str(base.path), "top_k": 3, "refresh_every": 2}}
    resumed_equals_whole(config, tmp_path, 3)  # the knowledge base was encoded after epoch 2, not 3
