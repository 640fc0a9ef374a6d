"""Profile embeddings: the `{user_id: [floats]}` JSON files, aligned to a dataset's internal user ids."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.data.idmap import IdMap
from seqrec.data.readers import read_text
from seqrec.errors import DataError
from seqrec.files import dumps_json, write_text_atomically
from seqrec.jsonl import parse_json

log = logging.getLogger(__name__)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ProfileTable:
    """K profile vectors per internal user; `present` marks the ones a file provided (missing rows are zero)."""

    vectors: np.ndarray  # [U, K, D] float32
    present: np.ndarray  # [U, K] bool

    @property
    def dim(self) -> int:
        return self.vectors.shape[2]

    @property
    def has_profile(self) -> np.ndarray:  # [U] bool: at least one profile
        return self.present.any(axis=1)


def read_profile_json(path: str | Path) -> dict[str, np.ndarray]:
    """A `{user_id: [floats]}` file (the original format) as float32 vectors of one length.

    Values must be finite numbers within float32 range (not booleans, NaN or Infinity); a bad vector raises
    `DataError` naming the file, the user and its line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"profile file not found: {path} (write one with `seqrec profiles embed`)")
    text = read_text(path)
    raw = parse_json(text, path, finite=False)  # NaN / Infinity are reported below, with the user
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object {{user_id: [floats, ...]}}")
    out, dim = {}, None
    for user, vector in raw.items():
        values = _finite_vector(vector)
        if values is None:
            raise DataError(f"{path}: user {user!r} must map to a list of numbers, finite and within float32 "
                            f"range{_line_of(text, user)}; re-embed the profiles (seqrec profiles embed)")
        dim = len(values) if dim is None else dim
        if len(values) != dim or dim == 0:
            raise DataError(f"{path}: user {user!r} has {len(values)} values, the first user has {dim}"
                            f"{_line_of(text, user)}; every user needs a vector of the same length")
        out[user] = values.astype(np.float32)
    return out


def _finite_vector(vector: object) -> np.ndarray | None:
    """float64 values of a JSON list of finite numbers within float32 range; None for anything else."""
    if not isinstance(vector, list) or not all(type(v) in (int, float) for v in vector):  # no bools
        return None
    try:
        values = np.asarray(vector, dtype=np.float64)  # [D]
    except OverflowError:  # an integer beyond the float range
        return None
    return values if bool((np.abs(values) <= FLOAT32_MAX).all()) else None  # NaN compares False


def _line_of(text: str, key: str) -> str:
    """" (line N)" where `"key":` first appears in the JSON text; "" when it cannot be found as written."""
    for quoted in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
        match = re.search(re.escape(quoted) + r"\s*:", text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            return f" (line {line})"
    return ""


def write_profile_json(path: str | Path, vectors: Mapping[str, Sequence[float] | np.ndarray],
                       overwrite: bool = False) -> Path:
    """Write `{user_id: [floats]}` atomically; an existing file is kept unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; choose another path or overwrite it explicitly (--force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {str(u): [round(float(x), 7) for x in np.asarray(v).ravel()] for u, v in vectors.items()}
    write_text_atomically(path, dumps_json(payload, str(path), indent=None))  # NaN / inf: an error, no file
    return path


def load_profile_table(paths: Sequence[str | Path], user_map: IdMap, dim: int = 0) -> ProfileTable:
    """Align K profile files to internal users.  Unknown user ids are skipped with a warning."""
    if not paths:
        raise DataError("no profile files given (distill.profiles)")
    files = [read_profile_json(p) for p in paths]
    dims = {len(next(iter(f.values()))) for f in files}
    if len(dims) > 1 or (dim and dims != {dim}):
        want = f"distill.dim = {dim}" if dim else "one dimension for every file"
        shown = ", ".join(f"{p}: {len(next(iter(f.values())))}" for p, f in zip(paths, files, strict=True))
        raise DataError(f"profile dimensions do not match ({shown}); expected {want}")
    vectors = np.zeros((len(user_map), len(files), dims.pop()), dtype=np.float32)
    present = np.zeros((len(user_map), len(files)), dtype=bool)
    for k, (path, profiles) in enumerate(zip(paths, files, strict=True)):
        internal = user_map.lookup(np.array(list(profiles), dtype=object))
        known = internal >= 0
        if not known.all():
            log.warning("%s: skipping %d of %d profiles whose user ids are not in the dataset", path,
                        int((~known).sum()), len(internal))
        if not known.any():
            raise DataError(f"{path}: none of its {len(internal)} user ids is in the dataset; is it the right file?")
        rows = np.stack([v for v, ok in zip(profiles.values(), known, strict=True) if ok])
        vectors[internal[known], k] = rows
        present[internal[known], k] = True
    return ProfileTable(vectors, present)
