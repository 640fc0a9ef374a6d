"""Steering per request: check a request's steering parameters against what the run offers, and keep the
steered recommenders of recent parameter sets, so a steered request never reloads anything."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seqrec.errors import ConfigError
from seqrec.recommender import Recommender
from seqrec.serving.errors import RequestError

NAME_KEY = "name"  # the steering field that picks one of several steerings


@dataclass(frozen=True)
class SteeringChoice:
    """One steering with every parameter set (defaults filled in): hashable, so it keys caches and batches."""

    name: str
    params: tuple[tuple[str, Any], ...]

    def describe(self) -> dict[str, Any]:
        """What responses report as the steering applied."""
        return {NAME_KEY: self.name, **dict(self.params)}


def choose_steering(offered: Mapping[str, Any], asked: Mapping[str, Any] | None) -> SteeringChoice | None:
    """The steering and parameters `asked` selects among `offered` (name -> Steering); None when nothing is asked.

    `asked` may name the steering (`name`); otherwise the one steering whose parameters include every key asked.
    """
    if not asked:
        return None
    if not offered:
        raise RequestError("this run offers no steering; serve an SAE run (`seqrec sae train RUN`) or a tuned run "
                           "to steer, or leave out `steering`", field="steering")
    params = {key: value for key, value in asked.items() if key != NAME_KEY}
    steering = _pick(offered, asked.get(NAME_KEY), set(params))
    spec = steering.parameters()
    checked = {key: check_parameter(steering.name, key, spec[key], params[key]) if key in params
               else spec[key].get("default") for key in sorted(spec)}
    return SteeringChoice(steering.name, tuple(checked.items()))


def _pick(offered: Mapping[str, Any], name: Any, keys: set[str]) -> Any:
    if name is not None:
        if name not in offered:
            raise RequestError(f"steering.name {name!r} is not offered by this run; choose one of "
                               f"{', '.join(sorted(offered))}", field="steering.name")
        steering = offered[name]
        unknown = sorted(keys - set(steering.parameters()))
        if unknown:
            raise RequestError(f"steering {name!r} has no parameter {unknown[0]!r}; its parameters: "
                               f"{', '.join(sorted(steering.parameters()))}", field=f"steering.{unknown[0]}")
        return steering
    fits = [s for s in offered.values() if keys <= set(s.parameters())]
    if len(fits) == 1:
        return fits[0]
    on_offer = "; ".join(f"{s.name} ({', '.join(sorted(s.parameters()))})" for s in offered.values())
    if not fits:
        unknown = sorted(keys - {p for s in offered.values() for p in s.parameters()}) or sorted(keys)
        raise RequestError(f"no steering of this run takes {', '.join(repr(k) for k in sorted(keys))}; on offer: "
                           f"{on_offer}", field=f"steering.{unknown[0]}")
    raise RequestError(f"several steerings take {', '.join(repr(k) for k in sorted(keys))}; add "
                       f'"{NAME_KEY}" to `steering` to pick one of {", ".join(s.name for s in fits)}',
                       field="steering.name")


def check_parameter(steering: str, key: str, spec: Mapping[str, Any], value: Any) -> Any:
    """`value` if it has the parameter's type and lies in its range; else a `RequestError` that says both."""
    field = f"steering.{key}"
    kind = str(spec.get("type", "float"))
    if value is None:
        if spec.get("default") is None:
            return None
        raise RequestError(f"{field} must be a number, got null", field=field)
    if kind in ("int", "integer"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{field} must be an integer, got {value!r}", field=field)
    elif kind in ("float", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RequestError(f"{field} must be a finite number, got {value!r}", field=field)
    elif kind in ("str", "string"):
        if not isinstance(value, str):
            raise RequestError(f"{field} must be a string, got {value!r}", field=field)
        choices = spec.get("choices") or spec.get("values")
        if choices and value not in choices:
            raise RequestError(f"{field} {value!r} is not one of {', '.join(map(str, choices))}", field=field)
        return value
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(f"{field} = {value} is out of range for {steering}: it must lie in "
                           f"[{'-∞' if low is None else low}, {'∞' if high is None else high}]", field=field)
    return value


class SteeredRecommenders:
    """The steered recommenders of the `size` most recently used parameter sets (built on first use).

    Thread-safe: scoring threads share it; a build holds the lock, so one parameter set is never built twice.
    """

    def __init__(self, offered: Mapping[str, Any], size: int = 8) -> None:
        self.offered, self.size = offered, max(1, size)
        self._cache: OrderedDict[SteeringChoice, Recommender] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: SteeringChoice) -> Recommender:
        with self._lock:
            if choice in self._cache:
                self._cache.move_to_end(choice)
                return self._cache[choice]
            params = {key: value for key, value in choice.params if value is not None}
            try:
                recommender = self.offered[choice.name].recommender(**params).eval()
            except ConfigError as exc:  # parameters the steering refuses
                raise RequestError(str(exc), field="steering") from None
            self._cache[choice] = recommender
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
            return recommender

    def __len__(self) -> int:
        return len(self._cache)
