"""`seqrec serve` as a real process on a free local port: it comes up, answers /recommend with the library's list,
and stops on SIGTERM (always killed at the end)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.data.config import DataConfig
from seqrec.data.synthetic import SyntheticConfig
from seqrec.experiment import ExperimentConfig

STARTUP_SECONDS = 60


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = ExperimentConfig(
        data=DataConfig(name="synthetic", synthetic=SyntheticConfig(**TINY_SYNTHETIC)),
        model=seqrec.SASRecConfig(max_len=10, hidden=16, blocks=1, dropout=0.1),
        train=seqrec.TrainConfig(epochs=1, batch_size=32, lr=3e-3, patience=0, device="cpu", seed=0),
        eval=seqrec.EvalConfig(ks=(5, 10)), name="tiny")
    run = seqrec.run_experiment(exp, tmp_path_factory.mktemp("uvicorn") / "runs", progress=False)
    assert run.path is not None
    return run.path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"seqrec serve exited with {server.returncode}: {server.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"seqrec serve did not answer {url}/health within {STARTUP_SECONDS} s")


@pytest.mark.parametrize("workers", [1, 2])
def test_seqrec_serve_answers_and_stops(run_dir: Path, workers: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "seqrec", "serve", str(run_dir), "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        wait_for_health(url, server)
        answer = httpx.post(f"{url}/recommend", json={"user": "1", "k": 5}, timeout=10)
        assert answer.status_code == 200
        expected = seqrec.load(run_dir).recommender.recommend(["1"], 5)
        assert answer.json()["recommendations"] == [{k: v for k, v in row.items() if k != "user"} for row in expected]
        assert httpx.post(f"{url}/recommend", json={"user": "nobody"}, timeout=10).status_code == 404
        assert httpx.get(f"{url}/metadata", timeout=10).json()["items"] == 40
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
        assert server.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal once shut down
        assert "Application shutdown complete" in output or "Stopping parent process" in output, output
        assert f"http://127.0.0.1:{port}" in output
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
