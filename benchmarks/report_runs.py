"""Markdown table of finished run directories next to published full-ranking numbers (specs/anchors.md).

    python benchmarks/report_runs.py runs/sasrec-ml-1m-sas runs/gru4rec-ml-1m-sas ... [--plot curves.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from seqrec.report.plots import plot_learning_curves
from seqrec.runs import load_run

# (model, dataset) -> (HR@10, NDCG@10, source). Same protocol: leave-one-out, full ranking, seen items masked.
PUBLISHED = {
    ("sasrec", "ml-1m-sas"): (0.3152, 0.1821, "SASRec+ CE, Klenitskiy et al. (ML-1M, BERT4Rec-repo version)"),
    ("bert4rec", "ml-1m-sas"): (0.2843, 0.1537, "BERT4Rec, Klenitskiy et al.; RecTools 0.2921 / 0.1618"),
    ("gru4rec", "ml-1m-sas"): (0.2776, 0.1545, "GRU4Rec CE, RecBole ml-1m_seq (other ML-1M version, L=50)"),
    ("sasrec", "beauty"): (0.0605, 0.0318, "SASRec as reported by S3-Rec/DuoRec; RecTools SASRec+SS 0.0921 / 0.0531"),
    ("sasrec", "beauty-bert4rec"): (0.0533, 0.0327, "SASRec+ CE, Klenitskiy et al.; RecTools 0.0595 / 0.0359"),
    ("bert4rec", "beauty-bert4rec"): (0.0338, 0.0187, "BERT4Rec, Klenitskiy et al.; RecTools 0.0434 / 0.0242"),
}


def row(run_dir: Path) -> str:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model, dataset = config["model"]["name"], config["data"]["name"]
    test = metrics["test"]
    published = PUBLISHED.get((model, dataset))
    anchor = f"{published[0]:.4f} / {published[1]:.4f} ({published[2]})" if published else "—"
    return (f"| {model} | {dataset} | {config['model']['max_len']} | {metrics['epochs_run']} "
            f"(best {metrics['best_epoch']}) | {metrics['train_seconds']:.0f} | {test['HR@10']:.4f} | "
            f"{test['NDCG@10']:.4f} | {test['MRR@10']:.4f} | {anchor} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, help="also save validation NDCG@10 against wall-clock seconds (PNG)")
    args = parser.parse_args()
    print("| model | dataset | L | epochs | train s | HR@10 | NDCG@10 | MRR@10 | published HR@10 / NDCG@10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        print(row(run_dir))
    if args.plot:
        histories = {r.name: load_run(r).history for r in args.runs}  # labelled by run directory
        plot_learning_curves(histories, args.plot, x="elapsed_seconds")


if __name__ == "__main__":
    main()
