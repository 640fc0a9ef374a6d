"""Strict JSON for user files: JSON-lines records and whole files, errors naming the file and line.

JSON has no NaN or Infinity; Python's `json` accepts them (and turns 1e400 into infinity), so `loads_finite`
refuses them, and a NaN never gets from a user file into a metric or a JSON output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from seqrec.errors import DataError

Record = tuple[int, str, dict[str, Any]]  # (0-based line index, "file:line", object)


def loads_finite(text: str) -> Any:
    """`json.loads` that raises ValueError on NaN, Infinity and numbers beyond the float range."""
    return json.loads(text, parse_constant=_refuse, parse_float=_finite)


def parse_json(text: str, path: object, finite: bool = True) -> Any:
    """The JSON value of a whole file's text; errors name `path:line`. `finite=False` lets NaN/Infinity in."""
    try:
        return loads_finite(text) if finite else json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file and rerun") from None
    except (ValueError, RecursionError) as exc:  # NaN, a 5000-digit integer, nesting too deep
        raise DataError(f"{path}: not valid JSON ({exc}); fix the file and rerun") from None


def json_object(line: str, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """The object on `line` (`where` = "file:line" for messages; `keys` = the ones a record should have)."""
    try:
        raw = loads_finite(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg}); fix or delete this line and rerun") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{where}: not valid JSON ({exc}); fix or delete this line and rerun") from None
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object with keys {', '.join(keys)}")
    return raw


def json_records(lines: Iterable[bytes], path: object, keys: Sequence[str]) -> Iterator[Record]:
    """One object per non-blank line of UTF-8 JSON lines read in binary (a BOM and CRLF endings are fine)."""
    for index, raw in enumerate(lines):
        where = f"{path}:{index + 1}"
        try:
            line = raw.decode("utf-8-sig" if index == 0 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not valid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None
        if line.strip():
            yield index, where, json_object(line, where, keys)


def _refuse(token: str) -> float:
    raise ValueError(f"{token} is not allowed in JSON; write a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a float")
    return value
