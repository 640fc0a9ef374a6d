"""A content hash of a split dataset: the same interactions, ids and split give the same fingerprint.

The hash covers what a run learns from and is measured on: every training sequence, the full histories, the
validation and test users, histories and targets, and the user and item id maps. The split settings (kind, shares,
seed, k-core thresholds) enter through their effect on those arrays. The popularity labels (`head_share`,
`tail_share`) do not: they are an analysis setting later stages may change (a probe records the labels it used).
Arrays are hashed as their bytes in one canonical dtype, never row by row.
"""

from __future__ import annotations

import hashlib

import numpy as np

from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Sequences
from seqrec.data.splits import EvalSplit, SplitData

VERSION = b"seqrec-data-fingerprint-1"
SHOWN = 12  # hex digits shown in messages


def data_fingerprint(data: SplitData) -> str:
    """The sha256 (hex) of `data`'s content; equal data gives an equal hash on every machine."""
    digest = hashlib.sha256(VERSION)
    _add_ids(digest, b"users", data.user_map)
    _add_ids(digest, b"items", data.item_map)
    _add_sequences(digest, b"train", data.train)
    _add_sequences(digest, b"full", data.full_histories)
    for split in (data.valid, data.test):
        _add_split(digest, split)
    return digest.hexdigest()


def short(fingerprint: str) -> str:
    """The prefix of a fingerprint shown in messages."""
    return fingerprint[:SHOWN]


def _add_split(digest: hashlib._Hash, split: EvalSplit) -> None:
    name = split.name.encode()
    _add_array(digest, name + b".users", split.users)
    _add_sequences(digest, name + b".histories", split.histories)
    _add_array(digest, name + b".targets", split.targets)


def _add_sequences(digest: hashlib._Hash, name: bytes, sequences: Sequences) -> None:
    _add_array(digest, name + b".offsets", sequences.offsets)
    _add_array(digest, name + b".items", sequences.items)


def _add_ids(digest: hashlib._Hash, name: bytes, ids: IdMap) -> None:
    """Ids that are all integers written the canonical way hash as int64, any others as UTF-8 text, whatever the
    map stores them as."""
    values = getattr(ids, "values", None)
    values = values if isinstance(values, np.ndarray) else np.asarray(ids.external)
    header = f"{ids.offset}:{len(values)}:".encode()
    ints = _canonical_ints(values)
    if ints is not None:
        _add_bytes(digest, name + b".int", header + np.ascontiguousarray(ints, dtype="<i8").tobytes())
        return
    text = "\x1f".join(values.astype(str).tolist())  # \x1f: a separator no id file holds
    _add_bytes(digest, name + b".str", header + text.encode("utf-8", "surrogatepass"))


def _canonical_ints(values: np.ndarray) -> np.ndarray | None:
    """`values` as integers when each is one written the canonical way ("42", not "042" or "+42"), else None."""
    if values.dtype.kind in "iu":
        return values
    try:
        ints = values.astype(np.int64)
    except (ValueError, OverflowError, TypeError):
        return None
    return ints if np.array_equal(ints.astype(str), values.astype(str)) else None


def _add_array(digest: hashlib._Hash, name: bytes, array: np.ndarray) -> None:
    canonical = np.ascontiguousarray(array, dtype="<i8")
    _add_bytes(digest, name, memoryview(canonical).cast("B"))


def _add_bytes(digest: hashlib._Hash, name: bytes, payload: bytes | memoryview) -> None:
    """A named, length-prefixed field, so no two different contents hash the same stream of bytes."""
    digest.update(len(name).to_bytes(8, "little") + name + len(payload).to_bytes(8, "little"))
    digest.update(payload)
