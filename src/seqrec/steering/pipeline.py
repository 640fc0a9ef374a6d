"""The steering workflow on run directories: train an SAE on a run, probe a concept, build a steered recommender
or save a steered run."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from seqrec.data.splits import SplitData
from seqrec.errors import RunError, SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.model_runs import Run, load_model_run, run_data
from seqrec.recommender import Recommender
from seqrec.run_folders import unique_run_dir
from seqrec.steering.activations import position_vectors, sample_prefixes, user_vectors
from seqrec.steering.interventions import Stage
from seqrec.steering.popsteer import (
    DEFAULT_STAGE,
    PROBE_FIX,
    NeuronStats,
    PopularitySteering,
    check_concept,
    label_settings,
    probe_popularity,
    settings_mismatch,
)
from seqrec.steering.sae import SAEConfig
from seqrec.steering.sae_run import SAERun, load_sae_run, save_sae_run
from seqrec.steering.sae_training import evaluate_fvu, fit_sae
from seqrec.steering.steered import ScoringMode
from seqrec.steering.steered_run import SteerConfig, SteeredRun, save_steered_run, steered_run_name

SUMMARY_METRICS = ("NDCG@10", "HR@10")
MAX_RECONSTRUCTION_COST = 0.03  # warn when scoring through the reconstruction loses more of valid NDCG@10
MAX_FVU = 0.1  # warn when the SAE leaves more of the validation vectors' variance unexplained
DEFAULT_PROFILES = 8192  # synthetic profiles per polarity when nothing is cached or asked for
DEFAULT_MATCHED = True  # embedding-matched profiles unless asked otherwise (see "When steering works")


def training_vectors(run: Run, data: SplitData, config: SAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """SAE inputs from the frozen encoder: training vectors per `config.source`; validation users' vectors."""
    model = run.model.eval()
    rng = np.random.default_rng(config.seed)
    if config.source == "all":
        train = position_vectors(model, data.train, config.max_vectors, rng)
    else:
        train = user_vectors(model, sample_prefixes(data.train, config.max_vectors, rng, model.max_len))
    valid_users = data.valid.histories
    if len(valid_users) > config.valid_vectors:
        valid_users = valid_users.take(np.sort(rng.choice(len(valid_users), config.valid_vectors, replace=False)))
    return train.to(model.device), user_vectors(model, valid_users).to(model.device)


def train_sae(run: Run | str | Path, config: SAEConfig | None = None, data: SplitData | None = None,
              output_dir: str | Path | None = None, progress: bool = True, save: bool = True) -> SAERun:
    """Fit an SAE on a trained run's user vectors and report FVU, dead latents, base vs reconstructed accuracy.

    Saved to `output_dir` (default: a new `sae-<preset>` folder inside the base run) when the base run is on disk
    and `save`.
    """
    run = load_model_run(run) if isinstance(run, str | Path) else run
    config = config or SAEConfig()
    data = run_data(run, data=data)
    train, valid = training_vectors(run, data, config)
    fit = fit_sae(train, valid, config, progress=progress)
    train_fvu, dead = evaluate_fvu(fit.sae, train)
    valid_fvu, _ = evaluate_fvu(fit.sae, valid)
    sae_run = SAERun(config, fit.sae, run, history=fit.history)
    ec = run.config.eval
    metrics: dict = {"train_fvu": train_fvu, "valid_fvu": valid_fvu, "dead_ratio": dead,
                     "train_vectors": len(train), "best_epoch": fit.best_epoch, "seconds": round(fit.seconds, 2)}
    for split in ("valid", "test"):
        for name, scorer in (("base", run.recommender), ("sae", sae_run.recommender)):
            result = evaluate(scorer, getattr(data, split), ks=(10,), metrics="accuracy", mask_seen=ec.mask_seen)
            metrics |= {f"{split}_{name}_{m}": result[m] for m in SUMMARY_METRICS}
    metrics["warnings"] = sae_quality_warnings(metrics)
    for message in metrics["warnings"]:
        warnings.warn(message, stacklevel=2)
    sae_run.metrics = metrics
    if save:
        save_in_base(sae_run, output_dir)
    return sae_run


def save_in_base(sae_run: SAERun, output_dir: str | Path | None) -> None:
    """Save to `output_dir`, default a new `sae-<preset>` folder inside the base run, when the base run is on disk."""
    if sae_run.base.path is not None:
        save_sae_run(sae_run, Path(output_dir) if output_dir else unique_run_dir(sae_run.base.path,
                                                                                 f"sae-{sae_run.config.preset}"))


def train_sae_sized(run: Run | str | Path, config: SAEConfig | None = None, data: SplitData | None = None,
                    output_dir: str | Path | None = None, progress: bool = True, sizes: int = 3) -> SAERun:
    """The smallest SAE that reconstructs well: the preset's size first, then twice the latents and k, up to
    `sizes` sizes, stopping at the first whose reconstruction costs at most 3% of validation NDCG@10 with a
    validation FVU of at most 0.1 (else the one that costs least). Every size tried is recorded in the chosen
    run's metrics (`sizes_tried`); only the chosen one is saved."""
    run = load_model_run(run) if isinstance(run, str | Path) else run
    config = config or SAEConfig()
    data = run_data(run, data=data)
    tried: list[tuple[SAERun, list[str]]] = []
    for step in range(max(1, sizes)):
        size = replace(config, scale=config.scale * 2**step, k=config.k * 2**step)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            candidate = train_sae(run, size, data=data, progress=progress, save=False)
        tried.append((candidate, [str(w.message) for w in caught]))
        if not candidate.metrics["warnings"]:
            break
    chosen, messages = min(tried, key=lambda t: (bool(t[0].metrics["warnings"]), reconstruction_cost(t[0].metrics)))
    for message in messages:
        warnings.warn(message, stacklevel=2)
    chosen.metrics["sizes_tried"] = [
        {"latents": c.sae.latents, "k": c.config.k, "valid_fvu": c.metrics["valid_fvu"],
         "valid_cost": reconstruction_cost(c.metrics)} for c, _ in tried]
    save_in_base(chosen, output_dir)
    return chosen


def reconstruction_cost(metrics: dict) -> float:
    """The share of validation NDCG@10 lost by scoring through the SAE's reconstruction."""
    base = metrics["valid_base_NDCG@10"]
    return 1.0 - metrics["valid_sae_NDCG@10"] / base if base > 0 else 0.0


def sae_quality_warnings(metrics: dict, max_cost: float = MAX_RECONSTRUCTION_COST, max_fvu: float = MAX_FVU
                         ) -> list[str]:
    """What a user of this SAE should know: a reconstruction that costs accuracy, or a high validation FVU."""
    found = []
    base, sae = metrics["valid_base_NDCG@10"], metrics["valid_sae_NDCG@10"]
    cost = reconstruction_cost(metrics)
    if cost > max_cost:
        found.append(f"scoring through this SAE's reconstruction costs {cost:.1%} of validation NDCG@10 ({base:.4f} "
                     f"-> {sae:.4f}): the SAE run's own recommender and `recon` steering carry that loss (`delta` "
                     "steering does not); `seqrec sae train --auto-size` doubles the latents and k until it "
                     "reconstructs well")
    if metrics["valid_fvu"] > max_fvu:
        found.append(f"the SAE leaves {metrics['valid_fvu']:.1%} of the validation vectors' variance unexplained "
                     f"(FVU above {max_fvu:.0%}): its latents describe the users only roughly, so steering them "
                     "moves less than the model knows; try `--auto-size` (more latents and a larger k) or more "
                     "training vectors")
    return found


def probe(sae_run: SAERun, data: SplitData | None = None, concept: str = "popularity", profiles: int | None = None,
          seed: int | None = None, matched: bool | None = None) -> tuple[NeuronStats, bool]:
    """Neuron statistics for `concept`, read from the SAE run if already probed, else computed (and saved).

    Returns the statistics and whether they were computed now; `stats.describe()` says which settings produced
    them. The cache, `probe-<concept>.npz` in the SAE run, records those settings (profiles asked for, seed, and
    a fingerprint of the head/tail item labels the profiles are drawn from):

    - `matched`: embedding-matched profiles (PopSteer 2.0, the default) or random ones (PopSteer); None, like
      `profiles` and `seed`, takes the cached probe's.
    - `profiles` / `seed` left as None (what `steer` and `popsteer` do): an existing probe is reused whatever its
      size or seed — steering should use the probe the user made with `seqrec sae probe`, not silently redo it
      with other settings. Without a cache, 8192 profiles and seed 0.
    - `profiles` / `seed` given (what `seqrec sae probe --profiles N` does): the cache is reused only when it was
      made with exactly those; otherwise the probe is recomputed and replaces it, with a warning that says which
      settings differed.
    - with `data`, the head/tail labels must match too (other labels select other neurons); a mismatch is
      recomputed, keeping the cache's profiles and seed unless given.
    - a damaged cache (truncated file, missing array, other neuron count) is recomputed with a warning.
    Writes are atomic, so an interrupted probe never leaves a half-written cache.
    """
    check_concept(concept)
    file = sae_run.path / f"probe-{concept}.npz" if sae_run.path else None
    cached = None
    if file is not None and file.exists():
        try:
            cached = NeuronStats.load(file, sae_run.sae.latents)
        except RunError as exc:
            warnings.warn(str(exc).removesuffix(f"; {PROBE_FIX}") + "; recomputing it", stacklevel=2)
    wanted = {"profiles": profiles, "seed": seed, "matched": matched,
              **(label_settings(data.item_stats) if data is not None else {})}
    if cached is not None:
        differ = settings_mismatch(cached.settings, wanted)
        if not differ:
            return cached, False
        warnings.warn(f"{file} was computed with other settings ({differ}); recomputing it", stacklevel=2)
        profiles = profiles if profiles is not None else cached.settings.get("profiles", cached.profiles)
        seed = seed if seed is not None else cached.settings.get("seed", 0)
        matched = matched if matched is not None else cached.settings.get("matched", False)
    data = run_data(sae_run.base, data=data)
    model = sae_run.base.model.eval()
    stats = probe_popularity(model, sae_run.sae, data.train, data.item_stats,
                             profiles=DEFAULT_PROFILES if profiles is None else profiles, seed=seed or 0,
                             matched=DEFAULT_MATCHED if matched is None else matched)
    if file is not None:
        stats.save(file)
    return stats, True


def popsteer(sae_run: SAERun | str | Path, alpha: float = 1.5, neurons: int | None = None,
             mode: ScoringMode = "delta", data: SplitData | None = None, stats: NeuronStats | None = None,
             stage: Stage = DEFAULT_STAGE) -> Recommender:
    """A recommender whose popularity neurons are steered with strength `alpha` (PopSteer Eq. 3/4) at `stage`."""
    sae_run = load_sae_run(sae_run) if isinstance(sae_run, str | Path) else sae_run
    if stats is None:
        stats, _ = probe(sae_run, data)
    if len(stats.mean_pop) != sae_run.sae.latents:
        raise RunError(f"the probe has {len(stats.mean_pop)} neurons but the SAE has {sae_run.sae.latents}")
    return sae_run.steered(mode, PopularitySteering(stats, alpha, neurons, stage))


def popsteer_run(sae_run: SAERun | str | Path, alpha: float = 1.5, neurons: int | None = None,
                 mode: ScoringMode = "delta", split: str = "test", mask_seen: bool | None = None,
                 data: SplitData | None = None, stats: NeuronStats | None = None,
                 output_dir: str | Path | None = None, stage: Stage = DEFAULT_STAGE) -> SteeredRun:
    """PopSteer at one setting as a run: measured on `split` (at the base run's cut-offs and k=10, so its numbers
    are `seqrec steer`'s) and, when the SAE run is on disk, saved to `output_dir` (default: a new
    `steered-popularity-a<α>` folder inside the SAE run) with the probe statistics, so it serves without data."""
    sae_run = load_sae_run(sae_run) if isinstance(sae_run, str | Path) else sae_run
    if split not in ("valid", "test"):
        raise SeqrecError(f"split must be valid or test, got {split!r}")
    data = run_data(sae_run.base, data=data)
    if stats is None:
        stats, _ = probe(sae_run, data)
    ec = sae_run.base.config.eval
    config = SteerConfig(alpha=alpha, neurons=neurons, mode=mode, mask_seen=ec.mask_seen if mask_seen is None
                         else mask_seen, stage=stage)
    run = SteeredRun(config, stats, sae_run)
    ks = tuple(sorted({*ec.ks, 10}))
    measured = getattr(data, split)
    run.metrics = {split: evaluate(run.recommender, measured, ks=ks, mask_seen=config.mask_seen,
                                   chunk_size=ec.chunk_size),
                   "protocol": {"dataset": data.name, "split": split, "users": len(measured),
                                "ranking": "full catalogue", "seen_items_masked": config.mask_seen, "ks": list(ks),
                                "max_len": sae_run.base.model.max_len, "probe": stats.describe()}}
    if sae_run.path is not None:
        target = Path(output_dir) if output_dir else unique_run_dir(sae_run.path, steered_run_name(config))
        save_steered_run(run, target)
    return run
