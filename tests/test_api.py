"""The Python API: `seqrec.train` reports the metrics `seqrec.evaluate` computes, and learns something real."""

from __future__ import annotations

import pytest

import seqrec
from seqrec import EvalConfig, SASRecConfig, TrainConfig
from seqrec.data.fingerprint import data_fingerprint
from seqrec.data.splits import SplitData
from seqrec.evaluation.baselines import MostPopular
from seqrec.runs import Run

SMALL = {"num_users": 300, "num_items": 100, "mean_seq_len": 20, "min_seq_len": 5, "max_seq_len": 50}
MODEL = SASRecConfig(max_len=30, hidden=32, blocks=1, dropout=0.1)
EVAL = EvalConfig(ks=(5, 10))


def small_data(seed: int) -> SplitData:
    return seqrec.datasets.load("synthetic", synthetic={**SMALL, "seed": seed})


def train(data: SplitData, seed: int = 0, epochs: int = 8) -> Run:
    config = TrainConfig(epochs=epochs, lr=3e-3, batch_size=64, patience=0, device="cpu", seed=seed)
    return seqrec.train(MODEL, data, config, EVAL, progress=False)


def test_reported_metrics_are_evaluate_on_the_restored_model(tiny_data: SplitData) -> None:
    run = train(tiny_data, epochs=3)
    assert run.metrics["test"] == seqrec.evaluate(run.recommender, tiny_data.test, ks=EVAL.ks)
    assert run.metrics["valid"] == seqrec.evaluate(run.recommender, tiny_data.valid, ks=EVAL.ks)
    best = run.history[run.metrics["best_epoch"] - 1]
    assert run.metrics["valid"]["NDCG@10"] == pytest.approx(best["valid_NDCG@10"], abs=1e-7)
    assert run.metrics["epochs_run"] == len(run.history) == 3
    assert run.config.model == MODEL and run.config.train.epochs == 3 and run.config.data.name == "synthetic"


def test_protocol_says_what_the_numbers_mean(tiny_data: SplitData) -> None:
    run = train(tiny_data, epochs=1)
    assert run.metrics["protocol"] == {
        "dataset": "synthetic", "split": "loo", "users": 60, "items": 40, "valid_users": len(tiny_data.valid),
        "test_users": len(tiny_data.test), "ranking": "full catalogue", "seen_items_masked": True, "ks": [5, 10],
        "max_len": 30, "processes": 1, "data_fingerprint": data_fingerprint(tiny_data),
    }
    assert len(tiny_data.test) == 60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sasrec_beats_most_popular(seed: int) -> None:
    data = small_data(seed)
    popular = seqrec.evaluate(MostPopular(data.item_stats.counts), data.test, ks=(10,))["NDCG@10"]
    run = train(data, seed=seed)
    # measured margins over three seeds: 1.35x to 1.7x the popularity baseline
    assert run.metrics["test"]["NDCG@10"] > 1.15 * popular
