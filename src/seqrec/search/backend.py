"""The Optuna side of a search: the import (an extra), storages opened with clear errors, samplers and pruners."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.errors import ConfigError, SeqrecError

if TYPE_CHECKING:
    import optuna

PRUNERS = ("median", "halving", "none")
HEARTBEAT_SECONDS = 30  # a trial whose process stops sending this for GRACE_SECONDS is failed (a killed process)
GRACE_SECONDS = 120
RACES = ("already exists", "locked", "unique", "duplicate")  # errors of processes creating one database together


def optuna_module() -> Any:
    """`optuna`, or a `SeqrecError` that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise SeqrecError("hyper-parameter search needs Optuna: pip install 'seqrec[search]'") from None
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's own per-trial log lines (seqrec reports trials itself, without tracebacks)."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def default_storage(folder: Path) -> str:
    """The SQLite file a study keeps in its folder when no storage is given."""
    return f"sqlite:///{(folder / 'study.db').resolve()}"


def shown_url(url: str) -> str:
    """`url` with any password hidden (for messages and the files a study writes)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse is shown as given
        return url


def check_existing(url: str) -> None:
    """A storage that is only read must exist: opening a SQLite file that is not there would create an empty one."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # open_storage says what is wrong with the URL
        return
    file = parsed.database
    if parsed.get_backend_name() == "sqlite" and file and file != ":memory:" and not Path(file).is_file():
        raise ConfigError(f"study storage {shown_url(url)} does not exist (no file {file}); check the path, or run "
                          "`seqrec search` first to create the study")


def open_storage(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage at `url` (SQLite, PostgreSQL, MySQL ...), with heartbeats so that the trial of a killed
    process is failed and redone; anything that cannot be opened is a `SeqrecError` naming the URL and the fix.

    Processes that open a new database together race to create its tables; the loser tries again."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"storage {url!r} is not a database URL; use e.g. sqlite:///study.db or "
                          "postgresql://user@host/db (SQLAlchemy URLs)")
    attempt = 1
    while True:
        try:
            return _rdb_storage(url)
        except ImportError as exc:
            raise SeqrecError(f"storage {shown_url(url)} needs a database driver that is not installed ({exc}); "
                              "install it (e.g. psycopg2-binary for PostgreSQL, pymysql for MySQL)") from None
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean the same to the user
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if attempt < attempts and any(word in reason.lower() for word in RACES):
                time.sleep(0.2 * attempt)
                attempt += 1
                continue
            raise SeqrecError(f"cannot open the study storage {shown_url(url)}: {reason}; check the URL, that the "
                              "database server is reachable, and that the folder of a SQLite file exists") from None


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    optuna = optuna_module()
    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                          grace_period=GRACE_SECONDS)


def build_pruner(name: str, startup_trials: int, warmup_epochs: int) -> optuna.pruners.BasePruner:
    """`median` (stop a trial below the median of earlier trials at the same epoch), `halving` (successive
    halving: keep the best share at each rung) or `none`."""
    optuna = optuna_module()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup_epochs), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)}; got {name!r}")


def build_sampler(seed: int | None, startup_trials: int) -> optuna.samplers.BaseSampler:
    """TPE with the constant liar, so processes that share a study do not draw what another is running."""
    optuna = optuna_module()
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials, constant_liar=True)
