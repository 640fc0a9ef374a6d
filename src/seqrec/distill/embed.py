"""Profile embeddings: embed each aspect's profile texts, optionally reduce the dimension (PCA or UMAP), and write
the `{user_id: [floats]}` JSON files that profile distillation reads (one file per aspect)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec import text
from seqrec.distill.profile_io import read_profile_texts
from seqrec.distill.store import read_profile_json, write_profile_json
from seqrec.errors import ConfigError, DataError, SeqrecError, suggest

REDUCERS = ("none", "pca", "umap")

__all__ = ["REDUCERS", "EmbedReport", "embed_profiles", "output_paths", "pca", "read_profile_json", "reduce_dim",
           "umap_reduce", "write_profile_json"]


@dataclass
class EmbedReport:
    """Files written by `embed_profiles`, with their shapes."""

    paths: dict[str, Path] = field(default_factory=dict)  # aspect -> JSON file
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # aspect -> (users, dim)
    seconds: float = 0.0


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Project onto the top `dim` principal components (numpy SVD; signs fixed so results are reproducible).

    x [U, E] -> [U, dim]
    """
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= dim <= min(x.shape):
        raise ConfigError(f"PCA to {dim} dimensions needs 1 <= dim <= min(users, embedding size) = {min(x.shape)} "
                          f"({x.shape[0]} users, {x.shape[1]} dimensions); lower --dim")
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # vt [min(U, E), E]
    components = vt[:dim]
    signs = np.sign(components[np.arange(dim), np.abs(components).argmax(axis=1)])
    return (centred @ (components * signs[:, None]).T).astype(np.float32)


def umap_reduce(x: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """UMAP to `dim` components (default UMAP settings, as in the original; n_components honoured).  -> [U, dim]"""
    try:
        import umap
    except ImportError:
        raise SeqrecError("UMAP reduction needs umap-learn: pip install umap-learn (or use --reduce pca)") from None
    if not 1 <= dim < x.shape[0] - 1:
        raise ConfigError(f"UMAP to {dim} dimensions needs 1 <= dim < users - 1 = {x.shape[0] - 1}; lower --dim")
    return umap.UMAP(n_components=dim, random_state=seed).fit_transform(x).astype(np.float32)


def reduce_dim(x: np.ndarray, method: str, dim: int, seed: int = 0) -> np.ndarray:
    """none | pca | umap.  x [U, E] -> [U, E] or [U, dim]"""
    if method not in REDUCERS:
        raise ConfigError(f"unknown reduction {method!r}; choose one of {suggest(REDUCERS)}")
    if method == "pca":
        return pca(x, dim)
    if method == "umap":
        return umap_reduce(x, dim, seed)
    return np.asarray(x, dtype=np.float32)


def output_paths(out: str | Path, aspects: list[str]) -> dict[str, Path]:
    """`OUT.json` for a single aspect, else `OUT.<aspect>.json` per aspect."""
    out = Path(out)
    if len(aspects) == 1:
        return {aspects[0]: out}
    return {a: out.with_name(f"{out.stem}.{a}{out.suffix or '.json'}") for a in aspects}


def embed_profiles(profiles: str | Path, out: str | Path, embedder: text.Embedder | None = None,
                   model: str = text.DEFAULT_TEXT_MODEL, reduce: str = "none", dim: int = 64,
                   overwrite: bool = False, seed: int = 0, max_tokens: int | None = None) -> EmbedReport:
    """Embed every aspect of a profile text file (JSONL) and write one JSON file per aspect."""
    start = time.perf_counter()
    if reduce not in REDUCERS:
        raise ConfigError(f"unknown reduction {reduce!r}; choose one of {suggest(REDUCERS)}")
    by_aspect = read_profile_texts(profiles)
    if not by_aspect:
        raise DataError(f"{profiles}: no profiles in the file")
    paths = output_paths(out, sorted(by_aspect))
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise SeqrecError(f"{', '.join(existing)} already exists; choose another --out or pass --force to replace")
    embed = embedder or text.sentence_embedder(model, show_progress=True, max_tokens=max_tokens)
    report = EmbedReport()
    for aspect, path in paths.items():
        users = list(by_aspect[aspect])
        vectors = np.asarray(embed([by_aspect[aspect][u] for u in users]), dtype=np.float32)  # [U, E]
        vectors = reduce_dim(vectors, reduce, dim, seed)
        write_profile_json(path, dict(zip(users, vectors, strict=True)), overwrite=overwrite)
        report.paths[aspect], report.shapes[aspect] = path, (vectors.shape[0], vectors.shape[1])
    report.seconds = time.perf_counter() - start
    return report
