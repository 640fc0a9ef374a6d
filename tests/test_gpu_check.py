"""The GPU checks stay out of the way where there is no GPU: every test in tests/gpu carries the `gpu` marker and
skips, and benchmarks/gpu_check.py says there is nothing to check and exits 0."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path, name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_every_gpu_test_is_marked_and_skips_without_cuda() -> None:
    tests = _module(ROOT / "tests" / "gpu" / "test_gpu.py", "gpu_tests")
    marks = {mark.name: mark for mark in tests.pytestmark}
    assert "gpu" in marks
    assert marks["skipif"].args == (not torch.cuda.is_available(),)
    assert len([name for name in dir(tests) if name.startswith("test_")]) == 6


def test_gpu_check_exits_cleanly_without_a_gpu(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                tmp_path: Path) -> None:
    check = _module(ROOT / "benchmarks" / "gpu_check.py", "gpu_check")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--out", str(tmp_path / "gpu")])
    assert check.main() == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert not (tmp_path / "gpu").exists()
