"""SAE run directories: the SAE, its config and metrics, and a pointer to the base run it reads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import from_dict, read_yaml, to_dict
from seqrec.errors import ConfigError, RunError
from seqrec.model_runs import Run, load_model_run
from seqrec.recommender import Recommender
from seqrec.run_folders import atomic, cpu_state, read_records, write_atomically
from seqrec.run_kinds import register_kind, write_run
from seqrec.steering.controls import PopSteerControl, Steering
from seqrec.steering.popsteer import NeuronStats
from seqrec.steering.sae import SAEConfig, TopKSAE
from seqrec.steering.steered import Interventions, ScoringMode, SteeredEncoder

SAE_CONFIG, SAE_WEIGHTS = "sae.yaml", "sae.safetensors"
PROBE_FILE = "probe-popularity.npz"  # the popularity probe `seqrec sae probe` caches in the run


@dataclass
class SAERun:
    """A trained SAE over the user vectors of `base`."""

    kind: ClassVar[str] = "sae"
    config: SAEConfig
    sae: TopKSAE
    base: Run
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def model_run(self) -> Run:
        return self.base

    @property
    def recommender(self) -> Recommender:
        """The base run's recommender with user vectors reconstructed through this SAE."""
        return self.steered("recon")

    @property
    def steering(self) -> dict[str, Steering]:
        """PopSteer when the SAE run holds a popularity probe; RecFTT when tuned runs are saved under it."""
        from seqrec.steering.tuned_run import recftt_control  # tuned runs point at SAE runs, not the reverse

        offered: list[Steering] = []
        if self.path is not None and (self.path / PROBE_FILE).is_file():
            offered.append(PopSteerControl(self.steered, NeuronStats.load(self.path / PROBE_FILE, self.sae.latents)))
        recftt = recftt_control(self)
        if recftt is not None:
            offered.append(recftt)
        return {control.name: control for control in offered}

    def steered(self, mode: ScoringMode = "recon", interventions: Interventions = None,
                mask_seen: bool | None = None) -> Recommender:
        """The base run's recommender with user vectors passed through this SAE and `interventions`; `mask_seen`
        None keeps the base run's protocol."""
        rec = self.base.recommender
        steered = SteeredEncoder(rec.model, self.sae.to(rec.model.device), mode, interventions)
        return Recommender(steered, rec.user_map, rec.item_map, rec.histories, rec.catalog,
                           mask_seen=rec.mask_seen if mask_seen is None else mask_seen)


def save_sae_run(run: SAERun, path: str | Path) -> Path:
    """Write `run` to the new directory `path`; the base run is referenced by a relative path."""
    run.path = write_atomically(Path(path), lambda tmp: write_run(run, tmp))
    return run.path


def relative_parent(parent: Path, folder: Path) -> str:
    """`parent` relative to `folder` (a new run or its temporary sibling), e.g. ".." for runs/x/sae-popsteer."""
    return os.path.relpath(Path(parent).resolve(), folder.resolve())


def read_meta(file: Path, fix: str) -> dict[str, Any]:
    """The YAML mapping of a derived run (sae.yaml, tune.yaml); damaged YAML raises RunError naming it and `fix`."""
    try:
        return read_yaml(file)
    except ConfigError as exc:
        raise RunError(f"{exc}; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{file} cannot be read ({exc}); {fix}") from None


def parent_dir(path: Path, file: str, meta: dict[str, Any], key: str, fix: str) -> Path:
    """The run directory that `meta[key]` (relative to `path`) points at; pointing at `path` itself is an error."""
    value = meta.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RunError(f"{path / file} is damaged ({key} must be the relative path of a run directory, got "
                       f"{value!r}); {fix}")
    parent = path / value
    try:
        itself = parent.resolve() == path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop
        raise RunError(f"{path / file}: {key}: {value} cannot be followed ({exc}); {fix}") from None
    if itself:
        raise RunError(f"{path / file}: {key}: {value} points at this run itself; it must name the directory "
                       f"this run was made from (for example `..`); {fix}")
    return parent


def load_parent_sae_run(path: Path, file: str, meta: dict[str, Any], fix: str, device: str = "cpu") -> SAERun:
    """The SAE run that a derived run (steered, tuned) at `path` points at with `meta["sae_run"]`; clear errors when
    it is missing or not an SAE run."""
    sae_path = parent_dir(path, file, meta, "sae_run", fix)
    if not sae_path.is_dir():
        raise RunError(f"the SAE run of {path} is missing (expected {sae_path.resolve()}); restore it or {fix}")
    if not is_sae_run(sae_path):
        raise RunError(f"{path / file}: sae_run {meta['sae_run']} ({sae_path}) is not an SAE run (expected "
                       f"{SAE_CONFIG} and {SAE_WEIGHTS} there); point it at the SAE run this run was made from or "
                       f"{fix}")
    return load_sae_run(sae_path, device=device)


def is_sae_run(path: Path) -> bool:
    return (path / SAE_CONFIG).is_file() and (path / SAE_WEIGHTS).is_file()


def load_sae_run(path: str | Path, device: str = "cpu") -> SAERun:
    """Restore an SAE run and its base run; clear errors when either is missing or they do not fit."""
    path = Path(path)
    if not is_sae_run(path):
        raise RunError(f"{path} is not an SAE run (expected {SAE_CONFIG} and {SAE_WEIGHTS}); "
                       "create one with `seqrec sae train RUN`")
    fix = "retrain the SAE"
    meta = read_meta(path / SAE_CONFIG, fix)
    base_path = parent_dir(path, SAE_CONFIG, meta, "base_run", fix)
    try:
        config = from_dict(SAEConfig, meta["sae"], "sae.")
        dim, latents = int(meta["dim"]), int(meta["latents"])
        if dim < 1 or latents < 1:
            raise ValueError(f"dim={dim} and latents={latents} must be positive")
        sae = TopKSAE(dim, latents, config.k)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunError(f"{path / SAE_CONFIG} is damaged ({exc}); {fix}") from None
    if not base_path.is_dir():
        raise RunError(f"the base run of {path} is missing (expected {base_path.resolve()}); "
                       "restore it or retrain the SAE on an existing run")
    if is_sae_run(base_path) or (base_path / "tune.yaml").is_file():
        raise RunError(f"{path / SAE_CONFIG}: base_run {meta['base_run']} is a derived run ({base_path}), not the "
                       f"trained model the SAE was made from; point it at that run or {fix}")
    try:
        base = load_model_run(base_path, device=device)
    except RunError as exc:
        raise RunError(f"the base run of {path} ({path / SAE_CONFIG}: base_run {meta['base_run']}) "
                       f"cannot be loaded: {exc}") from None
    if base.config.model.hidden != dim:
        raise RunError(f"{path} was trained on {dim}-dim user vectors but its base run {base_path} has "
                       f"hidden={base.config.model.hidden}; retrain the SAE on this run")
    try:
        state = load_file(str(path / SAE_WEIGHTS))
        sae.load_state_dict(state)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise RunError(f"{path / SAE_WEIGHTS} is damaged or does not match {SAE_CONFIG} ({exc}); "
                       "retrain the SAE") from None
    sae.to(device).eval()
    metrics, history = read_records(path)
    return SAERun(config, sae, base, metrics, history, path)


class SAEKind:
    """SAE runs: sae.yaml (settings and the relative path of the base run) and sae.safetensors."""

    name = "sae"
    settings_file = SAE_CONFIG
    extends: str | None = None
    label = ""
    recommends = True

    def recognise(self, path: Path) -> bool:
        return is_sae_run(path)

    def save(self, run: SAERun, folder: Path) -> dict[str, Any]:
        if run.base.path is None:
            raise RunError("save the base run before its SAE (the SAE run points at the base run directory)")
        atomic(folder)(SAE_WEIGHTS, lambda name: save_file(cpu_state(run.sae), name))
        return {"base_run": relative_parent(run.base.path, folder), "dim": run.sae.dim, "latents": run.sae.latents,
                "sae": to_dict(run.config)}

    def load(self, path: Path, device: str = "cpu", **options: Any) -> SAERun:
        return load_sae_run(path, device=device)


register_kind(SAEKind())
