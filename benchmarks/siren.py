"""SIREN on the Amazon-2023 Movies & TV data with SmolLM2-135M: every stage on a subset, then one table.

    SEQREC_DATA=../shared/data python benchmarks/siren.py --out bench-results/siren          # run what is missing
    python benchmarks/siren.py --out bench-results/siren --report-only --plot docs/siren.png

Stages (each a `seqrec llm ...` command writing OUT/<name>; finished ones are skipped, so the script resumes):
sketch; mean baselines; zero-shot SmolLM2 (answer-only and CoT); SFT on the rating (no reasoning); format
warm-up + GRPO; GRPO-CoT; SIREN alignment of the GRPO model (answer-only). Test metrics use the first
`--test-rows` test rows (the baselines also on all of them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # Movies, mean of 3 seeds (spec §5); latency per sample on the authors' unstated hardware
    "SIREN (paper, Qwen3-4B)": {"mae": 0.7603, "rmse": 1.2924, "generated_tokens": 1, "seconds_per_sample": 0.013},
    "CE / SFT (paper)": {"mae": 0.7832},
    "GRPO-CoT (paper, Fig. 3)": {"generated_tokens": 238, "seconds_per_sample": 2.22},
}


def stages(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(run name, seqrec arguments) in order; later stages read earlier run directories."""
    out, n, data = args.out, str(args.test_rows), ["--data", "movies-tv"]
    sketch = ["--sketch", str(out / "sketch")]
    test = ["--limit", n, "--batch-size", "8"]
    cot = ["--mode", "cot", "--limit", str(args.cot_rows), "--batch-size", "8", "--max-new-tokens",
           str(args.max_completion)]
    runs = [("sketch", ["sketch", *data])]
    for mean in ("global-mean", "user-mean", "item-mean"):
        runs += [(f"eval-{mean}", ["evaluate", mean, *data, "--limit", n]),
                 (f"eval-{mean}-all", ["evaluate", mean, *data])]
    runs += [("eval-zero-shot-ao", ["evaluate", "smollm2", *data, *sketch, *test]),
             ("eval-zero-shot-cot", ["evaluate", "smollm2", *data, *sketch, *cot]),
             ("sft", ["align", "smollm2", "--ce-weight", "1", *data, *sketch, "--limit", str(args.sft_rows),
                      "--valid-limit", str(args.valid_rows), "--epochs", "1", "--eval-every", "16", "--lr",
                      str(args.align_lr)]),
             ("eval-sft-ao", ["evaluate", str(out / "sft"), *data, *test]),
             ("warmup", ["grpo", "--model", "smollm2", *data, *sketch, "--steps", "0", "--warmup-rows",
                         str(args.warmup_rows), "--warmup-lr", str(args.warmup_lr)]),
             ("eval-warmup-cot", ["evaluate", str(out / "warmup"), *data, *cot]),
             ("grpo", ["grpo", "--model", str(out / "warmup"), *data, *sketch, "--steps", str(args.grpo_steps),
                       "--group-size", "4", "--prompts-per-step", "2", "--lr", str(args.grpo_lr),
                       "--max-completion", str(args.max_completion), "--limit", str(2 * args.grpo_steps)]),
             ("eval-grpo-ao", ["evaluate", str(out / "grpo"), *data, *test]),
             ("eval-grpo-cot", ["evaluate", str(out / "grpo"), *data, *cot]),
             ("siren", ["align", str(out / "grpo"), *data, "--limit", str(args.trace_rows), "--valid-limit",
                        str(args.valid_rows), "--trace-tokens", str(args.max_completion), "--epochs", "3",
                        "--batch-size", "2", "--eval-every", "5", "--lr", str(args.align_lr)]),
             ("eval-siren-ao", ["evaluate", str(out / "siren"), *data, *test]),
             ("latency-siren-ao", ["evaluate", str(out / "siren"), *data, "--limit", "8", "--batch-size", "1"]),
             ("latency-grpo-cot", ["evaluate", str(out / "grpo"), *data, "--mode", "cot", "--limit", "8",
                                   "--batch-size", "1", "--max-new-tokens", str(args.max_completion)])]
    return runs


def run_missing(args: argparse.Namespace) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for name, command in stages(args):
        if (args.out / name / "metrics.json").is_file():
            continue
        if args.only and name not in args.only:
            continue
        log = args.out / f"{name}.log"
        print(f"{time.strftime('%H:%M:%S')} {name} ...", flush=True)
        with log.open("w") as f:
            code = subprocess.call([sys.executable, "-m", "seqrec", "llm", *command, "--out", str(args.out / name)],
                                   stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        if code != 0:
            print(f"{name} failed (exit {code}); see {log}", flush=True)
            if not args.keep_going:
                return


def metrics(out: Path, name: str) -> dict:
    path = out / name / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


ROWS = (  # table row label, run directory
    ("global mean", "eval-global-mean"), ("user mean", "eval-user-mean"), ("item mean", "eval-item-mean"),
    ("SmolLM2 zero-shot, answer-only", "eval-zero-shot-ao"), ("SmolLM2 zero-shot, CoT", "eval-zero-shot-cot"),
    ("SFT on the rating, answer-only", "eval-sft-ao"), ("format warm-up, CoT", "eval-warmup-cot"),
    ("warm-up + GRPO, answer-only", "eval-grpo-ao"),
    ("warm-up + GRPO, CoT", "eval-grpo-cot"), ("SIREN (GRPO + alignment), answer-only", "eval-siren-ao"),
    ("SIREN answer-only, batch 1 (latency)", "latency-siren-ao"), ("GRPO CoT, batch 1 (latency)",
                                                                   "latency-grpo-cot"),
    ("global mean, all test rows", "eval-global-mean-all"), ("user mean, all test rows", "eval-user-mean-all"),
    ("item mean, all test rows", "eval-item-mean-all"),
)


def _cell(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(out: Path) -> str:
    """Markdown: the accuracy/efficiency table, the paper's numbers, and the sketch's token counts."""
    lines = ["| method | n | MAE | RMSE | invalid | MAE (invalid → 5) | RMSE (invalid → 5) | generated tokens "
             "| s / sample |", "|---|---|---|---|---|---|---|---|---|"]
    for label, name in ROWS:
        m = metrics(out, name)
        if m:
            lines.append(f"| {label} | {m['n']} | {_cell(m['mae'])} | {_cell(m['rmse'])} | "
                         f"{_cell(m['invalid_rate'], 2)} | {_cell(m['mae_invalid_as_max'])} | "
                         f"{_cell(m['rmse_invalid_as_max'])} | {_cell(m.get('generated_tokens'), 1)} | "
                         f"{_cell(m.get('seconds_per_sample'), 3)} |")
    for label, m in PAPER.items():
        lines.append(f"| {label} | 2629 | {_cell(m.get('mae'))} | {_cell(m.get('rmse'))} | – | – | – | "
                     f"{_cell(m.get('generated_tokens'))} | {_cell(m.get('seconds_per_sample'))} |")
    sketch = metrics(out, "sketch")
    if sketch:
        lines += ["", f"Sketch: {sketch['topics']} topics over {sketch['items']:,} items in "
                  f"{sketch['seconds']:.0f} s; user-message tokens on {sketch['token_rows']:,} test rows: "
                  f"sketch + last 10 items {sketch['prompt_tokens_sketch']:.1f} vs raw full history "
                  f"{sketch['prompt_tokens_raw']:.1f} ({-100 * sketch['token_reduction']:+.1f}%; paper −48.7%)."]
    for stage in ("sft", "warmup", "grpo", "siren"):
        m = metrics(out, stage)
        if m:
            keep = {k: v for k, v in m.items() if not isinstance(v, (list, dict))}
            lines.append(f"\n{stage}: " + ", ".join(f"{k} {_cell(v)}" for k, v in keep.items()))
    return "\n".join(lines)


def plot(out: Path, path: Path) -> None:
    """MAE (invalid outputs counted at 5) and latency per sample of every evaluated method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [(label, metrics(out, name)) for label, name in ROWS[:12] if metrics(out, name)]
    labels = [label for label, _ in found]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(found) + 1.5), sharey=True)
    left.barh(labels, [m["mae_invalid_as_max"] for _, m in found], color="tab:blue")
    left.set_xlabel("test MAE, invalid outputs as 5 (lower is better)")
    left.invert_yaxis()
    right.barh(labels, [m.get("seconds_per_sample", float("nan")) for _, m in found], color="tab:orange")
    right.set_xlim(left=0)
    right.set_xlabel("seconds per sample, 2-core CPU (means: none)")
    fig.suptitle("SIREN stages with SmolLM2-135M on Movies & TV (n test rows per bar in docs/benchmarks.md)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results/siren")
    parser.add_argument("--test-rows", type=int, default=200)
    parser.add_argument("--cot-rows", type=int, default=24)
    parser.add_argument("--valid-rows", type=int, default=50)
    parser.add_argument("--sft-rows", type=int, default=128)
    parser.add_argument("--warmup-rows", type=int, default=48)
    parser.add_argument("--warmup-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-steps", type=int, default=8)
    parser.add_argument("--grpo-lr", type=float, default=5e-6)
    parser.add_argument("--trace-rows", type=int, default=96)
    parser.add_argument("--align-lr", type=float, default=5e-4, help="LoRA learning rate of SFT and alignment.")
    parser.add_argument("--max-completion", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="Run only these stages (names as in the table).")
    parser.add_argument("--keep-going", action="store_true", help="Go on after a failed stage.")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        run_missing(args)
    print(report(args.out))
    if args.plot:
        plot(args.out, args.plot)


if __name__ == "__main__":
    main()
