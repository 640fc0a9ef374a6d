"""What a loaded run offers a caller: its default recommender and named per-request steering controls.

Every run kind that recommends (`seqrec.run_kinds.RunKind.recommends`) loads into a `RecommendingRun`;
`seqrec.load(path)` returns one. A `Steering` describes its parameters as JSON-able specs and builds a recommender
for one request from them, cheaply: it wraps models that are already loaded and reads no data.

    run = seqrec.load("runs/sasrec/sae-popsteer/steered-popularity-a1.5")
    run.steering["popsteer"].parameters()            # {"alpha": {"type": "float", "min": 0.0, ...}, ...}
    run.steering["popsteer"].recommender(alpha=2.0).recommend(["42"], k=10)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seqrec.errors import ConfigError, suggest
from seqrec.model_runs import Run
from seqrec.recommender import Recommender
from seqrec.steering.interventions import STAGES, Stage
from seqrec.steering.popsteer import DEFAULT_STAGE, NeuronStats, PopularitySteering
from seqrec.steering.steered import Interventions, ScoringMode
from seqrec.steering.tuning import LatentController

ALPHA_RANGE = (0.0, 10.0)  # PopSteer's α: 0 = no steering; larger values may be saved and are then the maximum
DEFAULT_ALPHA = 1.5
Spec = dict[str, Any]  # {"type": "float" | "int" | "str", "min", "max" | "choices", "default", "help"}
Steer = Callable[[ScoringMode, Interventions], Recommender]  # an SAE run's `steered`
ControllerSource = Callable[[], LatentController]  # reads one saved controller when first asked for


class Steering(Protocol):
    """A named control a loaded run offers per request, e.g. PopSteer's α."""

    name: str  # "popsteer" | "recftt"

    def parameters(self) -> dict[str, Spec]:
        """The parameters it takes: their type, range or choices, and default (JSON-able)."""
        ...

    def recommender(self, **params: Any) -> Recommender:
        """A recommender steered with `params` (missing ones take their defaults); unknown names, wrong types and
        values out of range are a `ConfigError` that names them."""
        ...


class RecommendingRun(Protocol):
    """A loaded run of any kind that recommends: what `seqrec.load`, evaluation and serving use."""

    path: Path | None
    metrics: dict[str, Any]

    @property
    def kind(self) -> str: ...

    @property
    def recommender(self) -> Recommender:
        """The run's default behaviour: the model, or the model steered as the run was saved."""
        ...

    @property
    def steering(self) -> dict[str, Steering]:
        """The per-request steering this run offers, by name (may be empty)."""
        ...

    @property
    def model_run(self) -> Run:
        """The trained-model `Run` underneath: its data source, data fingerprint and evaluation protocol."""
        ...


def number_spec(kind: str, low: float, high: float, default: float, help: str) -> Spec:
    return {"type": kind, "min": low, "max": high, "default": default, "help": help}


def choice_spec(choices: list[str], default: str | None, help: str) -> Spec:
    return {"type": "str", "choices": choices, "default": default, "help": help}


def checked(steering: str, specs: Mapping[str, Spec], params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` completed with defaults and checked against `specs`; the first problem is a `ConfigError`."""
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise ConfigError(f"{steering} steering has no parameter {', '.join(map(repr, unknown))}; its parameters: "
                          f"{suggest(specs)}")
    values = {name: params.get(name, spec["default"]) for name, spec in specs.items()}
    for name, value in values.items():
        _check_value(f"{steering} {name}", specs[name], value)
    return values


def _check_value(label: str, spec: Spec, value: Any) -> None:
    kind = spec["type"]
    if kind == "str":
        if value is None:
            raise ConfigError(f"{label} is required; one of: {suggest(spec['choices'])}")
        if value not in spec["choices"]:
            raise ConfigError(f"{label} must be one of {suggest(spec['choices'])}; got {value!r}")
        return
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if kind == "int" and not (number and float(value).is_integer()):
        raise ConfigError(f"{label} must be a whole number between {spec['min']} and {spec['max']}; got {value!r}")
    if not number or not np.isfinite(value):
        raise ConfigError(f"{label} must be a finite number between {spec['min']} and {spec['max']}; got {value!r}")
    if not spec["min"] <= value <= spec["max"]:
        raise ConfigError(f"{label} must be between {spec['min']} and {spec['max']}; got {value!r}")


class PopSteerControl:
    """PopSteer (Eq. 3/4) at a requested α and number of neurons, from saved probe statistics."""

    name = "popsteer"

    def __init__(self, steer: Steer, stats: NeuronStats, mode: ScoringMode = "delta", alpha: float = DEFAULT_ALPHA,
                 neurons: int | None = None, stage: Stage = DEFAULT_STAGE) -> None:
        self.steer, self.stats, self.mode = steer, stats, mode
        width = len(stats.mean_pop)
        self.specs = {
            "alpha": number_spec("float", ALPHA_RANGE[0], max(ALPHA_RANGE[1], float(alpha)), float(alpha),
                                 "steering strength α (0 = the unsteered SAE path)"),
            "neurons": number_spec("int", 1, width, width if neurons is None else int(neurons),
                                   "steer the N neurons of largest |Cohen's d|"),
            "stage": choice_spec(list(STAGES), stage, "shift the pre-activations (pre: may change which latents "
                                                      "win) or only the user's own top-k latents (post)"),
        }

    def parameters(self) -> dict[str, Spec]:
        return {name: dict(spec) for name, spec in self.specs.items()}

    def recommender(self, **params: Any) -> Recommender:
        values = checked(self.name, self.specs, params)
        steering = PopularitySteering(self.stats, float(values["alpha"]), int(values["neurons"]), values["stage"])
        return self.steer(self.mode, steering)


class RecFTTControl:
    """A RecFTT controller chosen by name among the tunings saved under an SAE run (read once, when first used)."""

    name = "recftt"

    def __init__(self, steer: Steer, controllers: Mapping[str, ControllerSource], default: str | None = None) -> None:
        self.steer, self.sources = steer, dict(controllers)
        self.loaded: dict[str, LatentController] = {}
        self.specs = {"target": choice_spec(sorted(self.sources), default,
                                            "a tuned run saved under the SAE run (its folder name)")}

    def parameters(self) -> dict[str, Spec]:
        return {name: {**spec, "choices": list(spec["choices"])} for name, spec in self.specs.items()}

    def recommender(self, **params: Any) -> Recommender:
        target = checked(self.name, self.specs, params)["target"]
        if target not in self.loaded:
            self.loaded[target] = self.sources[target]()
        return self.steer("delta", self.loaded[target])
