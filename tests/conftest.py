"""Shared fixtures: one CPU thread, a tiny synthetic dataset, every registered model."""

from __future__ import annotations

import pytest
import torch

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.data.splits import SplitData
from seqrec.models.base import MODEL_REGISTRY

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_data() -> SplitData:
    """60 users, 40 items, leave-one-out; shared by many tests, so never modify it."""
    return seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)


@pytest.fixture(params=sorted(MODEL_REGISTRY))
def model_name(request: pytest.FixtureRequest) -> str:
    """Every registered model, so a newly registered model is covered without editing the tests."""
    return request.param
