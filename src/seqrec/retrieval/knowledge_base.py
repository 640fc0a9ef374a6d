"""FAISS knowledge base of training prefixes: one (key, target, user, length) entry per prefix, cosine search with the
leakage rule (a query never sees its own prefix or any later prefix of its own user)."""

from __future__ import annotations

import logging
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from seqrec.errors import ConfigError, RunError, SeqrecError
from seqrec.files import write_file_atomically

log = logging.getLogger(__name__)

NPZ_NAME = "knowledge_base.npz"
RETRAIN = ("retrain the run (`seqrec train CONFIG`); `seqrec rebuild-index` only re-indexes the stored keys and "
           "cannot repair them")
# what np.load raises on a truncated, emptied or otherwise damaged .npz
NPZ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)
INDEX_NAME = "knowledge_base.faiss"
_warned_no_gpu = False


@dataclass
class Neighbours:
    """Top-k neighbours per query, sorted by score descending, real ones first."""

    ids: np.ndarray  # [Q, k] int64 KB row ids, -1 where fewer than k survived
    scores: np.ndarray  # [Q, k] float32 cosine similarity, -inf where padded
    mask: np.ndarray  # [Q, k] bool, True = real neighbour


def require_faiss() -> ModuleType:
    """Import faiss, or raise SeqrecError saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise SeqrecError("retrieval needs faiss; install it with `pip install 'seqrec[retrieval]'` "
                          "(or faiss-gpu on CUDA machines)") from None
    return faiss


def default_nlist(n: int) -> int:
    """IVF list count for n keys: about 39 keys per list, at most 128 lists."""
    return min(128, max(1, n // 39))


def _normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalised float32 contiguous copy of x [N, D]; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # [N, 1]
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _as_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """Check a non-empty finite float matrix [N, D] (D == dim when given); return it float32 contiguous."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise SeqrecError(f"{name} must be a non-empty 2-D array [N, D], got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise SeqrecError(f"{name} has dimension {x.shape[1]}, but the knowledge base keys have {dim}")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise SeqrecError(f"{name} must hold finite floats, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _as_ids(x: Any, name: str, n: int) -> np.ndarray:
    """Check an integer vector [n]; return it int64 contiguous."""
    x = np.asarray(x)
    if x.shape != (n,):
        raise SeqrecError(f"{name} must have shape ({n},) to match the keys, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise SeqrecError(f"{name} must hold integers, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.int64)


def _build_index(faiss: ModuleType, normed: np.ndarray, nlist: int, nprobe: int, exact_below: int,
                 seed: int) -> tuple[Any, dict[str, int]]:
    """Flat inner-product index below exact_below keys, else a trained IVF-Flat one; returns (index, settings)."""
    n, d = normed.shape
    if n < exact_below:
        index = faiss.IndexFlatIP(d)
        nlist = 0
    else:
        nlist = min(nlist or default_nlist(n), n)
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(normed)
        nprobe = min(nprobe, nlist)
        index.nprobe = nprobe
    index.add(normed)
    return index, {"nlist": nlist, "nprobe": nprobe, "exact_below": exact_below, "seed": seed}


def _to_device(faiss: ModuleType, index: Any, use_gpu: bool) -> tuple[Any, bool]:
    """Move the index to all GPUs when asked and available; warn once when asked but none is available."""
    global _warned_no_gpu
    if not use_gpu:
        return index, False
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        return faiss.index_cpu_to_all_gpus(index), True
    if not _warned_no_gpu:
        log.warning("use_gpu was requested but faiss sees no GPU (faiss-cpu build?); the knowledge base stays on CPU")
        _warned_no_gpu = True
    return index, False


def _read_index(faiss: ModuleType, path: Path, n: int, d: int) -> Any:
    """Read a faiss index and check it matches the keys; raise ValueError(reason) when it does not."""
    if not path.is_file():
        raise ValueError("file is missing")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        detail = re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", str(e).strip().splitlines()[-1])
        raise ValueError(detail[:200] or "faiss could not read it, the file is probably truncated") from None
    if index.ntotal != n or index.d != d:
        raise ValueError(f"index holds {index.ntotal} vectors of dimension {index.d}, the keys are [{n}, {d}]")
    return index


def _compact(ids: np.ndarray, scores: np.ndarray, ok: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the first k allowed candidates per row (order preserved), padded with -1 / -inf / False."""
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # [Q, k] allowed candidates first
    mask = np.take_along_axis(ok, order, axis=1)
    out_ids = np.where(mask, np.take_along_axis(ids, order, axis=1), -1).astype(np.int64)
    out_scores = np.where(mask, np.take_along_axis(scores, order, axis=1), -np.inf).astype(np.float32)
    return out_ids, out_scores, mask


class KnowledgeBase:
    """Keys [N, D] float32, targets/users/lengths [N] int64, and a cosine FAISS index over the normalised keys."""

    def __init__(self, keys: np.ndarray, targets: np.ndarray, users: np.ndarray, lengths: np.ndarray, index: Any,
                 settings: dict[str, int], on_gpu: bool = False) -> None:
        """Wrap validated arrays and an index built over them; use build or load instead."""
        self.keys, self.targets, self.users, self.lengths = keys, targets, users, lengths
        self.index = index
        self.settings = settings
        self.on_gpu = on_gpu

    @classmethod
    def build(cls, keys: np.ndarray, targets: np.ndarray, users: np.ndarray, lengths: np.ndarray, *, nlist: int = 0,
              nprobe: int = 10, exact_below: int = 10_000, use_gpu: bool = False, seed: int = 0) -> KnowledgeBase:
        """Validate the arrays and index the normalised keys (exact below exact_below entries, else IVF-Flat)."""
        keys = _as_matrix(keys, "keys")
        n = keys.shape[0]
        targets, users, lengths = (_as_ids(a, name, n) for a, name in
                                   ((targets, "targets"), (users, "users"), (lengths, "lengths")))
        faiss = require_faiss()
        index, settings = _build_index(faiss, _normalise(keys), nlist, nprobe, exact_below, seed)
        index, on_gpu = _to_device(faiss, index, use_gpu)
        return cls(keys, targets, users, lengths, index, settings, on_gpu)

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def dim(self) -> int:
        """Key dimension D."""
        return int(self.keys.shape[1])

    def _allowed(self, ids: np.ndarray, users: np.ndarray | None, lengths: np.ndarray | None,
                 exclude_user: bool) -> np.ndarray:
        """[Q, F] bool: valid id and not leaking (other user, or same user with a strictly shorter prefix)."""
        ok = ids >= 0
        if users is None:
            return ok
        safe = np.where(ok, ids, 0)
        same = self.users[safe] == users[:, None]  # [Q, F]
        if exclude_user:
            return ok & ~same
        return ok & (~same | (self.lengths[safe] < lengths[:, None]))

    def _fetch(self, q: np.ndarray, fetch: int, users: np.ndarray | None, lengths: np.ndarray | None, k: int,
               exclude_user: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Search fetch candidates, filter, keep k: (ids, scores, mask, growable [Q] bool)."""
        scores, ids = self.index.search(q, fetch)  # [Q, fetch] each
        out_ids, out_scores, mask = _compact(ids, scores, self._allowed(ids, users, lengths, exclude_user), k)
        growable = (mask.sum(axis=1) < k) & (ids >= 0).all(axis=1) & (fetch < len(self))
        return out_ids, out_scores, mask, growable

    def search(self, queries: np.ndarray, k: int, users: np.ndarray | None = None, lengths: np.ndarray | None = None,
               *, over_fetch: int = 4, exclude_user: bool = False, max_fetch: int = 4096) -> Neighbours:
        """Top-k cosine neighbours of raw queries [Q, D] under the leakage rule; no filter when users is None."""
        q = _normalise(_as_matrix(queries, "queries", self.dim))
        n = len(self)
        if k < 1 or k > n:
            raise ConfigError(f"retrieval.top_k={k} must be between 1 and the knowledge base size ({n} entries)")
        if users is not None:
            users = _as_ids(users, "users", q.shape[0])
            if lengths is None and not exclude_user:
                raise SeqrecError("lengths is required with users (the leakage rule compares prefix lengths)")
            lengths = None if lengths is None else _as_ids(lengths, "lengths", q.shape[0])
        fetch = min(n, max(k, min(over_fetch * k, max_fetch)))
        ids, scores, mask, growable = self._fetch(q, fetch, users, lengths, k, exclude_user)
        rows = np.flatnonzero(growable)
        while rows.size and min(n, max_fetch, 4 * fetch) > fetch:
            fetch = min(n, max_fetch, 4 * fetch)
            sub = (None, None) if users is None else (users[rows], None if lengths is None else lengths[rows])
            ids[rows], scores[rows], mask[rows], growable = self._fetch(q[rows], fetch, *sub, k, exclude_user)
            rows = rows[growable]
        return Neighbours(ids=ids, scores=scores, mask=mask)

    def _cpu_index(self) -> Any:
        """The index on CPU (a copy when it lives on GPU)."""
        return require_faiss().index_gpu_to_cpu(self.index) if self.on_gpu else self.index

    def save(self, folder: Path) -> None:
        """Write knowledge_base.npz (arrays + settings) and knowledge_base.faiss into folder, each atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {name: np.int64(value) for name, value in self.settings.items()}

        def write_npz(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, keys=self.keys, targets=self.targets, users=self.users, lengths=self.lengths, **meta)

        write_file_atomically(folder / NPZ_NAME, write_npz)
        index = self._cpu_index()
        write_file_atomically(folder / INDEX_NAME, lambda tmp: require_faiss().write_index(index, tmp))

    @classmethod
    def load(cls, folder: Path, *, rebuild: bool = False, use_gpu: bool = False,
             num_items: int | None = None) -> KnowledgeBase:
        """Read a saved knowledge base; a bad index file raises RunError, or is rebuilt from the keys when rebuild.

        Damaged stored arrays (unreadable, inconsistent lengths, next items outside 1..num_items, negative users,
        empty prefixes) raise RunError too: `seqrec rebuild-index` only re-indexes the stored keys, so those need
        the run retrained.
        """
        folder = Path(folder)
        npz_path, index_path = folder / NPZ_NAME, folder / INDEX_NAME
        if not npz_path.is_file():
            raise RunError(f"{npz_path} is missing; {RETRAIN}")
        try:
            with np.load(npz_path) as z:
                arrays = {name: z[name] for name in ("keys", "targets", "users", "lengths")}
                settings = {name: int(z[name]) for name in ("nlist", "nprobe", "exact_below", "seed")}
        except NPZ_ERRORS as e:
            raise RunError(f"{npz_path} is unreadable ({type(e).__name__}: {e}); {RETRAIN}") from None
        try:
            keys = _as_matrix(arrays["keys"], "keys")
            n, d = keys.shape
            targets, users, lengths = (_as_ids(arrays[name], name, n) for name in ("targets", "users", "lengths"))
        except SeqrecError as e:
            raise RunError(f"{npz_path} is damaged ({e}); {RETRAIN}") from None
        problem = _entry_problem(targets, users, lengths, settings, num_items)
        if problem:
            raise RunError(f"{npz_path} is damaged ({problem}); {RETRAIN}")
        faiss = require_faiss()
        try:
            index = _read_index(faiss, index_path, n, d)
        except ValueError as e:
            if not rebuild:
                hint = f"rebuild it with `seqrec rebuild-index {folder}`"
                raise RunError(f"{index_path} is corrupted ({e}); {hint}") from None
            log.warning("%s is corrupted (%s); rebuilding it from %s", index_path, e, npz_path)
            index, settings = _build_index(faiss, _normalise(keys), **settings)
            write_file_atomically(index_path, lambda tmp: faiss.write_index(index, tmp))
        if settings["nlist"] and hasattr(index, "nprobe"):
            index.nprobe = settings["nprobe"]
        index, on_gpu = _to_device(faiss, index, use_gpu)
        return cls(keys, targets, users, lengths, index, settings, on_gpu)


def _entry_problem(targets: np.ndarray, users: np.ndarray, lengths: np.ndarray, settings: dict[str, int],
                   num_items: int | None) -> str:
    """What is wrong with stored entries (next items 1..num_items, users >= 0, prefixes >= 1 item); "" if fine."""
    top = "" if num_items is None else f"..{num_items}"
    bad_target = (targets < 1) | (targets > num_items) if num_items is not None else targets < 1
    for name, values, bad, rule in (("targets", targets, bad_target, f"next items must be 1{top}"),
                                    ("users", users, users < 0, "users must be >= 0"),
                                    ("lengths", lengths, lengths < 1, "prefix lengths must be >= 1")):
        if bad.any():
            row = int(np.argmax(bad))
            return f"{name}[{row}] = {values[row]}: {rule}; {int(bad.sum())} of {len(values)} entries are out of range"
    if settings["nlist"] < 0 or settings["nprobe"] < 1 or settings["exact_below"] < 0:
        return f"index settings {settings} are invalid"
    return ""
