"""Typed configs: dataclass <-> dict/YAML, dotted overrides (`--set a.b=c`), validation with clear errors."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from seqrec.errors import ConfigError, SeqrecError, suggest

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and values of the wrong type."""
    if not isinstance(data, Mapping | None):
        raise ConfigError(f"{path.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown config key {path}{key!s}; valid keys: {suggest(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: coerce(hints[name], value, f"{path}{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{path.rstrip('.') or cls.__name__}: {exc}") from None


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Check and convert one value to the annotated type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, f"{key}.")  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {suggest(args)}; got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        items = [coerce(inner, v, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is Any:
        return value
    return _scalar(tp, value, key)


def _scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false; got {value!r}")
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        try:
            number = float(value)  # YAML 1.1 reads `1e-3` as a string
        except (ValueError, OverflowError):
            number = None
        if number is not None and not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number; got {value!r}")
        if number is not None:
            return number
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key} must be {getattr(tp, '__name__', tp)}; got {value!r}")


def check_finite(config: Any, section: str) -> None:
    """Every float field of a config dataclass is a finite number: NaN and infinity are never a setting."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{section}.{f.name} must be a finite number; got {value}")


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists, so it dumps to YAML cleanly)."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            out = {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
            name = getattr(type(v), "name", None)
            if isinstance(name, str) and name and "name" not in out:
                out = {"name": name, **out}
            return out
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(obj)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (the keys `--set` takes): {"train": {"lr": 0.001}} -> {"train.lr": 0.001}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= flatten(value, f"{dotted}.")
        else:
            out[dotted] = value
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key} is not a section")
        node[keys[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def parse_yaml_file(path: Path, error: type[SeqrecError] = ConfigError) -> Any:
    """The YAML document in `path` (a UTF-8 BOM allowed); invalid YAML or an unreadable file is `error` with
    file and line."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read ({exc}); check the file") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with file-and-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = parse_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, train, eval)")
    return data


def write_yaml(data: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dict(data), sort_keys=False))
