"""A small trained SASRec run on synthetic data with planted popularity, and an SAE on it (built once)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

import seqrec
from seqrec.data.config import DataConfig
from seqrec.data.splits import SplitData
from seqrec.data.synthetic import SyntheticConfig
from seqrec.experiment import ExperimentConfig
from seqrec.runs import Run
from seqrec.steering import SAEConfig, SAERun, train_sae

STEER_SYNTHETIC = {"num_users": 300, "num_items": 80, "mean_seq_len": 12, "max_seq_len": 30, "zipf_exponent": 1.2}
TINY_SAE = SAEConfig(k=4, scale=4, epochs=6, batch_size=128, lr=3e-3, max_vectors=3000, valid_vectors=200)


@pytest.fixture(scope="session")
def steer_data() -> SplitData:
    return seqrec.datasets.load("synthetic", synthetic=STEER_SYNTHETIC)


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """SASRec trained for a few epochs and saved (the SAE run needs a base run on disk)."""
    exp = ExperimentConfig(
        data=DataConfig(name="synthetic", synthetic=SyntheticConfig(**STEER_SYNTHETIC)),
        model=seqrec.SASRecConfig(max_len=20, hidden=16, blocks=1, dropout=0.1),
        train=seqrec.TrainConfig(epochs=8, batch_size=64, lr=5e-3, patience=0, device="cpu", seed=0),
        eval=seqrec.EvalConfig(ks=(10,)), name="base")
    return seqrec.run_experiment(exp, tmp_path_factory.mktemp("steer") / "runs", progress=False)


@pytest.fixture(scope="session")
def sae_run(base_run: Run, steer_data: SplitData) -> SAERun:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this tiny SAE costs a few percent of NDCG@10 (test_warnings checks that)
        return train_sae(base_run, TINY_SAE, data=steer_data, progress=False)


def sae_path(run: SAERun) -> Path:
    assert run.path is not None
    return run.path


@pytest.fixture
def sae_copy(sae_run: SAERun, tmp_path: Path) -> Path:
    """A private copy of the base run with the SAE run inside (no probe cache), for tests that damage files."""
    base = tmp_path / "base"
    shutil.copytree(sae_run.base.path, base)  # type: ignore[arg-type]
    copy = base / sae_path(sae_run).name
    for cached in copy.glob("probe-*"):
        cached.unlink()
    return copy
