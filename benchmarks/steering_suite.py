"""Steering across datasets and seeds: PopSteer against popularity re-weighting and RecFTT over every attribute
value, with every setting chosen on the validation split and judged on test.

    # one base run (trained with its shipped config and a seed): SAEs, probe, sweeps, tuning -> OUT/<name>.json
    python benchmarks/steering_suite.py run runs/ml-s0/sasrec-ml-1m-sas --out docs/steering_suite
    # every record in OUT: mean ± std over seeds per dataset, markdown tables and curve plots
    python benchmarks/steering_suite.py summarise docs/steering_suite

PopSteer: α and β are each chosen on validation (the most deep-long-tail coverage within 5% of the base NDCG@10)
and the curves are compared at equal NDCG@10 (`seqrec.steering.curves`). Diagnosis variants (`--variants`) rerun
the sweep with another probe size, neuron count or steering form on the same SAE. RecFTT: every attribute value
on 5% to 50% of the items is a target; λ and the latents per direction come from `auto_tune`'s grid on validation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from seqrec.api import run_data
from seqrec.runs import load_run
from seqrec.steering import SAEConfig, load_sae_run, probe, train_sae
from seqrec.steering.curves import choose_strength, compare_curves, turning_point
from seqrec.steering.pipeline import train_sae_sized
from seqrec.steering.popsteer import probe_popularity
from seqrec.steering.recftt import sweep_latents
from seqrec.steering.sae_run import is_sae_run
from seqrec.steering.sweep import popularity_sweep

ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
BETAS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
VARIANTS = {  # name -> probe profiles (None: the cached probe), PopularitySteering options, own SAE (suffix, settings)
    "default": (None, {}, None),
    "post-topk": (None, {"stage": "post"}, None),
    "per-user": (None, {"per_user": True}, None),
    "neurons-256": (None, {"neurons": 256}, None),
    "probe-86k": (86_016, {}, None),
    "probe-matched": ("matched", {}, None),  # PopSteer 2.0's embedding-matched profiles
    "probe-matched-post": ("matched", {"stage": "post"}, None),
    "sae-long": (None, {}, ("long", {"epochs": 100, "patience": 21, "plateau": 11})),  # PopSteer's schedule, shorter
    "sae-long-post": (None, {"stage": "post"}, ("long", {"epochs": 100, "patience": 21, "plateau": 11})),
    "item-side": (None, {}, ("item", {})),  # PopSteer 2.0's item SAE instead of the user SAE
}
ITEM_SAE = {"epochs": 300, "batch_size": 256, "patience": 10}  # the table is small: many cheap epochs


def item_side_rows(run, data, split, alphas, mask_seen: bool) -> tuple[list[dict], dict]:  # noqa: ANN001
    """PopSteer 2.0's item side at each α on `split` (base row first), and the item SAE's description."""
    from seqrec.evaluation.evaluate import evaluate
    from seqrec.steering import PopularitySteering
    from seqrec.steering.item_side import fit_item_sae, item_rows, item_steered, probe_items
    from seqrec.steering.sae_training import evaluate_fvu
    from seqrec.steering.sweep import SWEEP_METRICS

    model = run.model.eval()
    key = id(model)
    if key not in ITEM_CACHE:
        sae = fit_item_sae(model, SAEConfig(preset="popsteer", **ITEM_SAE))
        ITEM_CACHE[key] = (sae, probe_items(model, sae, data.item_stats.pop_scores),
                           evaluate_fvu(sae, item_rows(model))[0])
    sae, stats, item_fvu = ITEM_CACHE[key]

    def measure(method: str, strength: float, scorer) -> dict:  # noqa: ANN001
        metrics = evaluate(scorer, getattr(data, split), ks=(10,), mask_seen=mask_seen)
        return {"method": method, "strength": strength, **{m: metrics[m] for m in SWEEP_METRICS}}

    rows = [measure("base", 0.0, run.recommender)]
    rows += [measure("popsteer", a, item_steered(run, sae, PopularitySteering(stats, a))) for a in alphas]
    return rows, {"item_sae_fvu": item_fvu, "latents": sae.latents, "k": sae.k}


ITEM_CACHE: dict[int, tuple] = {}
LABELS = {  # what each variant is, for the tables
    "default": "random profiles, shift before top-k (the paper)",
    "post-topk": "random profiles, shift after top-k",
    "per-user": "random profiles, shift scaled per user",
    "neurons-256": "random profiles, 256 neurons",
    "probe-86k": "random profiles, 86,016 of them",
    "probe-matched": "embedding-matched profiles (the default probe), before top-k",
    "probe-matched-post": "embedding-matched profiles, after top-k",
    "sae-long": "random profiles, SAE on PopSteer's longer schedule",
    "sae-long-post": "random profiles, longer SAE schedule, after top-k",
    "item-side": "PopSteer 2.0's item-side SAE",
}
GRID = {"weight": (0.1, 1.0, 5.0), "latents": (100,)}


def sae_for(run, data, preset: str, overrides: dict, suffix: str = "", sized: bool = False):  # noqa: ANN001
    """The run's `sae-<preset>[-suffix]` SAE run, trained now when missing (so a stopped suite resumes); `sized`:
    the smallest of up to three doubling sizes that reconstructs well (`train_sae_sized`)."""
    folder = run.path / (f"sae-{preset}-{suffix}" if suffix else f"sae-{preset}")
    if is_sae_run(folder):
        return load_sae_run(folder)
    fit = train_sae_sized if sized else train_sae
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(run, SAEConfig(preset=preset, **overrides), data=data, output_dir=folder, progress=False)


def popsteer_part(run, data, variants: list[str], alphas, betas, sae_set: dict) -> dict:  # noqa: ANN001
    t = time.perf_counter()
    sae_run = sae_for(run, data, "popsteer", sae_set)
    out: dict = {"sae": sae_run.metrics, "sae_seconds": round(time.perf_counter() - t, 1), "variants": {}}
    stats, _ = probe(sae_run, data)
    reweight: dict[str, list[dict]] = {}
    for name in variants:
        profiles, options, own = VARIANTS[name]
        options = dict(options)
        neurons = options.pop("neurons", None)
        t = time.perf_counter()
        sae_used, result = sae_run, {}
        if name == "item-side":
            for split in ("valid", "test"):
                if split not in reweight:
                    reweight[split] = [r for r in popularity_sweep(sae_run, getattr(data, split), stats, (), betas,
                                                                   mask_seen=run.config.eval.mask_seen)
                                       if r["method"] == "reweight"]
                rows, result["item_sae"] = item_side_rows(run, data, split, alphas, run.config.eval.mask_seen)
                rows += reweight[split]
                result[split] = {"rows": rows, "comparison": compare_curves(rows), "turn": turning_point(rows)}
            finish(result, t)
            out["variants"][name] = result
            continue
        if own is not None:
            sae_used = sae_for(run, data, "popsteer", {**sae_set, **own[1]}, own[0])
            result["sae"] = sae_used.metrics
        if profiles is None:
            used = probe(sae_used, data)[0] if own is not None else stats
        else:
            matched = profiles == "matched"
            used = probe_popularity(sae_run.base.model.eval(), sae_run.sae, data.train, data.item_stats,
                                    profiles=8192 if matched else profiles, matched=matched)
        result["probe_profiles"] = used.profiles
        for split in ("valid", "test"):
            rows = popularity_sweep(sae_used, getattr(data, split), used, alphas, betas if split not in reweight
                                    else (), neurons, "delta", run.config.eval.mask_seen, **options)
            if split in reweight:
                rows += reweight[split]
            else:
                reweight[split] = [r for r in rows if r["method"] == "reweight"]
            result[split] = {"rows": rows, "comparison": compare_curves(rows), "turn": turning_point(rows)}
        finish(result, t)
        out["variants"][name] = result
    return out


def finish(result: dict, start: float) -> None:
    """The settings chosen on validation with their test rows; the time taken."""
    recompute({"popsteer": {"variants": {"this": result}}})
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"  popsteer variant: {result['seconds']} s; test comparison {result['test']['comparison']}", flush=True)


def attribute_targets(catalog, low: float = 0.05, high: float = 0.5) -> list[tuple[str, float]]:  # noqa: ANN001
    """Attribute values carried by `low`..`high` of the items (a value on most items is not a target)."""
    counts: dict[str, int] = defaultdict(int)
    for name in catalog.attributes:
        for values in catalog.attributes[name][1:]:
            for v in set(values):
                counts[v] += 1
    n = catalog.num_items
    return sorted(((v, c / n) for v, c in counts.items() if low <= c / n <= high), key=lambda x: -x[1])


def recftt_part(run, data, grid: dict, limit: int, sae_set: dict, sized: bool = False) -> dict:  # noqa: ANN001
    from seqrec.search.tune_search import auto_tune

    targets = attribute_targets(data.catalog)[:limit or None]
    if not targets:
        return {"skipped": "no attribute value is on 5% to 50% of the items"}
    t = time.perf_counter()
    sae_run = sae_for(run, data, "recftt", sae_set, "sized" if sized else "", sized)
    out: dict = {"sae": sae_run.metrics, "sae_seconds": round(time.perf_counter() - t, 1), "targets": {}}
    values = [v for v, _ in targets]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep_latents(sae_run, values, data, split="valid")
    out["sweep_warnings"] = [str(w.message) for w in caught]
    for value, share in targets:
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = auto_tune(sae_run.path, targets=[value], grid=grid, progress=False,
                                study=f"suite-{value}".replace(" ", "_"))
        best = outcome.best
        trials = [{"params": tr.params, "value": tr.value, "overall_drop": tr.user_attrs.get("overall_drop"),
                   "feasible": tr.user_attrs.get("feasible")} for tr in outcome.study.get_trials(deepcopy=False)]
        record = {"share": share, "params": best.params if best else None, "trials": trials,
                  "warnings": sorted({str(w.message) for w in caught}), "seconds": round(time.perf_counter() - t, 1)}
        if best is not None:
            for split in ("valid", "test"):
                base = best.user_attrs["base_valid"] if split == "valid" else None
                tuned = best.user_attrs[split]
                record[split] = {"tuned_target": tuned[f"{value}_NDCG@10"], "tuned_overall": tuned["NDCG@10"]}
                if base is not None:
                    record[split] |= {"base_target": base[f"{value}_NDCG@10"], "base_overall": base["NDCG@10"]}
            tuned_run = json.loads((outcome.folder / best.user_attrs["run"] / "metrics.json").read_text())
            test_base = tuned_run["test"]["base"]
            record["test"] |= {"base_target": test_base[f"{value}_NDCG@10"], "base_overall": test_base["NDCG@10"]}
        out["targets"][value] = record
        print(f"  recftt {value} ({share:.1%} of items): {record.get('params')} test {record.get('test')} "
              f"[{record['seconds']} s]", flush=True)
    return out


def run_one(args: argparse.Namespace) -> None:
    run = load_run(args.run)
    data = run_data(run)
    name = f"{data.name}-seed{run.config.train.seed}"
    out = args.out / f"{name}.json"
    record = json.loads(out.read_text()) if out.exists() else {}
    record |= {"run": str(args.run), "dataset": data.name, "seed": run.config.train.seed,
               "threads": torch.get_num_threads(), "base_test": run.metrics.get("test", {}),
               "base_epochs": len(run.history)}
    args.out.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    sae_set = {k: type(getattr(SAEConfig(), k))(v) for k, v in (s.split("=", 1) for s in args.sae_set)}
    record["sae_settings"] = sae_set
    if "popsteer" in args.parts and not set(variants) <= set(record.get("popsteer", {}).get("variants", {})):
        done = record.get("popsteer", {}).get("variants", {})
        part = popsteer_part(run, data, [v for v in variants if v not in done], ALPHAS, BETAS, sae_set)
        record["popsteer"] = {**part, "variants": {**done, **part["variants"]}}
        out.write_text(json.dumps(record, indent=1))
    if "recftt" in args.parts and "recftt" not in record:
        record["recftt"] = recftt_part(run, data, GRID, args.limit, sae_set, args.sized)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


def mean_std(values: list[float], fmt: str = "{:.3f}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.replace('+', '').format(statistics.stdev(values))}"


def popsteer_table(records: list[dict], variant: str) -> list[str]:
    lines = ["| dataset | seeds | base NDCG@10 | α (valid) | NDCG@10 | deep-LT ×base | Gini | β (valid) | NDCG@10 "
             "| deep-LT ×base | Gini | window compared | deep-LT margin: mean / min | Gini margin: mean / min "
             "| at or above (both) | curve turns after α |", "|---" * 16 + "|"]
    for dataset, group in grouped(records).items():
        rows = [r["popsteer"]["variants"][variant] for r in group if variant in r.get("popsteer", {}).get(
            "variants", {})]
        if not rows:
            continue
        base = [next(x for x in v["test"]["rows"] if x["method"] == "base") for v in rows]
        cells = [dataset, str(len(rows)), mean_std([b["NDCG@10"] for b in base], "{:.4f}")]
        for method in ("popsteer", "reweight"):
            chosen = [v["chosen"][method] for v in rows]
            cells.append(", ".join("–" if c is None else f"{c['strength']:g}" for c in chosen))
            cells.append(mean_std([c and c["NDCG@10"] for c in chosen], "{:.4f}"))
            cells.append(mean_std([c and c["deep_lt_coverage@10"] / b["deep_lt_coverage@10"]
                                   for c, b in zip(chosen, base, strict=True)], "{:.3f}"))
            cells.append(mean_std([c and c["gini@10"] for c in chosen]))
        comps = [v["test"]["comparison"] for v in rows]
        cells.append(mean_std([c["coverage"] for c in comps], "{:.0%}"))
        for metric in ("deep_lt_coverage@10", "gini@10"):
            parts = [c[metric] for c in comps if c[metric]]
            cells.append(f"{mean_std([p['mean_margin'] for p in parts], '{:+.3f}')} / "
                         f"{mean_std([p['min_margin'] for p in parts], '{:+.3f}')}")
        both = sum(bool(c["deep_lt_coverage@10"] and c["gini@10"] and c["deep_lt_coverage@10"]["at_or_above"]
                        and c["gini@10"]["at_or_above"]) for c in comps)
        cells.append(f"{both} of {len(comps)}")
        cells.append(", ".join("–" if v["valid"]["turn"] is None else f"{v['valid']['turn']:g}" for v in rows))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def recftt_table(records: list[dict]) -> list[str]:
    lines = ["| dataset | seeds | targets | SAE cost (valid NDCG@10) | valid FVU | median target gain | mean | worst "
             "| overall change: mean / worst | λ chosen |", "|---" * 10 + "|"]
    for dataset, group in grouped(records).items():
        parts = [r["recftt"] for r in group if "recftt" in r and "targets" in r["recftt"]]
        if not parts:
            skipped = next((r["recftt"].get("skipped") for r in group if "recftt" in r), None)
            if skipped:
                lines.append(f"| {dataset} | – | {skipped} |" + " |" * 7)
            continue
        medians, means, worsts, overall, worst_overall, lambdas, costs, fvus = ([] for _ in range(8))
        for p in parts:
            gains = [t["test"]["tuned_target"] / t["test"]["base_target"] - 1 for t in p["targets"].values()
                     if "test" in t and t["test"]["base_target"] > 0]
            changes = [t["test"]["tuned_overall"] / t["test"]["base_overall"] - 1 for t in p["targets"].values()
                       if "test" in t]
            medians.append(float(np.median(gains)))
            means.append(float(np.mean(gains)))
            worsts.append(min(gains))
            overall.append(float(np.mean(changes)))
            worst_overall.append(min(changes))
            lambdas += [t["params"]["weight"] for t in p["targets"].values() if t.get("params")]
            m = p["sae"]
            costs.append(1 - m["valid_sae_NDCG@10"] / m["valid_base_NDCG@10"])
            fvus.append(m["valid_fvu"])
        counts = {w: lambdas.count(w) for w in sorted(set(lambdas))}
        sizes = ", ".join(str(len(p["targets"])) for p in parts)
        lines.append(f"| {dataset} | {len(parts)} | {sizes} | {mean_std(costs, '{:.1%}')} | "
                     f"{mean_std(fvus)} | {mean_std(medians, '{:+.1%}')} | {mean_std(means, '{:+.1%}')} | "
                     f"{mean_std(worsts, '{:+.1%}')} | {mean_std(overall, '{:+.1%}')} / "
                     f"{mean_std(worst_overall, '{:+.1%}')} | "
                     + ", ".join(f"{w:g}: {c}" for w, c in counts.items()) + " |")
    return lines


def grouped(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["dataset"], r["seed"])):
        groups[r["dataset"]].append(r)
    return dict(groups)


def plot_curves(records: list[dict], variant: str, folder: Path) -> list[Path]:
    """Per dataset: test NDCG@10 against deep-LT coverage and Gini, PopSteer and re-weighting, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for dataset, group in grouped(records).items():
        runs = [r for r in group if variant in r.get("popsteer", {}).get("variants", {})]
        if not runs:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
        for i, r in enumerate(runs):
            rows = r["popsteer"]["variants"][variant]["test"]["rows"]
            base = next(x for x in rows if x["method"] == "base")
            for ax, metric in zip(axes, ("deep_lt_coverage@10", "gini@10"), strict=True):
                for method, color in (("popsteer", "tab:blue"), ("reweight", "tab:orange")):
                    pts = [base] + sorted((x for x in rows if x["method"] == method), key=lambda x: x["strength"])
                    pts = [p for p in pts if p["NDCG@10"] >= 0.8 * base["NDCG@10"]]
                    ax.plot([p[metric] for p in pts], [p["NDCG@10"] for p in pts], color=color, marker="o",
                            markersize=3, alpha=0.8, linestyle=("-", "--", ":")[i % 3],
                            label=f"{'PopSteer' if method == 'popsteer' else 're-weighting'} seed {r['seed']}")
                ax.axhline(0.95 * base["NDCG@10"], color="gray", lw=0.6, ls=":")
                ax.set_xlabel(metric.replace("_", " ") + (" (lower is fairer)" if "gini" in metric else ""))
                ax.grid(alpha=0.3)
        axes[0].set_ylabel("test NDCG@10")
        axes[0].legend(fontsize=6)
        fig.suptitle(f"{dataset}: PopSteer ({LABELS.get(variant, variant)}) vs re-weighting; dotted: 5% below base",
                     fontsize=9)
        fig.tight_layout()
        file = folder / f"{dataset}_{variant}.png"
        fig.savefig(file)
        plt.close(fig)
        files.append(file)
    return files


def recompute(record: dict) -> dict:
    """Comparisons, turns and validated choices from the stored rows with this code (records of earlier runs)."""
    for result in record.get("popsteer", {}).get("variants", {}).values():
        for split in ("valid", "test"):
            rows = result[split]["rows"]
            result[split] |= {"comparison": compare_curves(rows), "turn": turning_point(rows)}
        chosen = {m: choose_strength(result["valid"]["rows"], m) for m in ("popsteer", "reweight")}
        result["chosen"] = {m: (None if r is None else next(
            x for x in result["test"]["rows"] if x["method"] == m and x["strength"] == r["strength"]))
            for m, r in chosen.items()}
    return record


def summarise(args: argparse.Namespace) -> None:
    records = [recompute(json.loads(p.read_text())) for p in sorted(args.folder.glob("*.json"))
               if p.name != "summary.json"]
    text = []
    variants = sorted({v for r in records for v in r.get("popsteer", {}).get("variants", {})},
                      key=lambda v: list(VARIANTS).index(v))
    for variant in variants:
        text += [f"**PopSteer ({LABELS[variant]}) against re-weighting**, test split", "",
                 *popsteer_table(records, variant), ""]
        plot_curves(records, variant, args.folder)
    text += ["**RecFTT over attribute values on 5-50% of the items**, test split", "", *recftt_table(records)]
    (args.folder / "summary.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="steer one base run")
    one.add_argument("run", type=Path)
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--parts", default="popsteer,recftt")
    one.add_argument("--variants", default="default")
    one.add_argument("--limit", type=int, default=0, help="at most this many RecFTT targets (largest first)")
    one.add_argument("--threads", type=int, default=0)
    one.add_argument("--sae-set", action="append", default=[], help="SAE setting key=value for both presets")
    one.add_argument("--sized", action="store_true", help="RecFTT's SAE grows until it reconstructs well")
    summary = sub.add_parser("summarise", help="tables and plots over the records in a folder")
    summary.add_argument("folder", type=Path)
    args = parser.parse_args()
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    run_one(args) if args.command == "run" else summarise(args)


if __name__ == "__main__":
    main()
