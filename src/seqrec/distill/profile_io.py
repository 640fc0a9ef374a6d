"""Profile text files: JSONL, one `{"user": external id, "aspect": name, "text": profile}` object per line.

Writers append as they go (a crash keeps what was written; a rerun resumes), and every reader of profile texts
reads this one format. Files are UTF-8 (a byte-order mark and CRLF line endings are fine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqrec.errors import DataError
from seqrec.jsonl import json_records

FIELDS = ("user", "aspect", "text")


@dataclass(frozen=True)
class ProfileRow:
    """One profile text of one user (several aspects give several rows per user)."""

    user: str  # external user id
    aspect: str  # e.g. "stats", "short", "long", "needs"
    text: str


@dataclass
class ProfileReport:
    """What one profile-writing call did."""

    written: int  # rows appended
    cached: int  # (user, aspect) rows already in the file, skipped
    skipped: int  # users without training interactions
    calls: int = 0  # conversations sent to a language model (chunk profiles and merges included)
    empty: int = 0  # rows whose text is empty
    seconds: float = 0.0


def read_profile_texts(path: str | Path) -> dict[str, dict[str, str]]:
    """aspect -> {user: text}, in file order; a later line for the same user and aspect replaces an earlier one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"profile text file not found: {path} (write one with `seqrec profiles write`)")
    out: dict[str, dict[str, str]] = {}
    try:
        with path.open("rb") as f:
            for _, where, raw in json_records(f, path, FIELDS):
                row = _row(raw, where)
                out.setdefault(row.aspect, {})[row.user] = row.text
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check the file's permissions") from None
    return out


def _row(raw: dict[str, Any], where: str) -> ProfileRow:
    for key in FIELDS:
        if not isinstance(raw.get(key), str):
            raise DataError(f"{where}: key {key!r} must be a string (found {type(raw.get(key)).__name__})")
    return ProfileRow(raw["user"], raw["aspect"], raw["text"])


def append_profile_texts(path: str | Path, rows: Iterable[ProfileRow]) -> int:
    """Append rows as JSONL lines, flushed to disk before returning; the number of rows written."""
    path = Path(path)
    lines = []
    for row in rows:
        if not all(isinstance(getattr(row, key), str) for key in FIELDS):
            raise DataError(f"profile rows need string user, aspect and text; got {row!r}")
        lines.append(json.dumps({"user": row.user, "aspect": row.aspect, "text": row.text}, ensure_ascii=False))
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return len(lines)


def written_users(path: str | Path, aspect: str) -> set[str]:
    """Users that already have an `aspect` profile in the file (empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return set()
    return set(read_profile_texts(path).get(aspect, {}))
