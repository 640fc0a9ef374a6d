"""Seconds per training epoch and peak memory of training-setting variants, side by side in one process.

    SEQREC_DATA=../shared/data python benchmarks/epoch_time.py --dataset ml-1m-sas --max-len 200 \\
        --variant full:loss=full --variant chunked:loss=chunked --variant buckets:length_buckets=true

A variant is NAME:key=value,key=value over `train.*` settings. `--steps N` times the first N batches only
(for catalogues where a whole epoch takes too long). Peak memory is the largest resident set (CPU) or
allocated memory (GPU) during that variant, and how much of it training added on top of the loaded data. Run the
variant that needs the most memory first: freed memory may stay with the process.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import threading
import time

import torch

import seqrec
from seqrec.config import apply_overrides, from_dict
from seqrec.models import build_model
from seqrec.training.trainer import Trainer


class PeakMemory:
    """Largest resident set size (MiB) while the block runs, sampled from /proc every 10 ms (CPU), and how far
    it rose above the size at the start (`added`: what training itself needs; data is already loaded)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self.start, self._stop = device, 0.0, 0.0, threading.Event()

    @property
    def added(self) -> float:
        return self.peak - self.start

    def _rss(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated() / 2**20
        else:
            self.peak = self.start = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()


def measure(data, model_config, settings: seqrec.TrainConfig, steps: int,  # noqa: ANN001
            repeats: int) -> tuple[float, float, float, int]:
    """Best of `repeats` timings of one epoch (or its first `steps` batches).

    -> (seconds, peak MiB, MiB added by training, batches)
    """
    best, peak, added, batches = float("inf"), 0.0, 0.0, 0
    for _ in range(repeats):
        torch.manual_seed(0)
        model = build_model(model_config, data.num_items)
        trainer = Trainer(model, data, settings, progress=False)
        if steps:
            trainer.batches = lambda t=trainer, f=trainer.batches: itertools.islice(f(), steps)  # type: ignore
        with PeakMemory(trainer.device) as memory:
            start = time.perf_counter()
            trainer.train_epoch()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        best, peak, added = min(best, seconds), max(peak, memory.peak), max(added, memory.added)
        batches = steps or -(-len(trainer.lengths) // trainer.config.batch_size)
    return best, peak, added, batches


def parse_variant(text: str) -> tuple[str, str, seqrec.TrainConfig]:
    """NAME:key=value,... -> (name, the settings as given, the validated TrainConfig with seed 0)."""
    name, _, body = text.partition(":")
    raw = apply_overrides({"train": {"seed": 0}}, [f"train.{kv}" for kv in body.split(",") if kv])
    return name, body, from_dict(seqrec.TrainConfig, raw["train"], "train.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m-sas")
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--variant", action="append", default=[], help="NAME:key=value,... (repeatable)")
    parser.add_argument("--steps", type=int, default=0, help="time only the first N batches")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = seqrec.datasets.load(args.dataset)
    config = seqrec.SASRecConfig(max_len=args.max_len, hidden=args.hidden, blocks=2)
    variants = [parse_variant(v) for v in args.variant or ["full:loss=full", "buckets:length_buckets=true"]]
    print(f"{args.dataset} ({data.num_items:,} items), SASRec L={args.max_len} d={args.hidden} 2 blocks, "
          f"{torch.get_num_threads()} threads")
    baseline = None
    for name, body, settings in variants:
        seconds, peak, added, batches = measure(data, config, settings, args.steps, args.repeats)
        baseline = baseline or seconds
        unit = f"{seconds:.1f} s/epoch" if not args.steps else f"{seconds / batches:.3f} s/batch"
        print(f"{name:16} {unit:>16}  peak {peak:6.0f} MiB (+{added:5.0f} for training)  "
              f"{baseline / seconds:.2f}x  {body}", flush=True)


if __name__ == "__main__":
    main()
