"""Test NDCG@10 of saved runs overall and on the users whose test item is rare in training.

    SEQREC_DATA=../shared/data python benchmarks/rare_targets.py RUN [RUN ...] --rare 5 20

A user falls in slice "<= R" when the training sequences hold their test item at most R times (one slice per R
of `--rare`), and in slice "0" when no training sequence holds it. Full ranking, seen items masked, the protocol
each run recorded. Prints a markdown table and writes the numbers to `--out` (JSON) when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import seqrec
from seqrec.evaluation.evaluate import rank_split
from seqrec.evaluation.metrics import ndcg
from seqrec.model_runs import run_data


def slices(path: str, rare: list[int], data_dir: str | None) -> dict:
    run = seqrec.load(path)
    model_run = run.model_run
    data = run_data(model_run, data_dir)
    counts = np.bincount(data.train.items, minlength=data.num_items + 1)  # [N+1] training occurrences
    split = data.test
    ranking = rank_split(run.recommender.model, split, k=10, mask_seen=model_run.config.eval.mask_seen)
    gains = ndcg(ranking.ranks, 10).numpy()  # [E]
    return {"run": path, "features": model_run.config.model.item_features, "users": len(split),
            "NDCG@10": float(gains.mean())} | rare_slices(gains, counts[split.targets], rare)


def rare_slices(gains: np.ndarray, target_counts: np.ndarray, rare: list[int]) -> dict:
    """Users and mean NDCG@10 per slice "<= R" (target seen at most R times in training) and "0" (never).

    gains [E] per-user NDCG@10; target_counts [E] training occurrences of each user's test item. An empty slice
    has None, not 0.
    """
    out: dict = {}
    for name, chosen in [(f"<= {r}", target_counts <= r) for r in rare] + [("0", target_counts == 0)]:
        out[f"rare {name} users"] = int(chosen.sum())
        out[f"rare {name} NDCG@10"] = float(gains[chosen].mean()) if chosen.any() else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--rare", type=int, nargs="+", default=[5, 20],
                        help="at most this many training interactions (one slice each)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [slices(path, args.rare, args.data_dir) for path in args.runs]
    keys = [k for k in rows[0] if k != "run"]
    print("| run | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for row in rows:
        shown = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in (row[k] for k in keys)]
        print(f"| {Path(row['run']).name} | " + " | ".join(shown) + " |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
