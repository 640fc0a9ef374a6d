"""User-facing errors: every message says what went wrong, where, and what to do."""

from __future__ import annotations


class SeqrecError(Exception):
    """Base class for errors caused by user input (files, configs, arguments, run directories)."""


class DataError(SeqrecError):
    """A dataset file is missing, malformed, or empty after filtering."""


class UnknownIdError(DataError):
    """Ids that are not in a run's id map; `kind` says which ("user id", "item id"), `ids` lists them."""

    def __init__(self, message: str, kind: str, ids: list[str]) -> None:
        super().__init__(message)
        self.kind = kind
        self.ids = ids


class ConfigError(SeqrecError):
    """A config key or value is invalid."""


class RunError(SeqrecError):
    """A run directory is missing, incomplete, or of another kind."""


class NonFiniteError(SeqrecError):
    """A loss, gradient or score is NaN or infinite (diverged training, non-finite inputs)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during long work; the message says what was kept and how to continue."""


def suggest(options: list[str] | tuple[str, ...] | set[str]) -> str:
    """Render the valid choices for an error message."""
    return ", ".join(sorted(str(o) for o in options))
