"""Tuned-run directories: the latent controller, its config and metrics, and a pointer to the SAE run it steers."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import from_dict, to_dict
from seqrec.errors import ConfigError, RunError
from seqrec.model_runs import Run
from seqrec.recommender import Recommender
from seqrec.run_folders import atomic, cpu_state, read_records, write_atomically
from seqrec.run_kinds import register_kind, write_run
from seqrec.steering.controls import ControllerSource, RecFTTControl, Steering
from seqrec.steering.sae_run import (
    SAERun,
    load_parent_sae_run,
    read_meta,
    relative_parent,
)
from seqrec.steering.tuning import LatentController, TuneConfig

TUNE_CONFIG, TUNE_WEIGHTS = "tune.yaml", "controller.safetensors"


@dataclass
class TunedRun:
    """A controller over `latents` of an SAE run's SAE."""

    kind: ClassVar[str] = "tuned"
    config: TuneConfig
    controller: LatentController
    sae_run: SAERun
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def model_run(self) -> Run:
        return self.sae_run.base

    @property
    def recommender(self) -> Recommender:
        """The base run's recommender with user vectors moved by the controller."""
        device = self.sae_run.base.model.device
        return self.sae_run.steered("delta", self.controller.to(device))

    @property
    def steering(self) -> dict[str, Steering]:
        """RecFTT over the tunings saved beside this one under its SAE run (this one by default)."""
        control = recftt_control(self.sae_run, self)
        return {} if control is None else {control.name: control}


def recftt_control(sae_run: SAERun, tuned: TunedRun | None = None) -> RecFTTControl | None:
    """RecFTT steering over the tuned runs saved in `sae_run`'s folder (and `tuned`, the default); None if none."""
    device = str(sae_run.base.model.device)
    sources: dict[str, ControllerSource] = {}
    if sae_run.path is not None and sae_run.path.is_dir():
        for folder in sorted(sae_run.path.iterdir()):
            if not folder.name.startswith(".") and is_tuned_run(folder):
                sources[folder.name] = partial(read_controller, folder, sae_run.sae.latents, device=device)
    default = None
    if tuned is not None:
        default = tuned.path.name if tuned.path is not None else "unsaved"
        sources[default] = partial(tuned.controller.to, device)
    return RecFTTControl(sae_run.steered, sources, default) if sources else None


def save_tuned_run(run: TunedRun, path: str | Path) -> Path:
    """Write `run` to the new directory `path` (the SAE run is referenced by a relative path)."""
    run.path = write_atomically(Path(path), lambda tmp: write_run(run, tmp))
    return run.path


def load_tuned_run(path: str | Path, device: str = "cpu") -> TunedRun:
    """Restore a tuned run with its SAE run and base run."""
    path = Path(path)
    if not is_tuned_run(path):
        raise RunError(f"{path} is not a tuned run (expected {TUNE_CONFIG} and {TUNE_WEIGHTS}); "
                       "create one with `seqrec sae tune RUN --target ATTRIBUTE`")
    fix = "tune again"
    meta = read_meta(path / TUNE_CONFIG, fix)
    try:
        config = from_dict(TuneConfig, meta["tune"], "tune.")
        latents = [int(j) for j in meta["latents"]]
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise RunError(f"{path / TUNE_CONFIG} is damaged ({exc}); {fix}") from None
    sae_run = load_parent_sae_run(path, TUNE_CONFIG, meta, fix, device)
    controller = read_controller(path, sae_run.sae.latents, latents, device)
    metrics, history = read_records(path)
    return TunedRun(config, controller, sae_run, metrics, history, path)


def read_controller(path: Path, num_latents: int, latents: list[int] | None = None,
                    device: str = "cpu") -> LatentController:
    """The controller saved in the tuned run `path` for an SAE with `num_latents` latents, in eval mode on
    `device`; `latents` when tune.yaml was read already."""
    fix = "tune again"
    try:
        if latents is None:
            latents = [int(j) for j in read_meta(path / TUNE_CONFIG, fix)["latents"]]
        controller = LatentController(latents, num_latents)
        controller.load_state_dict(load_file(str(path / TUNE_WEIGHTS)))
    except (SafetensorError, OSError, RuntimeError, ConfigError, KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path / TUNE_WEIGHTS} or {TUNE_CONFIG} is damaged or they do not match the SAE run ({exc}); "
                       f"{fix}") from None
    return controller.to(device).eval()


def is_tuned_run(path: Path) -> bool:
    return (path / TUNE_CONFIG).is_file() and (path / TUNE_WEIGHTS).is_file()


class TunedKind:
    """Tuned runs: tune.yaml (settings, latents and the relative path of the SAE run) and controller.safetensors."""

    name = "tuned"
    settings_file = TUNE_CONFIG
    extends: str | None = None
    label = ""
    recommends = True

    def recognise(self, path: Path) -> bool:
        return is_tuned_run(path)

    def save(self, run: TunedRun, folder: Path) -> dict[str, Any]:
        if run.sae_run.path is None:
            raise RunError("save the SAE run before tuning on it (the tuned run points at the SAE run directory)")
        atomic(folder)(TUNE_WEIGHTS, lambda name: save_file(cpu_state(run.controller), name))
        return {"sae_run": relative_parent(run.sae_run.path, folder), "latents": run.controller.latents.tolist(),
                "tune": to_dict(run.config)}

    def load(self, path: Path, device: str = "cpu", **options: Any) -> TunedRun:
        return load_tuned_run(path, device=device)


register_kind(TunedKind())
