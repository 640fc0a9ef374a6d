"""Scoring latency of an ONNX export next to the PyTorch model it came from, and their agreement, for one run.

    SEQREC_DATA=../shared/data python benchmarks/export_latency.py runs/sasrec-ml-1m-sas
    python benchmarks/export_latency.py RUN --batch 1 --batch 64 --repeats 200 --threads 1

The run is exported (`seqrec.serving.export`) to a temporary folder, or to `--out`. Both paths then score the
same left-padded histories of random users of the run (`max_len` columns, as `Recommender` feeds the model):

- `pytorch`: `model.score(items)` (user vector @ item table, padding -inf) and `topk(10)`, in inference mode;
- `onnxruntime`: the exported graph's user vectors, then numpy: `@ item_vectors.T`, padding -inf,
  `argpartition` + sort of the 10 best.

Calls alternate between the two paths, so load from other processes on the machine hits both alike. Each path
gets `--threads` threads (torch intra-op threads, onnxruntime intra-op threads, and numpy's BLAS through
threadpoolctl when it is installed: BLAS threads left spinning after numpy's product would otherwise slow the
next PyTorch call down by half on a 2-core machine). Reported per batch size: p50 /
p95 / mean milliseconds of a whole call (scores + top-10) and of the user vector alone. Agreement: the largest
|score difference| and the share of users with the same top-10 list, over `--check-users` users, once with
`max_len` columns and once with each chunk trimmed to its longest history (the graph's dynamic length).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from seqrec.api import load  # noqa: E402
from seqrec.recommender import Recommender  # noqa: E402
from seqrec.serving.export import ENCODER, ITEM_VECTORS, export_recommender  # noqa: E402

K = 10


def torch_path(recommender: Recommender) -> tuple[Callable, Callable]:
    """(scores + top-k, user vectors) of the PyTorch model.  items [B, L] int64 numpy"""
    model = recommender.model.eval()

    def top(items: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.score(torch.from_numpy(items)).topk(K, dim=1).indices.numpy()

    def vectors(items: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.user_vector(torch.from_numpy(items)).numpy()

    return top, vectors


def onnx_path(folder: Path, threads: int) -> tuple[Callable, Callable, Callable]:
    """(scores + top-k, user vectors, scores) of the export, with onnxruntime and numpy only."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(folder / ENCODER), options, providers=["CPUExecutionProvider"])
    table_t = np.ascontiguousarray(np.load(folder / ITEM_VECTORS).T)  # [D, N+1]

    def vectors(items: np.ndarray) -> np.ndarray:
        return session.run(None, {"items": items})[0]

    def scores(items: np.ndarray) -> np.ndarray:
        out = vectors(items) @ table_t
        out[:, 0] = -np.inf
        return out

    def top(items: np.ndarray) -> np.ndarray:
        s = scores(items)
        best = np.argpartition(-s, K, axis=1)[:, :K]  # [B, K] unordered
        order = np.argsort(-np.take_along_axis(s, best, axis=1), axis=1, kind="stable")
        return np.take_along_axis(best, order, axis=1)

    return top, vectors, scores


def blas_threads(threads: int) -> contextlib.AbstractContextManager:
    """numpy's BLAS (and OpenMP) limited to `threads` threads, when threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: numpy's BLAS uses its own thread count", file=sys.stderr)
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "mean": float(ms.mean())}


def latency(paths: dict[str, Callable], items: np.ndarray, repeats: int, warmup: int = 10) -> dict[str, dict]:
    """Timings of each path on `items`, calls interleaved.  -> {path: {p50, p95, mean}} in ms"""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for step in range(warmup + repeats):
        for name, call in paths.items():
            start = time.perf_counter()
            call(items)
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: percentiles(t) for name, t in times.items()}


def agreement(recommender: Recommender, scores: Callable, users: np.ndarray, chunk: int = 256) -> dict[str, dict]:
    """Largest |score difference| and share of identical top-10 lists, at max_len and at trimmed widths."""
    model = recommender.model.eval()
    out = {}
    for label in ("max_len", "trimmed"):
        worst, same = 0.0, 0
        for lo in range(0, len(users), chunk):
            hist = recommender.histories.take(users[lo:lo + chunk])
            full = hist.padded(model.max_len)
            width = model.max_len if label == "max_len" else int(min(hist.lengths.max(), model.max_len))
            with torch.inference_mode():
                expected = model.score(torch.from_numpy(full)).numpy()
            got = scores(hist.padded(width))
            worst = max(worst, float(np.abs(got[:, 1:] - expected[:, 1:]).max()))
            top_e = np.argsort(-expected, axis=1, kind="stable")[:, :K]
            top_g = np.argsort(-got, axis=1, kind="stable")[:, :K]
            same += int((top_e == top_g).all(axis=1).sum())
        out[label] = {"max_abs_score_difference": worst, "same_top10_share": same / len(users)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory")
    parser.add_argument("--out", type=Path, help="export folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable; default 1 and 64)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per path and batch size")
    parser.add_argument("--threads", type=int, default=1, help="threads of each path")
    parser.add_argument("--check-users", type=int, default=1024, help="users for the agreement numbers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recommender = load(args.run).recommender
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp, blas_threads(args.threads):
        start = time.perf_counter()
        folder = export_recommender(recommender, args.out or Path(tmp) / "export", run=str(args.run))
        export_seconds = time.perf_counter() - start
        torch_top, torch_vectors = torch_path(recommender)
        onnx_top, onnx_vectors, onnx_scores = onnx_path(folder, args.threads)
        results = {"run": str(args.run), "model": recommender.model.config.name, "items": recommender.num_items,
                   "max_len": recommender.max_len, "threads": args.threads, "repeats": args.repeats,
                   "export_seconds": round(export_seconds, 2), "torch": torch.__version__,
                   "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "latency": {}}
        for batch in args.batch or [1, 64]:
            users = rng.choice(len(recommender.histories), size=batch, replace=False)
            items = recommender.histories.take(users).padded(recommender.max_len)
            results["latency"][batch] = {
                "scores+top10": latency({"pytorch": torch_top, "onnxruntime": onnx_top}, items, args.repeats),
                "user vector": latency({"pytorch": torch_vectors, "onnxruntime": onnx_vectors}, items, args.repeats)}
        check = rng.choice(len(recommender.histories), size=min(args.check_users, len(recommender.histories)),
                           replace=False)
        results["agreement"] = agreement(recommender, onnx_scores, check)
        results["agreement"]["users"] = len(check)
    print(json.dumps(results, indent=2) if args.json else report(results))


def report(results: dict) -> str:
    """Markdown tables of the latencies and the agreement."""
    lines = [f"{results['model']} ({results['items']:,} items, max_len {results['max_len']}), "
             f"{results['threads']} thread(s) per path, {results['repeats']} calls each; export took "
             f"{results['export_seconds']} s", "",
             "| batch | what | path | p50 ms | p95 ms | mean ms |", "|---:|---|---|---:|---:|---:|"]
    for batch, parts in results["latency"].items():
        for what, paths in parts.items():
            for path, t in paths.items():
                lines.append(f"| {batch} | {what} | {path} | {t['p50']:.2f} | {t['p95']:.2f} | {t['mean']:.2f} |")
    users = results["agreement"]["users"]
    lines += ["", f"agreement over {users} users:", "", "| input width | max abs score diff | same top-10 |",
              "|---|---:|---:|"]
    for label in ("max_len", "trimmed"):
        a = results["agreement"][label]
        lines.append(f"| {label} | {a['max_abs_score_difference']:.2e} | {a['same_top10_share']:.1%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
