"""Saved tiny runs for the report tests: two finished runs that differ in model and lr, one unfinished run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import seqrec
from helpers import TINY_EVAL, tiny_model_config, tiny_train_config
from seqrec.config import read_yaml, write_yaml
from seqrec.data.splits import SplitData
from seqrec.runs import CONFIG, save_run

HOSTILE = "</td><script>alert('x')</script>"  # a config value that must reach the page as text


@pytest.fixture(scope="session")
def hostile() -> str:
    return HOSTILE


@pytest.fixture(scope="session")
def runs_root(tiny_data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/{sasrec, gru4rec, <script>alert(1), unfinished} and a folder that is not a run."""
    root = tmp_path_factory.mktemp("runs")
    sasrec = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(epochs=2), TINY_EVAL,
                          progress=False)
    gru = seqrec.train(tiny_model_config("gru4rec"), tiny_data, tiny_train_config(epochs=2, lr=1e-2), TINY_EVAL,
                       progress=False)
    save_run(sasrec, root / "sasrec")
    save_run(gru, root / "gru4rec")
    hostile = save_run(sasrec, root / "<script>alert(1)")
    config = read_yaml(hostile / CONFIG)
    config["data"]["note"] = HOSTILE
    write_yaml(config, hostile / CONFIG)
    unfinished = root / "unfinished"
    unfinished.mkdir()
    shutil.copy(root / "sasrec" / CONFIG, unfinished / CONFIG)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    return root
