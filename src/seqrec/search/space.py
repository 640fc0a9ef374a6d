"""The search space: which config keys a search varies and how (float, int or categorical), read from YAML with
errors that name the file, the key and the fix.

A space file maps dotted keys (the keys `--set` takes) to ranges or choices:

    train.lr: {low: 1e-4, high: 1e-2, log: true}   # float, sampled on a log scale
    model.blocks: {low: 1, high: 3}                # int (the config's value is an int)
    model.max_len: {low: 20, high: 100, step: 20}  # int in steps
    model.hidden: [32, 64, 128]                    # categorical
    model: {dropout: {low: 0.1, high: 0.6}}        # a section groups keys

Without `type`, a range takes the type of the config's current value (else int when both ends are whole numbers).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seqrec.config import flatten
from seqrec.errors import ConfigError, suggest

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
TYPES = ("float", "int", "categorical")
Choice = None | bool | int | float | str  # what a categorical choice may be (Optuna stores these exactly)


@dataclass(frozen=True)
class FloatParam:
    """A float between `low` and `high` (inclusive), uniform, on a log scale, or in steps."""

    key: str
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: BaseTrial) -> float:
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def probes(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def spec(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, **({"log": True} if self.log else {}),
                **({"step": self.step} if self.step is not None else {})}


@dataclass(frozen=True)
class IntParam:
    """An int between `low` and `high` (inclusive) in steps of `step`, or on a log scale."""

    key: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: BaseTrial) -> int:
        return trial.suggest_int(self.key, self.low, self.high, step=self.step, log=self.log)

    def probes(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def spec(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, **({"step": self.step} if self.step != 1 else {}),
                **({"log": True} if self.log else {})}


@dataclass(frozen=True)
class CategoricalParam:
    """One of `choices`."""

    key: str
    choices: tuple[Choice, ...]

    def suggest(self, trial: BaseTrial) -> Choice:
        return trial.suggest_categorical(self.key, list(self.choices))

    def probes(self) -> tuple[Any, ...]:
        return self.choices

    def spec(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


Param = FloatParam | IntParam | CategoricalParam


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a search, in the order the file gives them."""

    params: tuple[Param, ...]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def suggest(self, trial: BaseTrial) -> dict[str, Any]:
        """One value per key, drawn by the trial's sampler."""
        return {p.key: p.suggest(trial) for p in self.params}

    def spec(self) -> dict[str, dict[str, Any]]:
        """The space as plain data (what a study records, and what `parse_space` reads back)."""
        return {p.key: p.spec() for p in self.params}


def parse_space(data: Any, known: Mapping[str, Any] | None = None, where: str = "space") -> SearchSpace:
    """Read a space from a mapping of dotted keys to specs. With `known` (dotted key -> the config's current
    value), every key must be one of its keys, and a range without `type` takes the type of the key's value."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{where}: a search space maps config keys to ranges or choices, e.g. "
                          "`train.lr: {low: 1e-4, high: 1e-2, log: true}`; got " + repr(data))
    params = [_param(key, spec, known, where) for key, spec in _entries(data, "", where)]
    return SearchSpace(tuple(params))


def _entries(data: Mapping[str, Any], prefix: str, where: str) -> list[tuple[str, Any]]:
    """(dotted key, spec) pairs; a mapping without spec fields is a section of keys."""
    out = []
    for name, spec in data.items():
        key = f"{prefix}{name}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: keys must be config keys such as train.lr; got {name!r}")
        if isinstance(spec, Mapping) and spec and not set(spec) & set(SPEC_KEYS):
            out += _entries(spec, f"{key}.", where)
        else:
            out.append((key, spec))
    keys = [k for k, _ in out]
    if len(set(keys)) < len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigError(f"{where}: {twice[0]} is given twice (as a dotted key and inside its section); keep one")
    return out


def _param(key: str, spec: Any, known: Mapping[str, Any] | None, where: str) -> Param:
    at = f"{where}: {key}"
    if known is not None and key not in known:
        inside = sorted(k for k in known if k.startswith(f"{key}."))
        if inside:
            example = next((k for k in inside if type(known[k]) in (int, float)), inside[0])
            raise ConfigError(f"{at} is a section, not a setting; give ranges or choices for its keys, e.g. "
                              f"`{example}: {{low: ..., high: ...}}` (its keys: {suggest(inside)})")
        raise ConfigError(f"{where}: unknown config key {key}{_did_you_mean(key, known)}; {_nearby(key, known)}")
    if isinstance(spec, list | tuple):
        spec = {"choices": list(spec)}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{at}: give a range ({{low: ..., high: ...}}) or a list of choices, got {spec!r}; "
                          "a key with one value belongs in the config (or --set), not in the space")
    unknown = sorted(set(spec) - set(SPEC_KEYS), key=str)
    if unknown:
        raise ConfigError(f"{at}: unknown field {unknown[0]!r}; a spec has {suggest(SPEC_KEYS)}")
    kind = spec.get("type") or _inferred_type(spec, known.get(key) if known is not None else None, at)
    if kind not in TYPES:
        raise ConfigError(f"{at}: type must be one of {suggest(TYPES)}; got {kind!r}")
    if kind == "categorical":
        return _categorical(key, spec, at, known.get(key) if known is not None else None)
    if "choices" in spec:
        raise ConfigError(f"{at}: a {kind} range takes low and high, not choices")
    return _int_range(key, spec, at) if kind == "int" else _float_range(key, spec, at)


def _inferred_type(spec: Mapping[str, Any], current: Any, at: str) -> str:
    if "choices" in spec:
        return "categorical"
    if isinstance(current, bool):
        raise ConfigError(f"{at}: a true/false setting is searched with choices: [true, false]")
    if isinstance(current, int):
        return "int"
    if isinstance(current, float):
        return "float"
    whole = all(isinstance(spec.get(end), int) and not isinstance(spec.get(end), bool) for end in ("low", "high"))
    return "int" if whole and not isinstance(spec.get("step"), float) else "float"


def _categorical(key: str, spec: Mapping[str, Any], at: str, current: Any = None) -> CategoricalParam:
    extra = sorted(set(spec) - {"type", "choices"})
    if extra:
        raise ConfigError(f"{at}: a categorical key takes only choices, not {extra[0]}")
    choices = spec.get("choices")
    if not isinstance(choices, list | tuple) or not choices:
        raise ConfigError(f"{at}: choices must be a non-empty list, got {choices!r}")
    if isinstance(current, float):  # YAML reads 1e-5 as a string: a float key's choices are numbers
        choices = [_float_or_same(choice) for choice in choices]
    for choice in choices:
        if not isinstance(choice, None | bool | int | float | str) or (
                isinstance(choice, float) and not math.isfinite(choice)):
            raise ConfigError(f"{at}: each choice must be a number, a string, true/false or null; got {choice!r}")
    if len({(type(c), c) for c in choices}) < len(choices):
        raise ConfigError(f"{at}: choices repeat a value: {list(choices)}")
    return CategoricalParam(key, tuple(choices))


def _float_or_same(choice: Any) -> Any:
    """A numeric string as its float (`"1e-5"` -> 1e-05); anything else as it is."""
    if not isinstance(choice, str):
        return choice
    try:
        number = float(choice)
    except ValueError:
        return choice
    return number if math.isfinite(number) else choice


def _number(spec: Mapping[str, Any], field: str, at: str) -> float:
    """A finite number (YAML reads `1e-4` as a string, so numeric strings count)."""
    if field not in spec:
        raise ConfigError(f"{at}: a range needs low and high")
    value = spec[field]
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{at}: {field} must be a finite number, got {value!r}")
    return number


def _flag(spec: Mapping[str, Any], at: str) -> bool:
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{at}: log must be true or false, got {log!r}")
    return log


def _checked_ends(low: float, high: float, log: bool, at: str) -> None:
    if not low < high:
        raise ConfigError(f"{at}: low ({low:g}) must be below high ({high:g}); a key with one value belongs in "
                          "the config (or --set), not in the space")
    if log and low <= 0:
        raise ConfigError(f"{at}: a log-scale range needs low > 0, got {low:g}")


def _float_range(key: str, spec: Mapping[str, Any], at: str) -> FloatParam:
    low, high, log = _number(spec, "low", at), _number(spec, "high", at), _flag(spec, at)
    _checked_ends(low, high, log, at)
    step = _number(spec, "step", at) if spec.get("step") is not None else None
    if step is not None:
        if log:
            raise ConfigError(f"{at}: give step or log, not both")
        if step <= 0 or abs((high - low) / step - round((high - low) / step)) > 1e-9:
            raise ConfigError(f"{at}: step must be > 0 and divide high - low ({high - low:g}); got {step:g}")
    return FloatParam(key, low, high, log, step)


def _whole(spec: Mapping[str, Any], field: str, at: str) -> int:
    number = _number(spec, field, at)
    if not number.is_integer():
        raise ConfigError(f"{at}: {field} of an int range must be a whole number, got {spec[field]!r}")
    return int(number)


def _int_range(key: str, spec: Mapping[str, Any], at: str) -> IntParam:
    low, high, log = _whole(spec, "low", at), _whole(spec, "high", at), _flag(spec, at)
    _checked_ends(low, high, log, at)
    step = _whole(spec, "step", at) if spec.get("step") is not None else 1
    if step != 1 and log:
        raise ConfigError(f"{at}: give step or log, not both")
    if step < 1 or (high - low) % step:
        raise ConfigError(f"{at}: step must be >= 1 and divide high - low ({high - low}); got {step}")
    return IntParam(key, low, high, step, log)


def _nearby(key: str, known: Mapping[str, Any]) -> str:
    """The valid keys of `key`'s section, or the sections when the section is unknown (not every key)."""
    section = key.rpartition(".")[0]
    same = [k for k in known if k.rpartition(".")[0] == section]
    if same:
        return f"valid keys: {suggest(same)}"
    return f"valid keys are in the sections {suggest({k.partition('.')[0] for k in known if '.' in k})}"


def _did_you_mean(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""


def with_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the nested config `raw` with each dotted key set to its value."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in values.items():
        node = out
        *sections, last = dotted.split(".")
        for section in sections:
            if not isinstance(node.get(section), dict):
                node[section] = {}
            node = node[section]
        node[last] = value
    return out


def check_space(space: SearchSpace, raw: Mapping[str, Any], build: Callable[[dict[str, Any]], Any],
                where: str = "space") -> None:
    """Build the config at both ends of every range and at every choice, one key at a time, so a value the config
    refuses fails now rather than in a trial (a combination it refuses, such as model.hidden not divisible by
    model.heads, fails only its trials)."""
    for param in space.params:
        for value in param.probes():
            _build(build, raw, {param.key: value}, where, f"{param.key} = {value!r}")


def _build(build: Callable[[dict[str, Any]], Any], raw: Mapping[str, Any], values: Mapping[str, Any], where: str,
           what: str) -> None:
    try:
        build(with_values(raw, values))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {what} is not a valid setting: {exc}") from None


def known_keys(config: Mapping[str, Any], exclude: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    """Dotted keys of a full config dict with their current values (what a space may name)."""
    return {k: v for k, v in flatten(config).items() if k not in exclude}
