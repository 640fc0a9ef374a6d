"""Steered-run directories (the `steered` kind): PopSteer at a saved setting over an SAE run, servable without data.

A steered run holds steer.yaml (its settings and the relative path of the SAE run), the probe's per-neuron
statistics (probe-popularity.npz and .csv) and metrics.json with its metrics at that setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from seqrec.config import check_finite, from_dict, to_dict
from seqrec.errors import ConfigError, RunError, SeqrecError
from seqrec.model_runs import Run
from seqrec.recommender import Recommender
from seqrec.run_folders import read_records, write_atomically
from seqrec.run_kinds import register_kind, write_run
from seqrec.steering.controls import DEFAULT_ALPHA, PopSteerControl, Steering
from seqrec.steering.interventions import STAGES, Stage
from seqrec.steering.popsteer import DEFAULT_STAGE, NeuronStats, PopularitySteering, check_concept
from seqrec.steering.sae_run import (
    PROBE_FILE,
    SAERun,
    load_parent_sae_run,
    read_meta,
    relative_parent,
)
from seqrec.steering.steered import ScoringMode

STEER_CONFIG = "steer.yaml"


@dataclass
class SteerConfig:
    """One PopSteer setting: the concept, α, the neurons steered (None = all), the scoring mode, and whether the
    run's recommendations and metrics leave out items a user has seen."""

    concept: str = "popularity"
    alpha: float = DEFAULT_ALPHA
    neurons: int | None = None
    mode: ScoringMode = "delta"
    mask_seen: bool = True
    stage: Stage = DEFAULT_STAGE

    def __post_init__(self) -> None:
        check_finite(self, "steer")
        if self.stage not in STAGES:
            raise ConfigError(f"steer.stage must be pre or post, got {self.stage!r}")
        try:
            check_concept(self.concept)
        except SeqrecError as exc:
            raise ConfigError(f"steer.concept: {exc}") from None
        if self.mode not in ("recon", "delta"):
            raise ConfigError(f"steer.mode must be delta or recon, got {self.mode!r}")
        if self.alpha < 0 or (self.neurons is not None and self.neurons < 1):
            raise ConfigError(f"steer.alpha must be >= 0 and steer.neurons >= 1; got {self.alpha}, {self.neurons}")


@dataclass
class SteeredRun:
    """An SAE run's recommender with popularity neurons steered at `config`, and the probe statistics it uses."""

    kind: ClassVar[str] = "steered"
    config: SteerConfig
    stats: NeuronStats
    sae_run: SAERun
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def model_run(self) -> Run:
        return self.sae_run.base

    @property
    def recommender(self) -> Recommender:
        """PopSteer at the saved α and neurons."""
        return self.control().recommender()

    @property
    def steering(self) -> dict[str, Steering]:
        """PopSteer at a requested α and number of neurons; the saved setting is the default."""
        control = self.control()
        return {control.name: control}

    def control(self) -> PopSteerControl:
        steer = partial(self.sae_run.steered, mask_seen=self.config.mask_seen)
        return PopSteerControl(steer, self.stats, self.config.mode, self.config.alpha, self.config.neurons,
                               self.config.stage)


def steered_run_name(config: SteerConfig) -> str:
    """steered-popularity-a1.5, steered-popularity-a2-n64 (recon mode adds -recon, a stage other than the
    default adds it, e.g. -post)."""
    name = f"steered-{config.concept}-a{config.alpha:g}"
    name += f"-n{config.neurons}" if config.neurons is not None else ""
    name += f"-{config.stage}" if config.stage != DEFAULT_STAGE else ""
    return name + ("-recon" if config.mode == "recon" else "")


def save_steered_run(run: SteeredRun, path: str | Path) -> Path:
    """Write `run` to the new directory `path` (the SAE run is referenced by a relative path)."""
    run.path = write_atomically(Path(path), lambda tmp: write_run(run, tmp))
    return run.path


def is_steered_run(path: Path) -> bool:
    return (path / STEER_CONFIG).is_file() and (path / PROBE_FILE).is_file()


def load_steered_run(path: str | Path, device: str = "cpu") -> SteeredRun:
    """Restore a steered run with its SAE run and base run; clear errors for missing or damaged files."""
    path = Path(path)
    if not is_steered_run(path):
        raise RunError(f"{path} is not a steered run (expected {STEER_CONFIG} and {PROBE_FILE}); create one with "
                       "`seqrec steer SAE_RUN --alpha A --save`")
    fix = "steer again (`seqrec steer SAE_RUN --alpha A --save`)"
    meta = read_meta(path / STEER_CONFIG, fix)
    try:
        settings = {"stage": "pre", **{k: v for k, v in meta.items() if k not in ("kind", "sae_run")}}  # older: pre
        config = from_dict(SteerConfig, settings, "steer.")
    except (TypeError, ValueError, ConfigError) as exc:
        raise RunError(f"{path / STEER_CONFIG} is damaged ({exc}); {fix}") from None
    sae_run = load_parent_sae_run(path, STEER_CONFIG, meta, fix, device)
    stats = NeuronStats.load(path / PROBE_FILE, sae_run.sae.latents)
    try:
        PopularitySteering(stats, config.alpha, config.neurons, config.stage)
    except SeqrecError as exc:
        raise RunError(f"{path / STEER_CONFIG} does not fit its SAE run ({exc}); {fix}") from None
    metrics, history = read_records(path)
    return SteeredRun(config, stats, sae_run, metrics, history, path)


class SteeredKind:
    """Steered runs: steer.yaml (settings and the relative path of the SAE run) and the probe statistics."""

    name = "steered"
    settings_file = STEER_CONFIG
    extends: str | None = None
    label = ""
    recommends = True

    def recognise(self, path: Path) -> bool:
        return is_steered_run(path)

    def save(self, run: SteeredRun, folder: Path) -> dict[str, Any]:
        if run.sae_run.path is None:
            raise RunError("save the SAE run before a steered run of it (the steered run points at the SAE run)")
        run.stats.save(folder / PROBE_FILE)
        return {"sae_run": relative_parent(run.sae_run.path, folder), **to_dict(run.config)}

    def load(self, path: Path, device: str = "cpu", **options: Any) -> SteeredRun:
        return load_steered_run(path, device=device)


register_kind(SteeredKind())
