"""Batch export speed: the top-k lists of every user of a run written to a file, as `seqrec recommend RUN --all`.

    SEQREC_DATA=../shared/data python benchmarks/batch_export.py runs/sasrec-ml-1m-sas --k 100
    python benchmarks/batch_export.py RUN --format csv --format jsonl --repeat 3

Prints, per output format: seconds, users/s, rows/s, the file size, and the process's peak resident memory
(which includes the loaded run). `scoring only` makes the same rows block by block without a file: the difference
to a format's time is what writing costs.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from seqrec.api import load  # noqa: E402
from seqrec.serving.batch import export_recommendations, recommendation_blocks  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def scoring_seconds(recommender, k: int, chunk_size: int) -> float:  # noqa: ANN001
    """Every user's rows, block by block as the export makes them, without writing anything."""
    users = np.arange(len(recommender.user_map))
    start = time.perf_counter()
    for _ in recommendation_blocks(recommender, users, k, recommender.mask_seen, recommender.candidate_mask(),
                                   chunk_size):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--format", action="append", choices=["parquet", "csv", "jsonl"],
                        help="output format (repeatable; default parquet)")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1, help="measurements per format (the best is reported)")
    args = parser.parse_args()

    start = time.perf_counter()
    recommender = load(args.run).recommender.eval()
    loaded = time.perf_counter() - start
    users = len(recommender.user_map)
    print(f"{args.run}: {users:,} users, {recommender.num_items:,} items, max_len {recommender.max_len}, "
          f"k={args.k}, chunk {args.chunk_size}; loaded in {loaded:.2f} s, peak RSS {peak_rss_mib():.0f} MiB")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    best = min(scoring_seconds(recommender, args.k, args.chunk_size) for _ in range(args.repeat))
    print(f"  scoring only  {best:6.2f} s  {users / best:8,.0f} users/s")
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.format or ["parquet"]:
            times = []
            for n in range(args.repeat):
                path = Path(folder) / f"recs-{n}.{kind}"
                start = time.perf_counter()
                export_recommendations(recommender, path, k=args.k, format=kind, chunk_size=args.chunk_size)
                times.append(time.perf_counter() - start)
            seconds, rows = min(times), users * args.k
            print(f"  {kind:<12}  {seconds:6.2f} s  {users / seconds:8,.0f} users/s  {rows / seconds:10,.0f} rows/s"
                  f"  {path.stat().st_size / 2**20:6.1f} MiB  peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
