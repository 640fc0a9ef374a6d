"""What a user of steering is told: an SAE that reconstructs poorly, an attribute no latent raises, latents read
from `sae choose`'s files, and tuning where no epoch keeps the accuracy guard."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.splits import SplitData
from seqrec.errors import RunError
from seqrec.runs import Run
from seqrec.steering import SAEConfig, SAERun, train_sae
from seqrec.steering.latent_sweep import LatentSweep
from seqrec.steering.pipeline import sae_quality_warnings
from seqrec.steering.recftt import select_latents, sweep_latents, tune
from seqrec.steering.tuning import TuneConfig

GOOD = {"valid_base_NDCG@10": 0.20, "valid_sae_NDCG@10": 0.197, "valid_fvu": 0.05}


def test_sae_quality_warnings_by_hand() -> None:
    assert sae_quality_warnings(GOOD) == []  # 1.5% cost, FVU 5%
    costly = sae_quality_warnings({**GOOD, "valid_sae_NDCG@10": 0.18})
    assert len(costly) == 1 and "costs 10.0% of validation NDCG@10 (0.2000 -> 0.1800)" in costly[0]
    rough = sae_quality_warnings({**GOOD, "valid_fvu": 0.22})
    assert len(rough) == 1 and "22.0% of the validation vectors' variance" in rough[0]
    assert len(sae_quality_warnings({**GOOD, "valid_base_NDCG@10": 0.0, "valid_sae_NDCG@10": 0.0})) == 0


def test_a_crippled_sae_is_reported_when_trained(base_run: Run, steer_data: SplitData, tmp_path: Path) -> None:
    crippled = SAEConfig(k=1, scale=1, epochs=1, batch_size=256, max_vectors=500, valid_vectors=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_sae(base_run, crippled, data=steer_data, output_dir=tmp_path / "sae", progress=False)
    messages = [str(w.message) for w in caught]
    assert any("variance unexplained" in m for m in messages) and any("costs" in m for m in messages)
    assert run.metrics["valid_fvu"] > 0.1 and run.metrics["warnings"] == messages
    assert json.loads((tmp_path / "sae" / "metrics.json").read_text())["warnings"] == run.metrics["warnings"]


def planted_sweep(path: Path | None = None) -> LatentSweep:
    """Latents 0 and 3 raise Sci-Fi, 2 lowers it; no latent raises Horror."""
    ratios = np.zeros((2, 5, 2))
    ratios[0, :, 0], ratios[1, :, 0] = [0.5, 0.2, 0.1, 0.3, 0.9], [0.1, 0.2, 0.4, 0.1, 0.0]
    ratios[0, :, 1], ratios[1, :, 1] = [0.1, 0.1, 0.0, 0.1, 0.0], [0.3, 0.1, 0.2, 0.1, 0.0]
    return LatentSweep(["Sci-Fi", "Horror"], (10.0, 0.1), ratios, np.zeros((5, 2)), np.array([3, 2, 4, 1, 0]),
                       path=path)


def test_an_attribute_no_latent_raises_is_a_warning() -> None:
    with pytest.warns(UserWarning, match="Horror: the latent sweep found no latent that raises it"):
        latents, sources = select_latents(planted_sweep(), ["Horror"], 1)
    assert latents == [2] and "top 0 raising + 1 lowering" in sources["Horror"]


def test_latents_come_from_sae_choose_files_when_present(tmp_path: Path) -> None:
    (tmp_path / "controller_Sci_Fi.json").write_text(json.dumps({"comment": "hand", "ablations": [4, 1]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latents, sources = select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 1)
    assert latents == [1, 4] and "controller_Sci_Fi.json" in sources["Sci-Fi"]
    assert select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 1, use_choose=False)[0] == [0, 2]
    (tmp_path / "controller_Sci_Fi.json").write_text(json.dumps({"ablations": [9]}))
    with pytest.raises(RunError, match="outside the SAE's 0..4"):
        select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 1)
    (tmp_path / "controller_Sci_Fi.json").write_text("{")
    with pytest.raises(RunError, match="damaged"):
        select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 1)


def test_tuning_where_every_epoch_breaks_the_guard_keeps_the_base(sae_run: SAERun, steer_data: SplitData) -> None:
    sweep = sweep_latents(sae_run, ["Comedy"], steer_data, top=20, save=False)
    config = TuneConfig(targets=["Comedy"], latents=8, weight=50.0, lr=0.5, epochs=3, batch_size=256, max_drop=0.0)
    run = tune(sae_run, config, data=steer_data, sweep=sweep, progress=False)  # saved: no infinity in history
    assert run.metrics["best_epoch"] == 0
    broken = [r for r in run.history[1:] if r["selection"] is None]
    assert broken and all(r["NDCG@10"] < run.history[0]["NDCG@10"] for r in broken)
    assert run.metrics["latent_sources"]["Comedy"].startswith("top ")


def test_a_suppressed_attribute_needs_a_latent_that_lowers_it() -> None:
    # Sci-Fi has lowering latent 2, so suppressing it is quiet; Horror is lowered by 0 and 2 as well
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select_latents(planted_sweep(), ["Sci-Fi"], 1, suppressed=["Sci-Fi"])
    lower_nothing = planted_sweep()
    lower_nothing.ratios[1, :, 0] = 0.0  # ×0.1 never lowers Sci-Fi now: every score is >= 0
    with pytest.warns(UserWarning, match="Sci-Fi: the latent sweep found no latent that lowers it"):
        select_latents(lower_nothing, ["Sci-Fi"], 1, suppressed=["Sci-Fi"])


def test_an_explicit_x_is_overridden_by_a_choose_file_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "controller_Sci_Fi.json").write_text(json.dumps({"ablations": [4, 1]}))
    with pytest.warns(UserWarning, match="using the 2 latents `sae choose` wrote .* not x=3"):
        select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 3, x_given=True)
    for bad in ('{"ablations": "12"}', '{"ablations": []}', '{"ablations": [1.5]}'):
        (tmp_path / "controller_Sci_Fi.json").write_text(bad)
        with pytest.raises(RunError, match="non-empty list of latent ids"):
            select_latents(planted_sweep(tmp_path), ["Sci-Fi"], 1)


def test_auto_size_doubles_until_the_sae_reconstructs_well(base_run: Run, steer_data: SplitData,
                                                           tmp_path: Path) -> None:
    from seqrec.steering.pipeline import train_sae_sized

    small = SAEConfig(k=1, scale=1, epochs=2, batch_size=256, max_vectors=1000, valid_vectors=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train_sae_sized(base_run, small, data=steer_data, output_dir=tmp_path / "sized", progress=False,
                              sizes=3)
    tried = run.metrics["sizes_tried"]
    assert [(t["latents"], t["k"]) for t in tried][:2] == [(16, 1), (32, 2)]  # hidden 16: scale 1, then 2
    assert tried[0]["valid_fvu"] > 0.1  # a 1-sparse code cannot reconstruct: the search went on
    best = min(tried, key=lambda t: (t["valid_fvu"] > 0.1 or t["valid_cost"] > 0.03, t["valid_cost"]))
    assert (run.sae.latents, run.config.k) == (best["latents"], best["k"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sized"]  # only the chosen size is saved
