"""Profile distillation, with against without, over seeds: runs the matrix and reports mean ± std.

    SEQREC_DATA=../shared/data python benchmarks/distill.py --profiles ml-1m-sas=profiles/ml-1m-sas.json \
        --profiles beauty=profiles/beauty.json --seeds 0,1,2 --jobs 2 --out bench-results/distill
    python benchmarks/distill.py --report-only --out bench-results/distill --plot docs/distill.png

Each run is `seqrec train configs/distill-MODEL-DATASET.yaml` with `train.seed`, one CPU thread per job, and
`distill.profiles` for the distilled arm (the same config otherwise). Finished runs are skipped, so the
script resumes. The table gives test HR@10 / NDCG@10 as mean ± sample std over seeds and the relative gain.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("plain", "distill")


def run_name(model: str, dataset: str, arm: str, seed: int) -> str:
    return f"{model}-{dataset}-{arm}-s{seed}"


def train(model: str, dataset: str, arm: str, seed: int, profiles: dict[str, str], out: Path,
          threads: int) -> str:
    """One `seqrec train` in a subprocess; returns a status line."""
    name = run_name(model, dataset, arm, seed)
    if (out / name / "metrics.json").is_file():
        return f"{name}: done before"
    sets = [f"train.seed={seed}", f"train.threads={threads}", f"name={name}"]
    if arm == "distill":
        sets.append(f"distill.profiles={Path(profiles[dataset]).resolve()}")
    command = [sys.executable, "-m", "seqrec", "train", str(ROOT / f"configs/distill-{model}-{dataset}.yaml"),
               "--out", str(out), *itertools.chain.from_iterable(("--set", s) for s in sets)]
    log = out / f"{name}.log"
    with log.open("w") as f:
        code = subprocess.call(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    return f"{name}: {'ok' if code == 0 else f'failed (exit {code}), see {log}'}"


def collect(out: Path) -> dict[tuple[str, str, str], list[dict]]:
    """Finished runs grouped by (dataset, model, arm)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for metrics_file in sorted(out.glob("*/metrics.json")):
        model, rest = metrics_file.parent.name.split("-", 1)
        dataset, arm, _ = rest.rsplit("-", 2)
        groups.setdefault((dataset, model, arm), []).append(json.loads(metrics_file.read_text()))
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(out: Path) -> list[dict]:
    """Print the markdown table; return its rows for plotting."""
    groups = collect(out)
    rows = []
    print("| dataset | model | arm | seeds | HR@10 | NDCG@10 | Δ NDCG@10 | train s / run |")
    print("|---|---|---|---|---|---|---|---|")
    for (dataset, model, arm) in sorted(groups, key=lambda k: (k[0], k[1], ARMS.index(k[2]))):
        runs = groups[(dataset, model, arm)]
        hr, ndcg = (mean_std([r["test"][f"{m}@10"] for r in runs]) for m in ("HR", "NDCG"))
        base = groups.get((dataset, model, "plain"))
        gain = ""
        if arm == "distill" and base:
            base_ndcg = statistics.fmean(r["test"]["NDCG@10"] for r in base)
            gain = f"{100 * (ndcg[0] / base_ndcg - 1):+.2f}%"
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
        print(f"| {dataset} | {model} | {arm} | {len(runs)} | {hr[0]:.4f} ± {hr[1]:.4f} | "
              f"{ndcg[0]:.4f} ± {ndcg[1]:.4f} | {gain} | {seconds:.0f} |")
        rows.append({"dataset": dataset, "model": model, "arm": arm, "ndcg": ndcg,
                     "values": [r["test"]["NDCG@10"] for r in runs]})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Test NDCG@10 per (dataset, model), both arms side by side, seeds as dots, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted({(r["dataset"], r["model"]) for r in rows})
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.4), squeeze=False)
    for ax, (dataset, model) in zip(axes[0], pairs, strict=True):
        for x, arm in enumerate(ARMS):
            found = [r for r in rows if (r["dataset"], r["model"], r["arm"]) == (dataset, model, arm)]
            if not found:
                continue
            (mean, std), values = found[0]["ndcg"], found[0]["values"]
            ax.bar(x, mean, yerr=std, capsize=4, color=("#9aa7b8", "#3b7dd8")[x], width=0.6)
            ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
        low = min(v for r in rows if (r["dataset"], r["model"]) == (dataset, model) for v in r["values"])
        ax.set_ylim(bottom=low * 0.9)
        ax.set_xticks(range(len(ARMS)), ARMS)
        ax.set_title(f"{model} · {dataset}", fontsize=10)
        ax.set_ylabel("test NDCG@10" if ax is axes[0][0] else "")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-1m-sas,beauty")
    parser.add_argument("--models", default="sasrec,bert4rec")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="plain,distill")
    parser.add_argument("--profiles", action="append", default=[], help="DATASET=profile.json (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--out", type=Path, default=Path("bench-results/distill"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        profiles = dict(p.split("=", 1) for p in args.profiles)
        arms = args.arms.split(",")
        if "distill" in arms and (missing := set(args.datasets.split(",")) - set(profiles)):
            sys.exit(f"give --profiles DATASET=FILE for {', '.join(sorted(missing))} (seqrec profiles embed)")
        jobs = [(m, d, a, int(s)) for d in args.datasets.split(",") for m in args.models.split(",")
                for s in args.seeds.split(",") for a in arms]
        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(lambda j: train(*j, profiles, out, threads=1), jobs):
                print(line, flush=True)
    rows = report(out)
    if args.plot and rows:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
