"""One JSON-lines record: parsed, checked to be an object, errors naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from seqrec.errors import DataError


def json_object(line: str, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """The object on `line` (`where` = "file:line" for messages; `keys` = the ones a record should have)."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg}); fix or delete this line and rerun") from None
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object with keys {', '.join(keys)}")
    return raw
