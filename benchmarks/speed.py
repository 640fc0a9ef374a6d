"""seqrec vs RecTools SASRec side by side in one run: seconds per epoch, time to a validation NDCG@10, full-ranking
evaluation time, peak memory, and a time-to-accuracy plot.

    SEQREC_DATA=../shared/data python benchmarks/speed.py --dataset ml-1m-sas --time-budget 600 --out docs/speed

Both train the same SASRec (L, d, blocks, heads, dropout, batch, lr, full-softmax CE) on the same training
sequences and are validated on the same users after every epoch (full ranking, seen items masked). RecTools
runs in its own virtualenv (it needs numpy < 2), created on first use under `--peer-venv`; if it cannot be
created (no network), the peer is skipped with a message and only seqrec is measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from peers.sasrec_settings import add_sasrec_arguments, sasrec_argv

import seqrec
from seqrec.evaluation.validation import RankingValidation
from seqrec.models import build_model
from seqrec.training.trainer import Trainer, seed_everything

PEER_SCRIPT = Path(__file__).parent / "peers" / "rectools_sasrec.py"
PEER_REQUIREMENTS = ["rectools[torch]==0.19.0", "numpy<2"]


def run_seqrec(data, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """Epoch-by-epoch training with validation after each epoch, until the epoch or time budget is spent."""
    seed_everything(args.seed)
    config = seqrec.SASRecConfig(max_len=args.max_len, hidden=args.hidden, blocks=args.blocks, heads=args.heads,
                                 dropout=args.dropout)
    model = build_model(config, data.num_items)
    train_config = seqrec.TrainConfig(batch_size=args.batch_size, lr=args.lr, seed=args.seed, loss=args.loss,
                                      grad_clip=0.0, device=args.device, compile=args.compile)
    trainer = Trainer(model, data, train_config, validate=RankingValidation(data.valid, train_config),
                      progress=False)
    epochs, trained = [], 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch()
        _sync(trainer.device)
        seconds = time.perf_counter() - start
        trained += seconds
        start = time.perf_counter()
        valid = trainer.validate(trainer.model)
        epochs.append({"epoch": epoch, "train_seconds": seconds, "eval_seconds": time.perf_counter() - start,
                       "valid_NDCG@10": valid["NDCG@10"], "valid_HR@10": valid["HR@10"]})
        print(json.dumps(epochs[-1]), flush=True)
        if args.time_budget and trained >= args.time_budget:
            break
    peak = (torch.cuda.max_memory_allocated() / 2**20 if trainer.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"epochs": epochs, "peak_mb": peak, "device": str(trainer.device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peer_python(venv: Path) -> Path | None:
    """The peer virtualenv's python, created with RecTools (and this torch version) on first use."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"creating the RecTools virtualenv in {venv} ...", flush=True)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", torch_pin, *PEER_REQUIREMENTS]]
    for step in steps:
        if subprocess.run(step).returncode != 0:
            print(f"skipping RecTools: could not run {' '.join(step)} (needs PyPI access)")
            return None
    return python


def export(data, folder: Path) -> tuple[Path, Path]:  # noqa: ANN001
    """Training interactions (user, item, order) and validation targets as CSV files for the peer."""
    train = data.train
    users = train.row_ids()
    order = np.arange(len(train.items)) - train.offsets[users]  # position within the user's sequence
    train_csv, valid_csv = folder / "train.csv", folder / "valid.csv"
    np.savetxt(train_csv, np.stack([users, train.items, order], 1), fmt="%d", delimiter=",",
               header="user,item,order", comments="")
    valid = data.valid
    np.savetxt(valid_csv, np.stack([valid.users, valid.targets], 1), fmt="%d", delimiter=",",
               header="user,item", comments="")
    return train_csv, valid_csv


def run_peer(python: Path, data, args: argparse.Namespace, log: Path) -> dict:  # noqa: ANN001
    """RecTools in its virtualenv; its warnings go to `log`."""
    with tempfile.TemporaryDirectory() as tmp, log.open("w") as stderr:
        train_csv, valid_csv = export(data, Path(tmp))
        args.threads = torch.get_num_threads()
        command = [str(python), str(PEER_SCRIPT), "--train", str(train_csv), "--valid", str(valid_csv),
                   *sasrec_argv(args)]
        epochs, peak = [], 0.0
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True) as proc:
            for line in proc.stdout:  # type: ignore[union-attr]
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                if "peak_rss_mb" in record:
                    peak = record["peak_rss_mb"]
                else:
                    epochs.append(record)
                    print(json.dumps(record), flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"RecTools run failed (exit {proc.returncode}); see {log}")
    return {"epochs": epochs, "peak_mb": peak}


def summary(result: dict, target: float) -> dict:
    epochs = result["epochs"]
    train = np.array([e["train_seconds"] for e in epochs])
    elapsed = np.cumsum(train)
    reached = [t for t, e in zip(elapsed, epochs, strict=True) if e["valid_NDCG@10"] >= target]
    steady = train[1:] if len(train) > 1 else train  # the first epoch includes one-off setup
    return {"epochs": len(epochs), "seconds_per_epoch": float(np.median(steady)),
            "first_epoch_seconds": float(train[0]), "eval_seconds": float(np.median([e["eval_seconds"]
                                                                                     for e in epochs])),
            "best_valid_NDCG@10": max(e["valid_NDCG@10"] for e in epochs),
            "seconds_to_target": float(reached[0]) if reached else None, "peak_mb": result["peak_mb"]}


def plot(results: dict[str, dict], target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, result in results.items():
        elapsed = np.cumsum([e["train_seconds"] for e in result["epochs"]])
        ax.plot(elapsed, [e["valid_NDCG@10"] for e in result["epochs"]], marker="o", ms=3, label=name)
    ax.axhline(target, color="grey", ls=":", lw=1, label=f"target {target:.4f}")
    ax.set(xlabel="training seconds (validation excluded)", ylabel="validation NDCG@10", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m-sas")
    add_sasrec_arguments(parser)  # --max-len --hidden --blocks --heads --dropout --batch-size --lr --epochs ...
    parser.add_argument("--loss", default="chunked", choices=("full", "chunked", "sampled"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--target", type=float, default=0.0,
                        help="validation NDCG@10 to time; default: the lower of the two best values")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peer-venv", type=Path, default=Path(".bench/rectools-venv"))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("docs/speed"), help="prefix of the .json and .png files")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = seqrec.datasets.load(args.dataset)
    except seqrec.SeqrecError as exc:
        raise SystemExit(f"skipping {args.dataset}: {exc}") from None

    results = {}
    print(f"seqrec SASRec on {args.dataset} ...", flush=True)
    results["seqrec"] = run_seqrec(data, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    python = None if args.no_peer else peer_python(args.peer_venv)
    if python is not None:
        print("RecTools SASRec ...", flush=True)
        results["rectools"] = run_peer(python, data, args, Path(f"{args.out}_rectools.log"))
    best = [max(e["valid_NDCG@10"] for e in r["epochs"]) for r in results.values()]
    target = args.target or min(best)
    table = {name: summary(result, target) for name, result in results.items()}
    setting = (f"{args.dataset}, SASRec L={args.max_len} d={args.hidden} {args.blocks} blocks {args.heads} head(s), "
               f"batch {args.batch_size}, {args.loss} softmax, {torch.get_num_threads()} threads, "
               f"{results['seqrec']['device']}")
    print(setting)
    print(f"{'library':10} {'s/epoch':>8} {'1st epoch':>9} {'eval s':>7} {'best NDCG':>9} {'s to target':>11} "
          f"{'peak MB':>8}")
    for name, row in table.items():
        to_target = f"{row['seconds_to_target']:.0f}" if row["seconds_to_target"] is not None else "-"
        print(f"{name:10} {row['seconds_per_epoch']:8.1f} {row['first_epoch_seconds']:9.1f} "
              f"{row['eval_seconds']:7.2f} {row['best_valid_NDCG@10']:9.4f} {to_target:>11} {row['peak_mb']:8.0f}")
    if "rectools" in table:
        ours, theirs = table["seqrec"], table["rectools"]
        print(f"ratio seqrec/RecTools: {ours['seconds_per_epoch'] / theirs['seconds_per_epoch']:.2f} s/epoch, "
              f"{ours['eval_seconds'] / theirs['eval_seconds']:.2f} eval")
    record = {"setting": setting, "target": target, "summary": table, "runs": results,
              "date": time.strftime("%Y-%m-%d")}
    Path(f"{args.out}.json").write_text(json.dumps(record, indent=1))
    plot(results, target, Path(f"{args.out}.png"), setting.split(",")[0] + ": time to accuracy")


if __name__ == "__main__":
    main()
