"""RecFTT end to end on a trained run: `recftt` SAE, the latent sweep over the given genres (timed), and one tuned
controller per genre and λ, with base vs tuned accuracy overall and on each genre's targets.

    python benchmarks/recftt.py runs/sasrec-ml-1m-sas --out docs/recftt_ml-1m-sas
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from seqrec.api import run_data
from seqrec.runs import load_run
from seqrec.steering import SAEConfig, load_sae_run, train_sae
from seqrec.steering.recftt import TuningInputs, sweep_latents, tune
from seqrec.steering.tuning import TuneConfig

PAPER_GENRES = "Action,Adventure,Comedy,Drama,Horror,Romance,Sci-Fi,Thriller"


def row(genre: str, weight: float, run) -> dict:
    out = {"genre": genre, "weight": weight, "best_epoch": run.metrics["best_epoch"],
           "seconds": run.metrics["seconds"], "latents": run.metrics["latents"]}
    for split in ("valid", "test"):
        for label in ("base", "tuned"):
            m = run.metrics[split][label]
            for key in ("NDCG@10", "HR@10", "NDCG@20", "HR@20"):
                out[f"{split}_{label}_{key}"] = m[key]
                out[f"{split}_{label}_target_{key}"] = m[f"{genre}_{key}"]
            out[f"{split}_{label}_target_ratio@10"] = m[f"{genre}_ratio@10"]
    return out


def summary(rows: list[dict], weight: float) -> dict:
    """Means over genres of the test metrics at one λ (as the paper's sensitivity table)."""
    sel = [r for r in rows if r["weight"] == weight]
    keys = [k for k in sel[0] if k.startswith("test_")]
    return {"weight": weight, **{k: float(np.mean([r[k] for r in sel])) for k in keys}}


def plot(rows: list[dict], weights: list[float], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres = list(dict.fromkeys(r["genre"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=False)
    width = 0.8 / len(weights)
    for i, w in enumerate(weights):
        sel = {r["genre"]: r for r in rows if r["weight"] == w}
        gain = [100 * (sel[g]["test_tuned_target_NDCG@10"] / sel[g]["test_base_target_NDCG@10"] - 1) for g in genres]
        overall = [100 * (sel[g]["test_tuned_NDCG@10"] / sel[g]["test_base_NDCG@10"] - 1) for g in genres]
        x = np.arange(len(genres)) + (i - (len(weights) - 1) / 2) * width
        axes[0].bar(x, gain, width, label=f"λ={w:g}")
        axes[1].bar(x, overall, width, label=f"λ={w:g}")
    for ax, title in zip(axes, ("target-genre NDCG@10 change (%)", "overall NDCG@10 change (%)"), strict=True):
        ax.set_xticks(range(len(genres)), genres, rotation=30, ha="right")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(10, color="gray", ls="--", lw=0.8)
    axes[1].axhline(-2, color="gray", ls="--", lw=0.8)
    axes[0].legend()
    fig.suptitle("RecFTT: tuning toward one genre (test split, full ranking)")
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="prefix of the .json and .png files")
    parser.add_argument("--genres", default=PAPER_GENRES)
    parser.add_argument("--weights", default="0.05,0.1,0.2")
    parser.add_argument("--latents", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], help="tune setting key=value")
    parser.add_argument("--sae", type=Path, help="reuse this SAE run instead of training one")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    genres = args.genres.split(",")
    weights = [float(w) for w in args.weights.split(",")]
    overrides = {k: type(getattr(TuneConfig(targets=["x"]), k))(v) for k, v in (s.split("=", 1) for s in args.set)}

    run = load_run(args.run)
    data = run_data(run)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    sae_run = load_sae_run(args.sae) if args.sae else train_sae(run, SAEConfig(preset="recftt"), data=data)
    timings["sae"] = time.perf_counter() - start
    start = time.perf_counter()
    sweep = sweep_latents(sae_run, genres, data, split="valid")
    timings["sweep"] = time.perf_counter() - start
    print(f"sweep of {sae_run.sae.latents} latents × {len(sweep.scales)} scales × {len(genres)} genres: "
          f"{timings['sweep']:.1f} s")
    start = time.perf_counter()
    inputs = TuningInputs.compute(sae_run, data, TuneConfig(targets=["x"], **overrides).max_instances)
    timings["tuning_inputs"] = time.perf_counter() - start
    print(f"frozen outputs of {len(inputs.train.x):,} training prefixes: {timings['tuning_inputs']:.1f} s")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for weight in weights:
            for genre in genres:
                config = TuneConfig(targets=[genre], latents=args.latents, weight=weight, **overrides)
                tuned = tune(sae_run, config, data=data, sweep=sweep, inputs=inputs, progress=False)
                rows.append(row(genre, weight, tuned))
                r = rows[-1]
                print(f"λ={weight:g} {genre:10s} target NDCG@10 {r['test_base_target_NDCG@10']:.4f} → "
                      f"{r['test_tuned_target_NDCG@10']:.4f}, overall {r['test_base_NDCG@10']:.4f} → "
                      f"{r['test_tuned_NDCG@10']:.4f} (epoch {r['best_epoch']}, {r['seconds']:.0f} s)", flush=True)
    record = {"run": str(args.run), "sae_run": str(sae_run.path), "sae": sae_run.metrics, "threads":
              torch.get_num_threads(), "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
              "sweep_path": str(sweep.path), "tune": {k: v for k, v in vars(config).items()}, "rows": rows,
              "summary": [summary(rows, w) for w in weights]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(record, indent=1))
    plot(rows, weights, Path(f"{args.out}.png"))
    for s in record["summary"]:
        print(f"λ={s['weight']:g} mean over genres (test): target NDCG@10 {s['test_base_target_NDCG@10']:.4f} → "
              f"{s['test_tuned_target_NDCG@10']:.4f} "
              f"({100 * (s['test_tuned_target_NDCG@10'] / s['test_base_target_NDCG@10'] - 1):+.1f}%), overall "
              f"{s['test_base_NDCG@10']:.4f} → {s['test_tuned_NDCG@10']:.4f} "
              f"({100 * (s['test_tuned_NDCG@10'] / s['test_base_NDCG@10'] - 1):+.1f}%)")


if __name__ == "__main__":
    main()
