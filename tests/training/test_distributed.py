"""Data-parallel training: `torchrun -m seqrec train` on 2 CPU processes (gloo) equals one process, through both
phases of profile distillation (epochs 1-2 with the profile guide, epoch 3 without)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import TINY_SYNTHETIC
from seqrec.distill import write_profile_json
from seqrec.training.distributed import Distributed

EXPERIMENT = {
    "name": "ddp",
    "data": {"name": "synthetic", "synthetic": {**TINY_SYNTHETIC, "num_users": 90}},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1, "dropout": 0.0},  # no random masks
    "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "patience": 0, "device": "cpu", "threads": 1},
    "eval": {"ks": [5, 10]},
    "distill": {"profiles": "profiles.json", "fine_tune_epoch": 3, "alpha": 0.5, "balance": True,
                "pooling": "attention"},
}


def _train(tmp_path: Path, launcher: list[str], out: str) -> Path:
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(EXPERIMENT))
    rng = np.random.default_rng(0)  # profiles for about two thirds of the users, the same in both runs
    profiles = {str(u): rng.normal(size=6) for u in range(1, 91) if rng.random() < 0.7}
    write_profile_json(tmp_path / "profiles.json", profiles, overwrite=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, "train", str(config), "--out", out], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run saved to") == 1  # rank 1 stays quiet
    runs = [p for p in (tmp_path / out).iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1  # only rank 0 writes a run directory
    return runs[0]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    single = _train(tmp_path, [sys.executable, "-m", "seqrec"], "single")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seqrec"]
    ddp = _train(tmp_path, torchrun, "ddp")

    one, two = load_file(str(single / "model.safetensors")), load_file(str(ddp / "model.safetensors"))
    assert one.keys() == two.keys()
    for name in one:
        if name.endswith("qkv.bias"):  # the key bias shifts every logit of a query alike: its exact gradient is 0,
            d = len(one[name]) // 3  # so Adam turns rounding noise (which differs with summation order) into steps
            one[name], two[name] = one[name][torch.arange(3 * d) // d != 1], two[name][torch.arange(3 * d) // d != 1]
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (single, ddp)]
    assert metrics[0]["protocol"]["processes"] == 1 and metrics[1]["protocol"]["processes"] == 2
    assert metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
    for split in ("valid", "test"):
        for key, value in metrics[0][split].items():
            assert metrics[1][split][key] == pytest.approx(value, abs=1e-4), f"{split} {key}"
    histories = [[json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
                 for run in (single, ddp)]
    assert ["guide_loss" in h for h in histories[0]] == [True, True, False]
    for a, b in zip(*histories, strict=True):  # train loss and the sharded, reduced validation metrics
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b.get("guide_loss", 0.0) == pytest.approx(a.get("guide_loss", 0.0), rel=1e-4)
        assert b["valid_NDCG@10"] == pytest.approx(a["valid_NDCG@10"], abs=1e-4)


def test_single_process_context_is_the_identity() -> None:
    world = Distributed()
    rows = np.arange(7)
    assert np.array_equal(world.shard(rows), rows)
    assert world.weighted_mean({"NDCG@10": 0.25}, 7, torch.device("cpu")) == {"NDCG@10": 0.25}
    assert world.sum(torch.tensor(3.0)).item() == 3.0
    assert world.any(True, torch.device("cpu")) and not world.any(False, torch.device("cpu"))


def test_shards_split_a_batch_without_overlap() -> None:
    rows = np.arange(11)
    shards = [Distributed(rank, 3).shard(rows) for rank in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == rows.tolist()
    assert [len(s) for s in shards] == [4, 4, 3]
