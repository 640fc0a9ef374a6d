"""Training seconds and epochs to reach test NDCG@10 targets, with the valid and test curves, on any device.

    SEQREC_DATA=../shared/data python benchmarks/accuracy_curve.py configs/bert4rec-ml-1m-sas.yaml \
        --set train.threads=1 --targets 0.10 0.13 0.15 --budget 6000 --out bench-results/bert4rec-curve

Trains epoch by epoch; after each epoch (not timed) it evaluates valid and test NDCG@10 on every user (full
ranking, seen items masked) and appends the record to `curve.jsonl`, so a long run can be read while it goes.
The epoch the run would select is still the best validation epoch; its test NDCG@10 is reported beside the
first epoch at which test NDCG@10 reached each target. Writes curve.jsonl, summary.json and curve.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from datetime import date
from pathlib import Path

import torch

import seqrec
from seqrec.config import apply_overrides, read_yaml
from seqrec.evaluation.evaluate import evaluate
from seqrec.experiment import ExperimentConfig
from seqrec.models import build_model
from seqrec.training.trainer import Trainer, seed_everything


def ndcg(model: torch.nn.Module, split, config: ExperimentConfig) -> float:  # noqa: ANN001
    model.eval()
    return evaluate(model, split, ks=(10,), metrics="accuracy", mask_seen=config.eval.mask_seen,
                    chunk_size=config.eval.chunk_size)["NDCG@10"]


def summarise(curve: list[dict], targets: list[float]) -> dict:
    """First epoch (and training seconds) at which test NDCG@10 reached each target; the best valid epoch."""
    best = max(curve, key=lambda e: e["valid_NDCG@10"])
    reached = {}
    for target in targets:
        first = next((e for e in curve if e["test_NDCG@10"] >= target), None)
        reached[f"{target:g}"] = None if first is None else {"epoch": first["epoch"],
                                                             "train_seconds": first["train_seconds"]}
    return {"epochs": len(curve), "train_seconds": curve[-1]["train_seconds"], "reached": reached,
            "best_valid_epoch": best["epoch"], "valid_at_best": best["valid_NDCG@10"],
            "test_at_best_valid": best["test_NDCG@10"], "max_test": max(e["test_NDCG@10"] for e in curve)}


def plot(curve: list[dict], targets: list[float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    seconds = [e["train_seconds"] for e in curve]
    ax.plot(seconds, [e["valid_NDCG@10"] for e in curve], label="valid")
    ax.plot(seconds, [e["test_NDCG@10"] for e in curve], label="test")
    for target in targets:
        ax.axhline(target, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("NDCG@10 (full ranking, seen masked)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train_curve(config: ExperimentConfig, targets: list[float], budget: float, log: Path) -> list[dict]:
    """Train epoch by epoch until `budget` training seconds or every target; append each epoch's record to `log`."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    data = seqrec.datasets.load(config.data)
    seed_everything(config.train.seed)
    trainer = Trainer(build_model(config.model, data.num_items, data.catalog), data, config.train, progress=False)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    curve: list[dict] = []
    trained = 0.0
    for epoch in range(1, config.train.epochs + 1):
        start = time.perf_counter()
        loss = trainer.train_epoch()["train_loss"]
        trained += time.perf_counter() - start
        record = {"epoch": epoch, "train_seconds": round(trained, 2), "train_loss": loss,
                  "valid_NDCG@10": ndcg(trainer.model, data.valid, config),
                  "test_NDCG@10": ndcg(trainer.model, data.test, config)}
        curve.append(record)
        with log.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        if trained >= budget or all(e is not None for e in summarise(curve, targets)["reached"].values()):
            break
    return curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.10, 0.13, 0.15])
    parser.add_argument("--budget", type=float, default=3600.0, help="training seconds before stopping")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summarise", action="store_true",
                        help="only write summary.json and curve.png from the curve.jsonl already in --out "
                             "(e.g. of a run stopped early)")
    args = parser.parse_args()

    config = ExperimentConfig.from_dict(apply_overrides(read_yaml(args.config), args.set))
    log = args.out / "curve.jsonl"
    if args.summarise:
        curve = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    else:
        curve = train_curve(config, args.targets, args.budget, log)
    summary = summarise(curve, args.targets) | {
        "config": args.config, "overrides": args.set, "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{config.train.threads or torch.get_num_threads()} torch threads",
        "model": dataclasses.asdict(config.model) | {"name": config.model.name}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    title = f"{config.model.name} {config.data.name} {' '.join(args.set)}"
    plot(curve, args.targets, title[:110], args.out / "curve.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "model"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
