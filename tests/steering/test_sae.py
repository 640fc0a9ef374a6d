"""TopK SAE: shapes, sparsity, decoder norm, FVU and AuxK on hand-made cases, training, presets."""

from __future__ import annotations

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.steering.sae import SAEConfig, TopKSAE, auxk_loss, fvu
from seqrec.steering.sae_training import evaluate_fvu, fit_sae


def test_forward_shapes_and_top_k_sparsity() -> None:
    torch.manual_seed(0)
    sae = TopKSAE(dim=8, latents=32, k=3)
    out = sae(torch.randn(5, 8))
    assert out.pre.shape == (5, 32) and out.z.shape == (5, 32) and out.x_hat.shape == (5, 8)
    assert ((out.z != 0).sum(1) <= 3).all() and (out.z >= 0).all()
    # the kept entries are the 3 largest pre-activations of each row (when positive)
    top3 = out.pre.topk(3, dim=1).values.relu()
    assert torch.allclose(out.z.sort(1, descending=True).values[:, :3], top3)
    assert torch.allclose(out.x_hat, out.z @ sae.W_dec + sae.b_dec, atol=1e-6)


def test_training_path_equals_inference_path() -> None:
    torch.manual_seed(1)
    sae = TopKSAE(dim=6, latents=24, k=4)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.encoder.bias.normal_()
    x = torch.randn(7, 6)
    fast = sae(x)  # grad enabled: only the top k are differentiated
    with torch.no_grad():
        plain = sae(x)
    assert torch.allclose(fast.x_hat, plain.x_hat, atol=1e-6) and torch.equal(fast.index, plain.index)


def test_decoder_rows_have_unit_norm_at_init_and_after_training() -> None:
    torch.manual_seed(0)
    sae = TopKSAE(dim=8, latents=16, k=2)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(16), atol=1e-6)
    assert torch.allclose(sae.W_dec, sae.encoder.weight / sae.encoder.weight.norm(dim=1, keepdim=True))  # tied
    data = torch.randn(200, 8)
    fit = fit_sae(data[:150], data[150:], SAEConfig(k=2, scale=2, epochs=2, batch_size=50), progress=False)
    assert torch.allclose(fit.sae.W_dec.norm(dim=1), torch.ones(16), atol=1e-5)


def test_fvu_on_a_hand_made_case() -> None:
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    x_hat = torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    assert fvu(x, x_hat).item() == pytest.approx(0.5 / 2.0)  # squared error 0.5, variance around the mean 2
    assert fvu(x, x).item() == 0.0


def test_auxk_on_a_hand_made_case() -> None:
    sae = TopKSAE(dim=2, latents=3, k=1)
    with torch.no_grad():
        sae.encoder.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.encoder.bias.zero_()
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
        sae.b_dec.zero_()
    x = torch.tensor([[2.0, 1.0], [0.0, 0.0]])
    out = sae(x)  # row 0: pre [2, 1, 3] -> latent 2 wins (3), x̂ = 3·[0.6, 0.8] = [1.8, 2.4]; row 1: x̂ = 0
    assert torch.allclose(out.x_hat, torch.tensor([[1.8, 2.4], [0.0, 0.0]]))
    dead = torch.tensor([True, True, False])
    # k_aux = 1 of 2 dead: row 0 picks latent 0 (pre 2) -> ê = [2, 0]; residual = x - x̂ = [0.2, -1.4]
    expected = ((2.0 - 0.2) ** 2 + 1.4**2) / (1.0**2 + 0.5**2 + 1.0**2 + 0.5**2)  # / ||x - mean x||²
    assert auxk_loss(sae, x, out, dead, k_aux=1).item() == pytest.approx(min(2 / 1, 1.0) * expected, rel=1e-5)
    assert auxk_loss(sae, x, out, torch.zeros(3, dtype=torch.bool), k_aux=1).item() == 0.0


def test_fit_reconstructs_low_rank_data_and_logs_dead_latents() -> None:
    torch.manual_seed(0)
    data = torch.randn(1200, 3) @ torch.randn(3, 16)  # rank 3 in 16 dims
    fit = fit_sae(data[:1000], data[1000:], SAEConfig(k=4, scale=4, epochs=15, batch_size=100, lr=3e-3),
                  progress=False)
    valid_fvu, dead = evaluate_fvu(fit.sae, data[1000:])
    assert valid_fvu < 0.15 and valid_fvu == pytest.approx(min(r["valid_fvu"] for r in fit.history))
    assert fit.history[0]["train_auxk"] == 0.0  # no dead set in the first epoch
    assert all(0.0 <= r["dead_ratio"] <= 1.0 for r in fit.history) and 0.0 <= dead <= 1.0


def test_presets_and_overrides() -> None:
    pop, rec = SAEConfig(preset="popsteer"), SAEConfig(preset="recftt")
    assert (pop.k, pop.scale, pop.aux_coef, pop.source, pop.resolved_k_aux(64)) == (32, 64, 0.5, "last", 128)
    assert (rec.k, rec.scale, rec.aux_coef, rec.source, rec.resolved_k_aux(64)) == (8, 16, 1 / 32, "all", 32)
    assert SAEConfig(preset="recftt", k=4, source="last").k == 4


@pytest.mark.parametrize("kwargs", [{"preset": "nosuch"}, {"k": -1}, {"source": "middle"}, {"lr": 0.0}])
def test_bad_configs_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SAEConfig(**kwargs)


def test_more_active_latents_than_latents_is_an_error() -> None:
    with pytest.raises(ConfigError, match="sae.k"):
        TopKSAE(dim=4, latents=8, k=9)


def test_plateau_divides_the_learning_rate_when_validation_fvu_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    from seqrec.steering import sae_training

    monkeypatch.setattr(sae_training, "evaluate_fvu", lambda sae, vectors: (0.5, 0.0))  # never improves
    vectors = torch.randn(256, 8)
    config = SAEConfig(k=2, scale=2, epochs=5, batch_size=64, lr=1e-3, patience=0, plateau=2)  # 2 bad epochs
    fit = sae_training.fit_sae(vectors, vectors[:64], config, progress=False)
    assert [r["lr"] for r in fit.history] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4])
    constant = sae_training.fit_sae(vectors, vectors[:64], SAEConfig(k=2, scale=2, epochs=3, patience=0),
                                    progress=False)
    assert {r["lr"] for r in constant.history} == {1e-3}
    with pytest.raises(ConfigError, match="plateau"):
        SAEConfig(plateau=-1)
    with pytest.raises(ConfigError, match=r"sae.plateau \(3\) must be below sae.patience \(3\)"):
        SAEConfig(plateau=3, patience=3)
