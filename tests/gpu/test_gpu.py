"""Checks that need a CUDA GPU: bf16 autocast against fp32, the chunked softmax and the negative-sampling losses
under autocast, faiss on the GPU against faiss on the CPU, and data-parallel training over NCCL. Every test is
skipped where no GPU is present (as in CI); `python benchmarks/gpu_check.py` runs them with the GPU timings."""

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

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.models import build_model
from seqrec.models.losses import chunked_softmax_ce, full_softmax_ce, negative_sampling_loss

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = torch.device("cuda")


def _model(num_items: int = 300) -> torch.nn.Module:
    torch.manual_seed(0)
    config = seqrec.SASRecConfig(max_len=20, hidden=64, blocks=2, heads=2, dropout=0.0)
    return build_model(config, num_items).to(CUDA).eval()


def _batch(num_items: int = 300, rows: int = 32, length: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    items = torch.randint(1, num_items + 1, (rows, length), generator=g)
    items[: rows // 2, : length // 3] = 0  # some left padding
    return items.to(CUDA)


def test_bf16_autocast_scores_match_fp32() -> None:
    model, items = _model(), _batch()
    with torch.no_grad():
        exact = model.score(items).float()[:, 1:]  # column 0 is padding (-inf)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fast = model.score(items).float()[:, 1:]
    assert torch.isfinite(exact).all() and torch.isfinite(fast).all()
    scale = exact.abs().max()
    assert (fast - exact).abs().max() <= 0.05 * scale  # bf16 keeps ~3 significant digits
    top_exact, top_fast = exact.topk(10).indices, fast.topk(10).indices
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(top_exact, top_fast, strict=True)])
    assert overlap >= 0.8


def test_bf16_autocast_training_step_matches_fp32() -> None:
    """One loss and gradient of the next-item objective, fp32 vs bf16 autocast (logits are widened to fp32)."""
    items = _batch()
    grads, losses = [], []
    for autocast in (False, True):
        model = _model().train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            hidden = model.encode(items[:, :-1])  # [B, L-1, D]
            keep = items[:, 1:] > 0
            loss = full_softmax_ce(hidden[keep], items[:, 1:][keep], model.item_embeddings()) / keep.sum()
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_chunked_softmax_under_autocast_matches_full_fp32() -> None:
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(700, 64, generator=g).to(CUDA).requires_grad_()
    table = torch.randn(5001, 64, generator=g).mul(0.1).to(CUDA).requires_grad_()
    targets = torch.randint(1, 5001, (700,), generator=g).to(CUDA)
    exact = full_softmax_ce(hidden, targets, table)
    exact_grads = torch.autograd.grad(exact, (hidden, table))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        chunked = chunked_softmax_ce(128)(hidden, targets, table)
    chunked_grads = torch.autograd.grad(chunked, (hidden, table))
    assert chunked.dtype == torch.float32
    assert chunked.item() == pytest.approx(exact.item(), rel=1e-2)
    for a, b in zip(exact_grads, chunked_grads, strict=True):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.float().flatten(), dim=0) > 0.99


@pytest.mark.parametrize("kind", ["bce", "bpr", "gbce"])
def test_negative_sampling_losses_under_autocast_match_fp32(kind: str) -> None:
    """The same negatives (same seed) in fp32 and under bf16 autocast: loss and gradients agree."""
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(700, 64, generator=g).to(CUDA).requires_grad_()
    table = torch.randn(5001, 64, generator=g).mul(0.1).to(CUDA).requires_grad_()
    targets = torch.randint(1, 5001, (700,), generator=g).to(CUDA)
    negatives = 1 if kind == "bpr" else 64
    results = []
    for autocast in (False, True):
        loss_fn = negative_sampling_loss(kind, 5000, negatives, torch.Generator().manual_seed(4))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(hidden, targets, table)
        results.append((loss.float(), torch.autograd.grad(loss, (hidden, table))))
    (exact, exact_grads), (fast, fast_grads) = results
    assert torch.isfinite(fast) and fast.item() == pytest.approx(exact.item(), rel=2e-2)
    for a, b in zip(exact_grads, fast_grads, strict=True):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.float().flatten(), dim=0) > 0.99


def test_faiss_gpu_search_matches_faiss_cpu() -> None:
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        pytest.skip("faiss has no GPU support here (install faiss-gpu)")
    rng = np.random.default_rng(0)
    base, queries = rng.normal(size=(20_000, 64)).astype("float32"), rng.normal(size=(100, 64)).astype("float32")
    cpu = faiss.IndexFlatIP(64)
    cpu.add(base)
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
    d_cpu, i_cpu = cpu.search(queries, 10)
    d_gpu, i_gpu = gpu.search(queries, 10)
    np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-4, atol=1e-4)
    assert (i_gpu == i_cpu).mean() >= 0.99  # exact search; only near-ties may swap


EXPERIMENT = {
    "name": "nccl",
    "data": {"name": "synthetic", "synthetic": {**TINY_SYNTHETIC, "num_users": 90}},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1, "dropout": 0.0},
    "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "patience": 0, "device": "cuda", "bf16": False},
    "eval": {"ks": [5, 10]},
}


def _train(tmp_path: Path, launcher: list[str], out: str) -> dict:
    config = tmp_path / "nccl.yaml"
    config.write_text(yaml.safe_dump(EXPERIMENT))
    proc = subprocess.run([*launcher, "train", str(config), "--out", out], cwd=tmp_path, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [p for p in (tmp_path / out).iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1
    return json.loads((runs[0] / "metrics.json").read_text())


def test_nccl_process_group_trains_like_one_process(tmp_path: Path) -> None:
    """torchrun with one process per GPU (NCCL) equals a plain process; with one GPU the group has one rank."""
    gpus = torch.cuda.device_count()
    single = _train(tmp_path, [sys.executable, "-m", "seqrec"], "single")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={min(gpus, 2)}",
                "-m", "seqrec"]
    ddp = _train(tmp_path, torchrun, "ddp")
    assert ddp["protocol"]["processes"] == min(gpus, 2)
    assert ddp["best_epoch"] == single["best_epoch"]
    for key, value in single["test"].items():  # CUDA kernels are not bit-deterministic: allow a user or two
        assert ddp["test"][key] == pytest.approx(value, abs=0.025), key
