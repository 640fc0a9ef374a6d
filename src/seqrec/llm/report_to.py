"""Loggers of the TRL trainers (`report_to`, as in transformers' `TrainingArguments`), checked before a model loads.

`("none",)` logs nowhere (the default), `("all",)` to every installed logger, otherwise the named ones, e.g.
`("tensorboard",)` or `("tensorboard", "mlflow")`. TensorBoard writes under the trainer's output folder
(`<output_dir>/runs/…`), or where `TENSORBOARD_LOGGING_DIR` says.
"""

from __future__ import annotations

from seqrec.errors import ConfigError, suggest

NONE, ALL = "none", "all"


def check_report_to(values: tuple[str, ...], key: str) -> None:
    """The shape of a `report_to` setting: at least one name, and `none` / `all` only alone."""
    if not values or any(not isinstance(v, str) or not v.strip() for v in values):
        raise ConfigError(f"{key} must name loggers (e.g. [tensorboard]) or be none; got {list(values)!r}")
    if len(values) > 1 and (NONE in values or ALL in values):
        raise ConfigError(f"{key}: {NONE} and {ALL} stand alone; got {list(values)!r}")


def report_to_option(values: tuple[str, ...], key: str) -> str | list[str]:
    """The `report_to` value for TRL; an unknown or uninstalled logger is a `ConfigError` naming `key`."""
    check_report_to(values, key)
    if values in ((NONE,), (ALL,)):
        return values[0]
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    unknown = [v for v in values if v not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise ConfigError(f"{key}: unknown logger {unknown[0]!r}; valid loggers: "
                          f"{suggest([*INTEGRATION_TO_CALLBACK, NONE, ALL])}")
    installed = set(get_available_reporting_integrations())
    missing = [v for v in values if v not in installed]
    if missing:
        raise ConfigError(f"{key}: the {missing[0]} logger is not installed; install its package "
                          f"(e.g. pip install {missing[0].replace('_', '-')}) or drop it")
    return list(values)
