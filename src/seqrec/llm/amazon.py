"""Reader for the SIREN Amazon-2023 folders (LLM4Rec `data/Movies/` format) into `RatingData`.

Files (each `.jsonl.gz` or plain `.jsonl`):
* `train|valid|test`: one row per (user, target) with `user_id`, `parent_asin`, `timestamp` (ms), `label`,
  `target` ("title, category path") and `history` (newline-separated "title, category path, rating" lines).
* `history` (optional): one row per user with the full pre-valid history and its `history_asins`; it gives the
  history entries their item ids and fills `RatingData.long_histories`.
* `user_feature` (optional): `user_id`, `user_profile_prompt`, the dataset's own sketch (`shipped_sketches`).

Labels and history ratings must be finite numbers on the 1–5 star scale, timestamps finite numbers, user and
item ids strings or integers; anything else is a `DataError` naming `file:line` and the key.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqrec.errors import ConfigError, DataError
from seqrec.jsonl import json_records
from seqrec.llm.rows import RatedItem, RatingData, RatingRow

SPLITS = ("train", "valid", "test")
ROW_KEYS = ("user_id", "parent_asin", "label", "target", "history")
HISTORY_KEYS = ("user_id", "history", "history_asins", "history_ratings")
FEATURE_KEYS = ("user_id", "user_profile_prompt")
ID_KEYS = ("user_id", "parent_asin")
SCALE = (1.0, 5.0)  # Amazon star ratings
Parsed = list[tuple[str, float]]  # (item text, rating) per history line, oldest first
Line = tuple[int, str, dict[str, Any]]  # (0-based line index, "file:line", object) per non-empty line


def read_amazon2023(folder: str | Path, limit_users: int | None = None, category: str = "movie") -> RatingData:
    """Train/valid/test rating rows of an Amazon-2023 SIREN folder.

    `limit_users` keeps the first N users in user-id order (a deterministic subset); sample ids stay
    f"{split}:{line index}" of the full files, so a subset's ids match the full data's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Amazon-2023 folder not found: {folder}; expected train/valid/test.jsonl.gz (and "
                        "history.jsonl.gz, user_feature.jsonl) there, e.g. the LLM4Rec data/Movies/ files")
    if limit_users is not None and limit_users < 1:
        raise ConfigError(f"limit_users must be a positive number of users (got {limit_users})")
    raw = {split: list(iter_jsonl(_required(folder, split), ROW_KEYS)) for split in SPLITS}
    keep = _kept_users(raw, limit_users)
    long = _long_histories(folder, keep)
    splits = {split: [_row(split, index, where, r, long) for index, where, r in rows if str(r["user_id"]) in keep]
              for split, rows in raw.items()}
    return RatingData(name=folder.name, train=splits["train"], valid=splits["valid"], test=splits["test"],
                      scale=SCALE, category=category, shipped_sketches=_sketches(folder, keep),
                      long_histories={u: h for u, (h, _) in long.items()})


def parse_history(text: str, where: str, scale: tuple[float, float] = SCALE) -> Parsed:
    """(text, rating) per non-empty line; the rating follows the LAST ", " since titles contain commas.

    Ratings must be finite numbers within `scale`.
    """
    out: Parsed = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        head, sep, rating = line.rpartition(", ")
        value = _float(rating) if sep else None
        if value is None:
            raise DataError(f"{where}: history line {number} {line[:80]!r} is not '<title>, <categories>, <rating>' "
                            "with a finite rating")
        if not scale[0] <= value <= scale[1]:
            raise DataError(f"{where}: history line {number} has rating {rating.strip()}, outside the rating scale "
                            f"{scale[0]:g}–{scale[1]:g}; fix or delete the line")
        out.append((head, value))
    return out


def _float(value: object) -> float | None:
    """A finite float from a number or numeric string; None for anything else (NaN, inf, booleans, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond the float range
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------- files


def find_file(folder: Path, stem: str) -> Path | None:
    """`stem.jsonl.gz` or `stem.jsonl` inside `folder`, or None."""
    for name in (f"{stem}.jsonl.gz", f"{stem}.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def _required(folder: Path, stem: str) -> Path:
    path = find_file(folder, stem)
    if path is None:
        raise DataError(f"{folder / (stem + '.jsonl.gz')} not found (a plain {stem}.jsonl works too); an "
                        "Amazon-2023 SIREN folder holds train, valid and test files")
    return path


def iter_jsonl(path: Path, keys: tuple[str, ...]) -> Iterator[Line]:
    """(0-based line index, "file:line" for messages, object) per non-empty line; every object has `keys`."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            for index, where, raw in json_records(f, path, keys):
                yield index, where, _checked(raw, where, keys)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path} ({exc}); is it a complete (gzipped) JSON-lines file?") from None


def _checked(raw: dict[str, Any], where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The record, once it has every key in `keys` and its ids are strings or integers."""
    for key in keys:
        if key not in raw:
            raise DataError(f"{where}: missing key {key!r} (each line needs {', '.join(keys)})")
    for key in ID_KEYS:
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], (str, int))):
            raise DataError(f"{where}: key {key!r} must be a string or integer id (found {raw[key]!r})")
    return raw


def _kept_users(raw: dict[str, list[Line]], limit_users: int | None) -> set[str]:
    users = sorted({str(r["user_id"]) for rows in raw.values() for _, _, r in rows})
    return set(users[:limit_users] if limit_users is not None else users)


# ---------------------------------------------------------------- rows


def _row(split: str, index: int, where: str, raw: dict[str, Any],
         long: dict[str, tuple[tuple[RatedItem, ...], Parsed]]) -> RatingRow:
    user = str(raw["user_id"])
    parsed = parse_history(_string(raw, "history", where), where)
    return RatingRow(sample_id=f"{split}:{index}", split=split, user=user, item=str(raw["parent_asin"]),
                     label=_number(raw, "label", where, SCALE), target=_string(raw, "target", where),
                     history=_with_ids(parsed, long.get(user)),
                     timestamp=int(_number(raw, "timestamp", where)) if raw.get("timestamp") is not None else 0)


def _with_ids(parsed: Parsed, full: tuple[tuple[RatedItem, ...], Parsed] | None) -> tuple[RatedItem, ...]:
    """The row's history; items carry ids when it is a prefix (texts and ratings) of the user's full history."""
    if full is not None and len(parsed) <= len(full[1]) and full[1][: len(parsed)] == parsed:
        return full[0][: len(parsed)]  # shares the RatedItem objects of the long history
    return tuple(RatedItem(text, rating) for text, rating in parsed)


def _long_histories(folder: Path, keep: set[str]) -> dict[str, tuple[tuple[RatedItem, ...], Parsed]]:
    """user -> (full history with item ids, its parsed lines); ids stay "" when the counts disagree."""
    path = find_file(folder, "history")
    out: dict[str, tuple[tuple[RatedItem, ...], Parsed]] = {}
    if path is None:
        return out
    for _, where, raw in iter_jsonl(path, HISTORY_KEYS):
        user = str(raw["user_id"])
        if user not in keep:
            continue
        parsed = parse_history(_string(raw, "history", where), where)
        asins, ratings = raw["history_asins"], raw["history_ratings"]
        aligned = (isinstance(asins, list) and isinstance(ratings, list) and len(asins) == len(parsed)
                   and all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in asins)
                   and _same_ratings(ratings, parsed))
        items = tuple(RatedItem(text, rating, str(asins[i]) if aligned else "")
                      for i, (text, rating) in enumerate(parsed))
        out[user] = (items, parsed)
    return out


def _same_ratings(ratings: list[Any], parsed: Parsed) -> bool:
    return [_float(r) for r in ratings] == [rating for _, rating in parsed]


def _sketches(folder: Path, keep: set[str]) -> dict[str, str]:
    path = find_file(folder, "user_feature")
    if path is None:
        return {}
    return {str(raw["user_id"]): _string(raw, "user_profile_prompt", where)
            for _, where, raw in iter_jsonl(path, FEATURE_KEYS) if str(raw["user_id"]) in keep}


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: key {key!r} must be a string (found {type(value).__name__})")
    return value


def _number(raw: dict[str, Any], key: str, where: str, scale: tuple[float, float] | None = None) -> float:
    """`raw[key]` as a finite float (numeric strings allowed), within `scale` when one is given."""
    value = _float(raw[key])
    if value is None:
        raise DataError(f"{where}: key {key!r} must be a finite number (found {raw[key]!r}); fix or delete the line")
    if scale is not None and not scale[0] <= value <= scale[1]:
        raise DataError(f"{where}: key {key!r} is {raw[key]!r}, outside the rating scale {scale[0]:g}–{scale[1]:g}; "
                        "fix or delete the line")
    return value
