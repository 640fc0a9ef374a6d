"""Saved latent sweeps: damaged or inconsistent sweep.json / sweep.npz are RunErrors naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from seqrec.errors import RunError
from seqrec.steering.latent_sweep import SWEEP_ARRAYS, SWEEP_META, LatentSweep, load_sweep, save_sweep
from seqrec.steering.recftt import find_sweep


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    ratios = np.zeros((2, 5, 2))
    ratios[0, :, 0] = [0.5, 0.2, 0.1, 0.3, 0.9]
    ratios[1, :, 0] = [0.1, 0.2, 0.4, 0.1, 0.0]
    sweep = LatentSweep(["Sci-Fi", "Drama"], (10.0, 0.1), ratios, np.full((5, 2), 0.25), np.array([3, 2, 4, 1, 0]))
    return save_sweep(sweep, tmp_path / "latent-sweep-valid")


def _rewrite_meta(path: Path, **changes: object) -> None:
    meta = json.loads((path / SWEEP_META).read_text())
    (path / SWEEP_META).write_text(json.dumps({**meta, **changes}))


def _rewrite_arrays(path: Path, **changes: np.ndarray) -> None:
    with np.load(path / SWEEP_ARRAYS) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez_compressed(path / SWEEP_ARRAYS, **{**arrays, **changes})


def test_round_trip(saved: Path) -> None:
    sweep = load_sweep(saved, latents=5)
    assert sweep.attributes == ["Sci-Fi", "Drama"] and sweep.scores.shape == (5, 2) and sweep.path == saved


@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped bytes"])
def test_damaged_arrays(saved: Path, damage: str) -> None:
    file = saved / SWEEP_ARRAYS
    good = file.read_bytes()
    if damage == "truncated":
        file.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        file.write_bytes(b"")
    else:
        middle = len(good) // 3
        file.write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle: middle + 40]) + good[middle + 40:])
    with pytest.raises(RunError, match=rf"{SWEEP_ARRAYS} is damaged.*seqrec sae sweep"):
        load_sweep(saved)


@pytest.mark.parametrize(("changes", "message"), [
    ({"attributes": 7}, "attributes"),
    ({"scales": [10.0]}, "two different positive scales"),
    ({"scales": [10.0, 0.1, 2.0]}, r"do not fit 3 scales"),  # sweep.npz holds 2
    ({"attributes": ["Sci-Fi"]}, r"do not fit .* 1 attributes"),
    ({"top": 0}, "top=0"),
    ({"split": "train"}, "split='train'"),
])
def test_inconsistent_meta(saved: Path, changes: dict, message: str) -> None:
    _rewrite_meta(saved, **changes)
    with pytest.raises(RunError, match=rf"{SWEEP_META}|{SWEEP_ARRAYS}"):
        load_sweep(saved)
    with pytest.raises(RunError, match=message):
        load_sweep(saved)


def test_meta_that_is_not_a_mapping(saved: Path) -> None:
    (saved / SWEEP_META).write_text("[1, 2]")
    with pytest.raises(RunError, match=rf"{SWEEP_META} is damaged"):
        load_sweep(saved)


@pytest.mark.parametrize(("changes", "message"), [
    ({"case_counts": np.array([3, 2, 4])}, "do not fit"),
    ({"base_ratios": np.zeros((5, 3))}, "do not fit"),
    ({"case_counts": np.array([3, -2, 4, 1, 0])}, "counts"),
    ({"ratios": np.full((2, 5, 2), np.nan)}, "finite"),
    ({"ratios": np.full((2, 5, 2), 7.0)}, "between 0 and 1"),
])
def test_inconsistent_arrays(saved: Path, changes: dict, message: str) -> None:
    _rewrite_arrays(saved, **changes)
    with pytest.raises(RunError, match=rf"{SWEEP_ARRAYS} is inconsistent \(.*{message}"):
        load_sweep(saved)


def test_a_sweep_of_another_sae_is_not_used(saved: Path) -> None:
    with pytest.raises(RunError, match="sweeps 5 latents, the SAE has 7"):
        load_sweep(saved, latents=7)
    other_sae = SimpleNamespace(path=saved.parent, sae=SimpleNamespace(latents=7))
    assert find_sweep(other_sae, ["Sci-Fi"]) is None  # type: ignore[arg-type]
    same_sae = SimpleNamespace(path=saved.parent, sae=SimpleNamespace(latents=5))
    assert find_sweep(same_sae, ["Sci-Fi"]).path == saved  # type: ignore[arg-type, union-attr]
