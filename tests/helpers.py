"""Tiny configs shared by the tests (import with `from helpers import ...`)."""

from __future__ import annotations

from seqrec.models.base import MODEL_REGISTRY, ModelConfig
from seqrec.training.config import EvalConfig, TrainConfig

TINY_SYNTHETIC = {"num_users": 60, "num_items": 40, "mean_seq_len": 8, "min_seq_len": 5, "max_seq_len": 15}
TINY_EVAL = EvalConfig(ks=(5, 10))


def tiny_model_config(name: str, **overrides: object) -> ModelConfig:
    """A small config of any registered model, built only from the fields every model config shares."""
    config_cls, _ = MODEL_REGISTRY[name]
    return config_cls(**{"max_len": 10, "hidden": 16, "dropout": 0.1, **overrides})


def tiny_train_config(**overrides: object) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 32, "lr": 3e-3, "patience": 0, "device": "cpu",
                          "seed": 0, **overrides})


def assert_cli_error(argv: list[str], expected: str, monkeypatch, capsys) -> None:
    """`seqrec ARGV` exits with code 2 and one `error:` line containing `expected`, no traceback."""
    import sys

    import pytest

    from seqrec import cli

    monkeypatch.setattr(sys, "argv", ["seqrec", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and err.startswith("error: ") and expected in " ".join(err.split())
    assert "Traceback" not in out + err


def ranking_trainer(model, data, config: TrainConfig, eval_config: EvalConfig | None = None, **options):  # noqa: ANN001, ANN201
    """A `Trainer` that validates with ranking metrics on `data.valid` (what `seqrec.api.train` builds)."""
    from seqrec.evaluation.validation import RankingValidation
    from seqrec.training.trainer import Trainer

    return Trainer(model, data, config, validate=RankingValidation(data.valid, config, eval_config), **options)
