"""The benchmark suite in one command (`make bench`): speed against RecTools, large-catalogue memory, accuracy.

    SEQREC_DATA=../shared/data python benchmarks/suite.py --budget 900 --out bench-results

Steps (each skipped with a message when its dataset or peer is absent):
1. speed    benchmarks/speed.py on ml-1m-sas: seqrec vs RecTools SASRec, same settings, same run.
2. memory   benchmarks/epoch_time.py on beauty-bert4rec (54,542 items): full / chunked / sampled softmax.
3. accuracy `seqrec train` of every configs/{sasrec,bert4rec,gru4rec}-{ml-1m-sas,beauty,beauty-bert4rec}.yaml
            with `train.time_budget=BUDGET`, then one table next to the published numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from seqrec.data.registry import list_datasets

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("sasrec", "bert4rec", "gru4rec")
DATASETS = ("ml-1m-sas", "beauty", "beauty-bert4rec")


def present() -> dict[str, bool]:
    return {row["name"]: row["present"] for row in list_datasets()}


def step(title: str, command: list[str], log: Path) -> bool:
    """Run one benchmark, echoing its output to the terminal and to `log`."""
    print(f"\n== {title}: {' '.join(command)}", flush=True)
    with log.open("w") as out, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True, cwd=ROOT) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            out.write(line)
    if proc.returncode != 0:
        print(f"   {title} failed (exit {proc.returncode}); log: {log}")
    return proc.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900.0, help="training seconds per run")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", default="speed,memory,accuracy", help="comma-separated steps to run")
    args = parser.parse_args()
    steps = set(args.only.split(","))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    have = present()
    python = sys.executable
    missing = [name for name in DATASETS if not have.get(name)]
    if missing:
        print(f"skipping datasets that are absent: {', '.join(missing)} (see `seqrec data list`)")

    if "speed" in steps and have.get("ml-1m-sas"):
        step("speed", [python, "benchmarks/speed.py", "--dataset", "ml-1m-sas", "--time-budget", str(args.budget),
                       "--out", str(out / "speed_ml-1m-sas")], out / "speed.log")
    if "memory" in steps and have.get("beauty-bert4rec"):
        variants = ["full:loss=full", "chunked:loss=chunked", "sampled:loss=sampled"]
        step("memory", [python, "benchmarks/epoch_time.py", "--dataset", "beauty-bert4rec", "--max-len", "50",
                        "--steps", "30", *[arg for v in variants for arg in ("--variant", v)]], out / "memory.log")
    if "accuracy" in steps:
        runs = out / "runs"
        finished = []
        for dataset in DATASETS:
            for model in MODELS:
                config = ROOT / "configs" / f"{model}-{dataset}.yaml"
                if not config.exists() or not have.get(dataset):
                    continue
                name = f"{model}-{dataset}"
                ok = step(name, [python, "-m", "seqrec", "train", str(config), "--out", str(runs),
                                 "--set", f"train.time_budget={args.budget:g}", "--set", f"name={name}"],
                          out / f"{name}.log")
                if ok:
                    finished.append(max(runs.glob(f"{name}*"), key=lambda p: p.stat().st_mtime))
        if finished:
            step("accuracy table", [python, "benchmarks/report_runs.py", *map(str, finished), "--plot",
                                    str(out / "accuracy_curves.png")], out / "accuracy.md")
    print(f"\nresults and logs: {out}")


if __name__ == "__main__":
    main()
