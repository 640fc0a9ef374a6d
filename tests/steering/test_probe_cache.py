"""The probe cache (`probe-<concept>.npz` in an SAE run): damaged caches are rebuilt, caches made with other
settings are not reused silently, and writes are atomic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.catalog import HEAD, MID
from seqrec.data.splits import ItemStats, SplitData
from seqrec.errors import RunError
from seqrec.steering import NeuronStats, load_sae_run, popsteer, probe

CACHE = "probe-popularity.npz"
STATS = ("mean_pop", "std_pop", "mean_unpop", "std_unpop")


def _same(a: NeuronStats, b: NeuronStats) -> bool:
    return all(np.allclose(getattr(a, n), getattr(b, n)) for n in STATS)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _without(file: Path, name: str) -> None:
    """Rewrite the cache without one of its arrays."""
    with np.load(file) as z:
        kept = {k: z[k] for k in z.files if k != name}
    with open(file, "wb") as f:
        np.savez(f, **kept)


def _replace(file: Path, **changes: object) -> None:
    """Rewrite the cache with some arrays replaced (a callable change maps the old array to the new one)."""
    with np.load(file) as z:
        arrays = {k: z[k] for k in z.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name]) if callable(change) else change
    with open(file, "wb") as f:
        np.savez(f, **arrays)


DAMAGE = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]),
    "empty": lambda f: f.write_bytes(b""),
    "garbage": lambda f: f.write_bytes(b"not an npz file" * 20),
    "missing array": lambda f: _without(f, "std_pop"),
    "other neuron count": lambda f: _replace(f, **{n: (lambda a: a[:3]) for n in STATS}),
    "scalar array": lambda f: _replace(f, mean_pop=np.float64(1.0)),
    "non-finite mean": lambda f: _replace(f, mean_unpop=lambda a: np.full_like(a, np.nan)),
    "settings not JSON": lambda f: _replace(f, settings="{oops"),
    "settings of the wrong type": lambda f: _replace(f, settings='{"profiles": "many"}'),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_cache_is_rebuilt_with_a_warning(sae_copy: Path, steer_data: SplitData, damage: str) -> None:
    sae_run = load_sae_run(sae_copy)
    first, computed = probe(sae_run, steer_data, profiles=64)
    assert computed and (sae_copy / CACHE).is_file() and (sae_copy / "probe-popularity.csv").is_file()
    DAMAGE[damage](sae_copy / CACHE)
    with pytest.warns(UserWarning, match=f"{CACHE}.*recomputing"):
        again, computed = probe(sae_run, steer_data, profiles=64)
    assert computed and _same(again, first)
    assert _same(NeuronStats.load(sae_copy / CACHE, sae_run.sae.latents), first)  # rewritten, readable again
    assert _leftovers(sae_copy) == []
    DAMAGE[damage](sae_copy / CACHE)
    with pytest.raises(RunError, match=f"{CACHE}.*probe again"):  # reading it directly names the file and fix
        NeuronStats.load(sae_copy / CACHE, sae_run.sae.latents)


def test_a_cache_made_with_other_settings_is_recomputed(sae_copy: Path, steer_data: SplitData,
                                                        recwarn: pytest.WarningsRecorder) -> None:
    sae_run = load_sae_run(sae_copy)
    small, computed = probe(sae_run, steer_data, profiles=64)
    assert computed and small.settings["profiles"] == 64 and small.settings["seed"] == 0
    assert probe(sae_run, steer_data, profiles=64)[1] is False  # same settings: reused
    with pytest.warns(UserWarning, match=r"other settings \(profiles 64 \(asked for 128\)\); recomputing"):
        large, computed = probe(sae_run, steer_data, profiles=128)
    assert computed and large.profiles == 128 and large.settings["profiles"] == 128
    assert NeuronStats.load(sae_copy / CACHE).settings["profiles"] == 128
    with pytest.warns(UserWarning, match=r"seed 0 \(asked for 3\)"):
        seeded, computed = probe(sae_run, steer_data, profiles=128, seed=3)
    assert computed and seeded.settings["seed"] == 3 and not _same(seeded, large)
    recwarn.clear()
    # steer / popsteer (no profiles, no seed): any cached probe is used, whatever its size, and said which
    reused, computed = probe(sae_run, steer_data)
    assert not computed and _same(reused, seeded) and "128 profiles" in reused.describe()
    assert not recwarn.list
    popsteer(sae_run, alpha=1.0, data=steer_data)
    assert NeuronStats.load(sae_copy / CACHE).settings["seed"] == 3  # not replaced by a default-size probe


def test_a_cache_made_with_other_head_tail_labels_is_recomputed(sae_copy: Path, steer_data: SplitData) -> None:
    sae_run = load_sae_run(sae_copy)
    probe(sae_run, steer_data, profiles=64, seed=2)
    labels = steer_data.item_stats.labels.copy()
    labels[np.flatnonzero(labels == HEAD)[-1]] = MID  # one head item fewer, e.g. another head_share
    relabelled = dataclasses.replace(steer_data, item_stats=ItemStats(steer_data.item_stats.counts, labels))
    with pytest.warns(UserWarning, match="head/tail items"):
        stats, computed = probe(sae_run, relabelled)
    # recomputed with the new labels, keeping the profiles and seed the cache was made with
    assert computed and stats.settings["profiles"] == 64 and stats.settings["seed"] == 2
    assert stats.settings["head_items"] == int((labels[1:] == HEAD).sum())


def test_a_cache_without_recorded_settings(sae_copy: Path, steer_data: SplitData) -> None:
    """Probes written before settings were recorded: reused when nothing is asked for, else recomputed."""
    sae_run = load_sae_run(sae_copy)
    stats, _ = probe(sae_run, steer_data, profiles=64)
    _without(sae_copy / CACHE, "settings")
    old, computed = probe(sae_run)
    assert not computed and old.settings == {} and "not recorded" in old.describe() and _same(old, stats)
    with pytest.warns(UserWarning, match=r"profiles not recorded \(asked for 64\)"):
        assert probe(sae_run, steer_data, profiles=64)[1]


def test_the_cache_is_replaced_atomically(sae_copy: Path, steer_data: SplitData,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sae_run = load_sae_run(sae_copy)
    probe(sae_run, steer_data, profiles=64)
    good = (sae_copy / CACHE).read_bytes()

    def crash(file, **arrays) -> None:  # noqa: ANN001
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.warns(UserWarning, match="other settings"), pytest.raises(KeyboardInterrupt):
        probe(sae_run, steer_data, profiles=128)
    assert (sae_copy / CACHE).read_bytes() == good and _leftovers(sae_copy) == []
