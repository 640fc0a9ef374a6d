"""Hyper-parameter search for SASRec on Beauty: a 20-trial study (lr, dropout, hidden, blocks, max_len, weight
decay) with median pruning within a fixed budget, its best validation and test NDCG@10 next to the shipped config's,
and how much training pruning saved (trials pruned, epochs saved).

    python benchmarks/search.py --config configs/sasrec-beauty.yaml --trials 20 --budget 14400 \\
        --out runs/bench-search --json docs/search_beauty.json
    python benchmarks/search.py --baseline runs/sasrec-beauty ...   # reuse a run of the shipped config

The budget is the search's wall clock: no trial starts after it (a running trial finishes). Rerunning the same
command continues the study. The shipped config is trained once outside the budget (or read from --baseline).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from seqrec.config import apply_overrides, read_yaml
from seqrec.experiment import ExperimentConfig
from seqrec.runs import load_run
from seqrec.search import SearchSettings, pruning_savings, run_search
from seqrec.search.results import visible_trials
from seqrec.search.study import tally
from seqrec.training_runs import finish_run_dir, start_run_dir, train

SPACE = {
    "train.lr": {"low": 1e-4, "high": 3e-3, "log": True},
    "model.dropout": {"low": 0.1, "high": 0.7},
    "model.hidden": [32, 64, 128],
    "model.blocks": {"low": 1, "high": 3},
    "model.max_len": [20, 50, 100],
    "train.weight_decay": [0.0, 1e-5, 1e-4, 1e-3],
}


def shipped_metrics(raw: dict, out: Path, baseline: Path | None) -> dict:
    """Validation and test metrics of the shipped config: from --baseline, else trained now (no pruning)."""
    if baseline is not None:
        return load_run(baseline).metrics
    from seqrec.data.registry import load as load_data
    from seqrec.training.checkpoint import Checkpoint

    config = ExperimentConfig.from_dict({**raw, "name": "shipped"})
    folder = start_run_dir(config, out)
    checkpoint = Checkpoint(folder, config.train.checkpoint_every)
    run = train(config.model, load_data(config.data), config.train, config.eval, data_config=config.data,
                checkpoint=checkpoint)
    run.config.name = config.name
    finish_run_dir(run, folder, checkpoint)
    return run.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/sasrec-beauty.yaml"))
    parser.add_argument("--set", action="append", default=[], help="config override key=value (search and shipped)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budget", type=float, default=4 * 3600, help="seconds after which no trial starts")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-search"))
    parser.add_argument("--storage", help="Optuna database URL (default: study.db in the study folder)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", type=Path, help="a finished run of the shipped config")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the record here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    raw = apply_overrides(read_yaml(args.config), args.set)

    start = time.perf_counter()
    outcome = run_search(raw, SPACE, args.trials, storage=args.storage, output_dir=args.out, jobs=args.jobs,
                         timeout=args.budget, settings=SearchSettings(pruner="median", seed=args.seed),
                         progress=False, on_trial=lambda t: print(f"trial {t.number}: {t.state.name.lower()} "
                                                                  f"{t.value} {t.params}", flush=True))
    search_seconds = time.perf_counter() - start
    shipped = shipped_metrics(raw, args.out, args.baseline)
    best = outcome.best
    savings = pruning_savings(visible_trials(outcome.study))
    counts = tally(outcome.study)
    record = {
        "config": str(args.config), "overrides": args.set, "space": SPACE, "budget_seconds": args.budget,
        "search_seconds": round(search_seconds, 1), "threads": torch.get_num_threads(),
        "trials": {"complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed},
        "pruning": {"trials_pruned": savings.pruned, "epochs_run_by_pruned": savings.pruned_epochs,
                    "epochs_saved": savings.epochs_saved, "share_saved": round(savings.share_saved, 3),
                    "mean_finished_epochs": savings.mean_finished_epochs},
        "best": None if best is None else {
            "trial": best.number, "params": best.params, "run": str(outcome.folder / best.user_attrs["run"]),
            "valid_NDCG@10": best.user_attrs["valid"]["NDCG@10"], "test_NDCG@10": best.user_attrs["test"]["NDCG@10"],
            "epochs": best.user_attrs["epochs"], "train_seconds": best.user_attrs["seconds"]},
        "shipped": {"valid_NDCG@10": shipped["valid"]["NDCG@10"], "test_NDCG@10": shipped["test"]["NDCG@10"],
                    "epochs": shipped.get("epochs_run"), "train_seconds": shipped.get("train_seconds")},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    print("\n| config | valid NDCG@10 | test NDCG@10 |\n|---|---|---|")
    print(f"| shipped ({args.config.name}) | {shipped['valid']['NDCG@10']:.4f} | {shipped['test']['NDCG@10']:.4f} |")
    if best is not None:
        print(f"| search best (trial {best.number}) | {best.user_attrs['valid']['NDCG@10']:.4f} | "
              f"{best.user_attrs['test']['NDCG@10']:.4f} |")
    print(f"\n{counts.complete + counts.pruned} trials in {search_seconds / 60:.1f} min; pruning stopped "
          f"{savings.pruned} trials after {savings.pruned_epochs} epochs, saving ~{savings.epochs_saved:g} epochs "
          f"({savings.share_saved:.0%} of the training)")


if __name__ == "__main__":
    main()
