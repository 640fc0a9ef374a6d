"""PopSteer end to end on a trained run: SAE training, popularity probe, α sweep (seen items masked and not),
with the wall-clock time of each stage, a JSON record and the trade-off plots.

    python benchmarks/popsteer.py runs/sasrec-ml-1m-sas --out docs/popsteer_ml-1m-sas
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from seqrec.api import run_data
from seqrec.cli.common import format_metric
from seqrec.runs import load_run
from seqrec.steering import SAEConfig, load_sae_run, probe, train_sae
from seqrec.steering.curves import choose_strength
from seqrec.steering.sweep import DEFAULT_BETAS, SWEEP_METRICS, plot_tradeoff, popularity_sweep


def markdown(rows: list[dict]) -> str:
    lines = ["| method | strength | " + " | ".join(SWEEP_METRICS) + " |", "|---" * (2 + len(SWEEP_METRICS)) + "|"]
    for r in rows:
        values = " | ".join(format_metric(m, r[m]) for m in SWEEP_METRICS)
        lines.append(f"| {r['method']} | {r['strength']:g} | {values} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="prefix of the .json and _tradeoff*.png files")
    parser.add_argument("--alphas", default="0,0.5,1,1.5,2,4")
    parser.add_argument("--betas", default=",".join(f"{b:g}" for b in DEFAULT_BETAS))
    parser.add_argument("--mode", default="delta", choices=("recon", "delta"))
    parser.add_argument("--set", action="append", default=[], help="SAE setting key=value")
    parser.add_argument("--sae", type=Path, help="reuse this SAE run instead of training one")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    alphas = [float(a) for a in args.alphas.split(",")]
    betas = [float(b) for b in args.betas.split(",")]
    overrides = {k: type(getattr(SAEConfig(), k))(v) for k, v in (s.split("=", 1) for s in args.set)}

    run = load_run(args.run)
    data = run_data(run)
    timings, start = {}, time.perf_counter()
    if args.sae:
        sae_run = load_sae_run(args.sae)
    else:
        sae_run = train_sae(run, SAEConfig(preset="popsteer", **overrides), data=data)
        timings["sae_train"] = time.perf_counter() - start
    t = time.perf_counter()
    stats, _ = probe(sae_run, data)
    timings["probe"] = time.perf_counter() - t
    t = time.perf_counter()
    masked = popularity_sweep(sae_run, data.test, stats, alphas, betas, mode=args.mode, mask_seen=True)
    timings["sweep_masked"] = time.perf_counter() - t
    timings["pipeline"] = time.perf_counter() - start  # SAE + probe + the masked sweep
    unmasked = popularity_sweep(sae_run, data.test, stats, alphas, betas, mode=args.mode, mask_seen=False)
    d = stats.cohens_d
    record = {
        "run": str(args.run), "sae_run": str(sae_run.path), "device": str(run.model.device),
        "threads": torch.get_num_threads(), "mode": args.mode, "sae": sae_run.metrics,
        "probe": {"popular_neurons": int((d > 0).sum()), "unpopular_neurons": int((d < 0).sum()),
                  "max_abs_d": float(abs(d).max())},
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "masked": masked, "unmasked": unmasked,
        "best_masked": choose_strength(masked, "popsteer"), "best_unmasked": choose_strength(unmasked, "popsteer"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    plot_tradeoff(masked, f"{args.out}_tradeoff.png")
    plot_tradeoff(unmasked, f"{args.out}_tradeoff_unmasked.png")
    print(json.dumps({k: record[k] for k in ("sae", "probe", "timings_seconds", "best_masked", "best_unmasked")},
                     indent=1))
    print("\nseen items masked\n" + markdown(masked) + "\n\nseen items not masked\n" + markdown(unmasked))


if __name__ == "__main__":
    main()
