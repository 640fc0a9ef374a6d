"""DuoRec and retrieval-augmented fine-tuning (FTragrec) over seeds, next to SASRec: mean ± std, epoch time,
inference overhead.

    SEQREC_DATA=../shared/data python benchmarks/retrieval.py --datasets beauty,ml-1m-sas --seeds 0,1,2 \
        --sasrec bench-results/distill --out bench-results/retrieval --plot docs/retrieval.png
    python benchmarks/retrieval.py --report-only --out bench-results/retrieval --sasrec bench-results/distill

Arms, per dataset and seed (one CPU thread per job, `--jobs` at a time; finished runs are skipped):
  duorec    `seqrec train configs/duorec-DATASET.yaml`
  ftragrec  `seqrec train configs/ftragrec-DATASET.yaml --set retrieval.base_run=<duorec run of the same seed>`
  finetune  the same fine-tuning without retrieval (alpha 0, no retrieval terms): what the extra epochs and the
            unfrozen block give on their own
SASRec numbers are read from the plain arm of benchmarks/distill.py (`--sasrec`), which trains the same encoder
with the same budget.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("sasrec", "duorec", "finetune", "ftragrec")
NO_RETRIEVAL = ["retrieval.alpha=0", "retrieval.kl_weight=0", "retrieval.enhanced_weight=0"]
PUBLISHED = {  # test R@10 / N@10 from the original repositories' logs (RecBole, unmasked full ranking)
    "beauty": [("DuoRec (checkpoint FTragrec starts from)", 0.0816, 0.0431), ("RaSeRec on DuoRec", 0.0833, 0.0445),
               ("FTragrec (published code)", 0.0809, 0.0430)],
    "ml-1m-sas": [("DuoRec paper (RecBole ML-1M, N@10 only)", None, 0.168)],
}


def run_name(arm: str, dataset: str, seed: int) -> str:
    return f"{arm}-{dataset}-s{seed}"


def train(arm: str, dataset: str, seed: int, out: Path, extra: list[str], base: Future | None = None) -> str:
    """One `seqrec train` in a subprocess (after its base run, if any); returns a status line."""
    if base is not None:
        base.result()
    name = run_name(arm, dataset, seed)
    if (out / name / "metrics.json").is_file():
        return f"{name}: done before"
    config = f"configs/{'duorec' if arm == 'duorec' else 'ftragrec'}-{dataset}.yaml"
    sets = [f"train.seed={seed}", "train.threads=1", f"name={name}"]
    if arm != "duorec":
        base_run = out / run_name("duorec", dataset, seed)
        if not (base_run / "metrics.json").is_file():
            return f"{name}: skipped, {base_run} is missing"
        sets += [f"retrieval.base_run={base_run}", *extra, *(NO_RETRIEVAL if arm == "finetune" else [])]
    command = [sys.executable, "-m", "seqrec", "train", str(ROOT / config), "--out", str(out),
               *itertools.chain.from_iterable(("--set", s) for s in sets)]
    log = out / f"{name}.log"
    with log.open("w") as f:
        code = subprocess.call(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    return f"{name}: {'ok' if code == 0 else f'failed (exit {code}), see {log}'}"


def run_matrix(datasets: list[str], seeds: list[int], arms: list[str], out: Path, jobs: int,
               extra: list[str]) -> None:
    with ThreadPoolExecutor(jobs) as pool:  # base runs are queued first, so a waiting job never blocks them
        bases = {(d, s): pool.submit(train, "duorec", d, s, out, extra) for d in datasets for s in seeds
                 if "duorec" in arms}
        rest = [pool.submit(train, a, d, s, out, extra, bases.get((d, s))) for d in datasets for s in seeds
                for a in arms if a in ("finetune", "ftragrec")]
        for future in [*bases.values(), *rest]:
            print(future.result(), flush=True)


def load_metrics(folder: Path) -> tuple[dict, list[dict]] | None:
    if not (folder / "metrics.json").is_file():
        return None
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    return json.loads((folder / "metrics.json").read_text()), history


def collect(out: Path, sasrec: Path | None, datasets: list[str], seeds: list[int]) -> dict:
    """{(dataset, arm): [(metrics, history), ...]} of finished runs."""
    groups: dict[tuple[str, str], list] = {}
    for dataset, seed, arm in itertools.product(datasets, seeds, ARMS):
        folder = (sasrec / f"sasrec-{dataset}-plain-s{seed}" if arm == "sasrec" and sasrec
                  else out / run_name(arm, dataset, seed))
        found = load_metrics(folder)
        if found:
            groups.setdefault((dataset, arm), []).append(found)
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def epoch_seconds(history: list[dict]) -> float:
    return statistics.fmean(r["train_seconds"] for r in history)


def report(groups: dict, datasets: list[str]) -> list[dict]:
    """Print the markdown table (test R@10 = HR@10 under leave-one-out); return rows for plotting."""
    rows = []
    print("| dataset | model | seeds | R@10 | N@10 | Δ R@10 vs DuoRec | epochs | s / epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in datasets:
        duorec = groups.get((dataset, "duorec"))
        for arm in ARMS:
            runs = groups.get((dataset, arm))
            if not runs:
                continue
            recall, ndcg = (mean_std([m["test"][f"{k}@10"] for m, _ in runs]) for k in ("HR", "NDCG"))
            gain = ""
            if duorec and arm != "duorec":
                base = statistics.fmean(m["test"]["HR@10"] for m, _ in duorec)
                gain = f"{100 * (recall[0] / base - 1):+.2f}%"
            seconds = statistics.fmean(epoch_seconds(h) for _, h in runs)
            epochs = statistics.fmean(len(h) for _, h in runs)
            print(f"| {dataset} | {arm} | {len(runs)} | {recall[0]:.4f} ± {recall[1]:.4f} | "
                  f"{ndcg[0]:.4f} ± {ndcg[1]:.4f} | {gain} | {epochs:.0f} | {seconds:.0f} |")
            rows.append({"dataset": dataset, "arm": arm, "recall": recall,
                         "values": [m["test"]["HR@10"] for m, _ in runs]})
        for label, r10, n10 in PUBLISHED.get(dataset, []):
            print(f"| {dataset} | published {label} | | {'–' if r10 is None else f'{r10:.4f}'} | {n10:.4f} | | | |")
    return rows


def inference_overhead(out: Path, datasets: list[str], users: int = 1000, repeats: int = 3) -> None:
    """Seconds to score `users` users with the plain DuoRec and with retrieval (seed 0 runs, best of repeats)."""
    import torch

    from seqrec.runs import load_run

    torch.set_num_threads(1)
    print(f"\n| dataset | DuoRec s / {users} users | FTragrec s / {users} users | overhead |")
    print("|---|---|---|---|")
    for dataset in datasets:
        seconds = []
        for arm in ("duorec", "ftragrec"):
            folder = out / run_name(arm, dataset, 0)
            if not (folder / "metrics.json").is_file():
                break
            run = load_run(folder)
            model, histories = run.model, run.recommender.histories
            items = torch.from_numpy(histories.take(range(min(users, len(histories)))).padded(model.max_len))
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                with torch.no_grad():
                    model.score(items)
                best = min(best, time.perf_counter() - start)
            seconds.append(best)
        if len(seconds) == 2:
            print(f"| {dataset} | {seconds[0]:.3f} | {seconds[1]:.3f} | +{seconds[1] - seconds[0]:.3f} s "
                  f"({seconds[1] / seconds[0]:.2f}×) |")


def epoch_times(out: Path, datasets: list[str], extra: list[str]) -> None:
    """One training epoch of DuoRec and of FTragrec (on the seed-0 DuoRec run), back to back in this process."""
    import torch

    from seqrec.config import apply_overrides, read_yaml
    from seqrec.data.registry import load as load_data
    from seqrec.experiment import ExperimentConfig
    from seqrec.models.base import build_model
    from seqrec.retrieval.setup import from_base_run
    from seqrec.training.trainer import Trainer

    torch.set_num_threads(1)
    print("\n| dataset | DuoRec s / epoch | FTragrec s / epoch | ratio | knowledge-base build s |")
    print("|---|---|---|---|---|")
    for dataset in datasets:
        base = out / run_name("duorec", dataset, 0)
        if not (base / "metrics.json").is_file():
            continue
        seconds = []
        for arm in ("duorec", "ftragrec"):
            raw = read_yaml(ROOT / f"configs/{arm}-{dataset}.yaml")
            sets = ["train.epochs=1", "train.threads=1"] + ([f"retrieval.base_run={base}", *extra]
                                                             if arm == "ftragrec" else [])
            config = ExperimentConfig.from_dict(apply_overrides(raw, sets))
            data = load_data(config.data)
            torch.manual_seed(0)
            model = (from_base_run(config.retrieval, config.model, data) if arm == "ftragrec"
                     else build_model(config.model, data.num_items))
            start = time.perf_counter()
            trainer = Trainer(model, data, config.train, progress=False)
            build = time.perf_counter() - start
            start = time.perf_counter()
            trainer.train_epoch()
            for term in trainer.terms:  # the knowledge-base refresh (retrieval.refresh_every: 1)
                term.end_epoch(1)
            seconds.append(time.perf_counter() - start)
        print(f"| {dataset} | {seconds[0]:.1f} | {seconds[1]:.1f} | {seconds[1] / seconds[0]:.2f}× | {build:.1f} |")


def plot(rows: list[dict], datasets: list[str], path: Path) -> None:
    """Test R@10 per dataset and arm, seeds as dots, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"sasrec": "#9aa7b8", "duorec": "#6f8fb3", "finetune": "#b3a36f", "ftragrec": "#3b7dd8"}
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        found = [r for r in rows if r["dataset"] == dataset]
        for x, r in enumerate(found):
            ax.bar(x, r["recall"][0], yerr=r["recall"][1], capsize=4, color=colours[r["arm"]], width=0.6)
            ax.scatter([x] * len(r["values"]), r["values"], color="black", s=10, zorder=3)
        if found:
            ax.set_ylim(bottom=min(v for r in found for v in r["values"]) * 0.9)
        ax.set_xticks(range(len(found)), [r["arm"] for r in found], fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.set_ylabel("test R@10" if ax is axes[0][0] else "")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="beauty,ml-1m-sas")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default="duorec,finetune,ftragrec")
    parser.add_argument("--set", action="append", default=[], help="extra override for the fine-tuning arms")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--out", type=Path, default=Path("bench-results/retrieval"))
    parser.add_argument("--sasrec", type=Path, help="folder with sasrec-DATASET-plain-sSEED runs")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--epoch-time", action="store_true", help="time one epoch of each, back to back")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    datasets, seeds = args.datasets.split(","), [int(s) for s in args.seeds.split(",")]
    if not args.report_only:
        run_matrix(datasets, seeds, args.arms.split(","), out, args.jobs, args.set)
    rows = report(collect(out, args.sasrec, datasets, seeds), datasets)
    inference_overhead(out, datasets)
    if args.epoch_time:
        epoch_times(out, datasets, args.set)
    if args.plot and rows:
        plot(rows, datasets, args.plot)


if __name__ == "__main__":
    main()
