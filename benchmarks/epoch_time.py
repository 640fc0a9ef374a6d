"""Seconds per training epoch with and without length buckets, measured side by side in one process.

    SEQREC_DATA=../shared/data python benchmarks/epoch_time.py --dataset ml-1m-sas --max-len 200
"""

from __future__ import annotations

import argparse
import time

import torch

import seqrec
from seqrec.models import build_model
from seqrec.training.trainer import Trainer


def epoch_seconds(data, model_config, buckets: bool, repeats: int) -> float:  # noqa: ANN001
    """Best of `repeats` full training epochs (same seed, same model init)."""
    best = float("inf")
    for _ in range(repeats):
        torch.manual_seed(0)
        model = build_model(model_config, data.num_items)
        trainer = Trainer(model, data, seqrec.TrainConfig(length_buckets=buckets, seed=0), progress=False)
        start = time.perf_counter()
        trainer.train_epoch()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m-sas")
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = seqrec.datasets.load(args.dataset)
    config = seqrec.SASRecConfig(max_len=args.max_len, hidden=64, blocks=2)
    plain = epoch_seconds(data, config, buckets=False, repeats=args.repeats)
    bucketed = epoch_seconds(data, config, buckets=True, repeats=args.repeats)
    print(f"{args.dataset}, SASRec L={args.max_len} d=64 2 blocks, batch 128, {torch.get_num_threads()} threads")
    print(f"random batches:  {plain:.1f} s/epoch")
    print(f"length buckets:  {bucketed:.1f} s/epoch ({plain / bucketed:.2f}x faster)")


if __name__ == "__main__":
    main()
