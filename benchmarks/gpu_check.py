"""Everything GPU-dependent in one run, in under 8 minutes on one GPU.

    SEQREC_DATA=../shared/data python benchmarks/gpu_check.py --out bench-results/gpu

1. `pytest -m gpu tests/gpu`: bf16 autocast vs fp32, the chunked softmax under autocast, faiss-gpu vs faiss-cpu,
   data-parallel training over NCCL.
2. SASRec on ml-1m-sas with the shipped config (configs/sasrec-ml-1m-sas.yaml): training seconds (GPU synchronised,
   evaluation excluded) until test NDCG@10 reaches `--target`, with the valid and test curves, seconds per epoch
   and peak GPU memory. Test NDCG@10 is computed after every epoch only to time the target; the run's selected
   epoch is still the best validation epoch, and both are reported.
3. Full-ranking evaluation of every user (seen items masked): median seconds of 5 after a warm-up.
4. Seconds per epoch with torch.compile off/on, bf16 autocast on/off, the chunked vs full softmax and gBCE.

Writes gpu_check.json, gpu_check.md and the curve gpu_check_curve.png to `--out`. Without a GPU it says so and
exits 0 (the gpu tests skip, as in CI).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

import seqrec
from seqrec.config import apply_overrides, read_yaml
from seqrec.evaluation.evaluate import evaluate
from seqrec.experiment import ExperimentConfig
from seqrec.models import build_model
from seqrec.training.trainer import Trainer, seed_everything

ROOT = Path(__file__).resolve().parent.parent


def run_gpu_tests(timeout: float) -> dict:
    """`pytest -m gpu tests/gpu`; its summary line and the time it took."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-o", "addopts=", "-q", "-rs",
               "-p", "no:cacheprovider"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if re.search(r"passed|failed|skipped|error", line)), "")
    print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", flush=True)
    return {"returncode": proc.returncode, "summary": summary.strip("= "), "seconds": time.perf_counter() - start,
            "skips": [line for line in lines if line.startswith("SKIPPED")]}


DEVICE = "cuda"  # --device cpu runs the same steps on the CPU (a dry run of this script)


def synchronise() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def make_trainer(config: ExperimentConfig, data, **train_changes) -> Trainer:  # noqa: ANN001
    seed_everything(config.train.seed)
    train = dataclasses.replace(config.train, device=DEVICE, **train_changes)
    model = build_model(config.model, data.num_items, data.catalog)
    return Trainer(model, data, train, progress=False)


def ndcg(model, split, config: ExperimentConfig) -> float:  # noqa: ANN001
    model.eval()
    return evaluate(model, split, ks=(10,), metrics="accuracy", mask_seen=config.eval.mask_seen,
                    chunk_size=config.eval.chunk_size)["NDCG@10"]


def time_to_accuracy(config: ExperimentConfig, data, target: float, budget: float, max_epochs: int) -> dict:  # noqa: ANN001
    """Train epoch by epoch (timed, synchronised) and evaluate valid and test after each (not timed)."""
    trainer = make_trainer(config, data)
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    epochs, trained, reached = [], 0.0, None
    for epoch in range(1, max_epochs + 1):
        synchronise()
        start = time.perf_counter()
        loss = trainer.train_epoch()["train_loss"]
        synchronise()
        trained += time.perf_counter() - start
        valid, test = ndcg(trainer.model, data.valid, config), ndcg(trainer.model, data.test, config)
        epochs.append({"epoch": epoch, "train_seconds": trained, "train_loss": loss, "valid_NDCG@10": valid,
                       "test_NDCG@10": test})
        print(json.dumps(epochs[-1]), flush=True)
        if reached is None and test >= target:
            reached = epochs[-1]
            break
        if trained >= budget:
            break
    seconds = np.diff([0.0] + [e["train_seconds"] for e in epochs])
    best = max(epochs, key=lambda e: e["valid_NDCG@10"])
    return {"target": target, "reached": reached is not None,
            "seconds_to_target": reached["train_seconds"] if reached else None,
            "epochs_to_target": reached["epoch"] if reached else None, "epochs": len(epochs),
            "seconds_per_epoch": float(np.median(seconds[1:] if len(seconds) > 1 else seconds)),
            "first_epoch_seconds": float(seconds[0]), "best_valid_epoch": best["epoch"],
            "test_at_best_valid": best["test_NDCG@10"], "max_test": max(e["test_NDCG@10"] for e in epochs),
            "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else 0.0,
            "curve": epochs}


def evaluation_time(config: ExperimentConfig, data, repeats: int = 5) -> dict:  # noqa: ANN001
    """Full ranking of every test user (seen items masked), after one warm-up."""
    model = build_model(config.model, data.num_items, data.catalog).to(DEVICE).eval()
    ndcg(model, data.test, config)
    times = []
    for _ in range(repeats):
        synchronise()
        start = time.perf_counter()
        ndcg(model, data.test, config)
        synchronise()
        times.append(time.perf_counter() - start)
    return {"users": len(data.test), "median_seconds": float(np.median(times)), "all_seconds": times}


VARIANTS = {"as configured": {},
            "torch.compile": {"compile": True},
            "fp32 (bf16 off)": {"bf16": False},
            "full softmax": {"loss": "full"},
            "gBCE, 256 negatives": {"loss": "gbce"}}


def epoch_times(config: ExperimentConfig, data, epochs: int) -> dict:  # noqa: ANN001
    """Seconds per epoch of each variant: the first epoch (with compilation) and the median of the rest."""
    out = {}
    for name, changes in VARIANTS.items():
        trainer = make_trainer(config, data, **changes)
        times = []
        for _ in range(epochs):
            synchronise()
            start = time.perf_counter()
            trainer.train_epoch()
            synchronise()
            times.append(time.perf_counter() - start)
        out[name] = {"first_epoch_seconds": times[0], "seconds_per_epoch": float(np.median(times[1:]))}
        print(name, json.dumps(out[name]), flush=True)
    return out


def describe_config(result: dict) -> str:
    """The config file's name and any `--set` overrides, so a table never calls a changed config the shipped one."""
    name = Path(result["config"]).name
    return f"{name} with {', '.join(result['overrides'])}" if result.get("overrides") else name


def markdown(result: dict) -> str:
    acc, ev = result["accuracy"], result["evaluation"]
    reached = (f"{acc['seconds_to_target']:.1f} s ({acc['epochs_to_target']} epochs)" if acc["reached"]
               else f"not reached in {acc['epochs']} epochs (max test NDCG@10 {acc['max_test']:.4f})")
    lines = [f"GPU check on {result['gpu']} ({result['date']}, torch {result['torch']}):", "",
             f"- gpu tests: {result['tests']['summary']}",
             f"- SASRec {result['dataset']}, {describe_config(result)}: training time to test NDCG@10 {acc['target']}: "
             f"{reached}; {acc['seconds_per_epoch']:.3f} s/epoch (first {acc['first_epoch_seconds']:.2f} s); "
             f"best valid epoch {acc['best_valid_epoch']} with test NDCG@10 {acc['test_at_best_valid']:.4f}; "
             f"peak GPU memory {acc['peak_memory_mib']:.0f} MiB",
             f"- full-ranking evaluation of {ev['users']:,} users: {1000 * ev['median_seconds']:.1f} ms (median of 5)",
             "", "| variant | s/epoch | first epoch (s) |", "|---|---|---|"]
    lines += [f"| {name} | {v['seconds_per_epoch']:.3f} | {v['first_epoch_seconds']:.2f} |"
              for name, v in result["variants"].items()]
    return "\n".join(lines) + "\n"


def plot(curve: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seconds = [e["train_seconds"] for e in curve]
    ax.plot(seconds, [e["valid_NDCG@10"] for e in curve], label="valid")
    ax.plot(seconds, [e["test_NDCG@10"] for e in curve], label="test")
    ax.axhline(target, color="grey", linestyle=":", label=f"target {target}")
    ax.set(xlabel="training seconds (GPU)", ylabel="NDCG@10", title="SASRec on ml-1m-sas, one GPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "sasrec-ml-1m-sas.yaml"))
    parser.add_argument("--target", type=float, default=0.186, help="test NDCG@10 to time")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds for the accuracy run")
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--variant-epochs", type=int, default=6)
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--out", default="bench-results/gpu")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run of the script")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. train.batch_size=256 (repeatable)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to check (the gpu tests skip)")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = ExperimentConfig.from_dict(apply_overrides(read_yaml(Path(args.config)), args.set))
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)"
    result = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
              "date": date.today().isoformat(), "dataset": config.data.name, "config": args.config,
              "overrides": args.set}
    result["tests"] = ({"summary": "skipped (--skip-tests)"} if args.skip_tests
                       else run_gpu_tests(timeout=240))
    save = lambda: (out / "gpu_check.json").write_text(json.dumps(result, indent=1))  # noqa: E731
    save()
    data = seqrec.datasets.load(config.data)
    result["evaluation"] = evaluation_time(config, data)
    print("evaluation", json.dumps(result["evaluation"]), flush=True)
    save()
    result["variants"] = epoch_times(config, data, args.variant_epochs)
    save()
    result["accuracy"] = time_to_accuracy(config, data, args.target, args.budget, args.max_epochs)
    save()
    (out / "gpu_check.md").write_text(markdown(result))
    plot(result["accuracy"]["curve"], args.target, out / "gpu_check_curve.png")
    print(markdown(result))
    return 0 if result["tests"].get("returncode", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
