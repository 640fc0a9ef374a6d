"""Stage configs of `seqrec llm`: YAML round trips, option and `--set` precedence, key-naming errors, loggers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from seqrec import cli
from seqrec.config import write_yaml
from seqrec.errors import ConfigError
from seqrec.llm.align import AlignSettings
from seqrec.llm.grpo import GRPOSettings
from seqrec.llm.report_to import check_report_to, report_to_option
from seqrec.llm.stage_config import (
    AlignStageConfig,
    EvaluateStageConfig,
    GRPOStageConfig,
    SketchStageConfig,
    read_stage_config,
)
from seqrec.llm.stage_runs import read_stage
from seqrec.llm.warmup import WarmupSettings

runner = CliRunner()

CONFIGS = [
    SketchStageConfig(data="synthetic", clusters=4, theta=3.5, tokenizer=None, endpoint="https://x.org/v1",
                      allow_http=True),
    GRPOStageConfig(model="runs/llm/grpo", sketch="shipped", limit=64, logging_dir="tb",
                    grpo=GRPOSettings(lr=1e-5, group_size=4, report_to=("tensorboard",)),
                    warmup=WarmupSettings(rows=256, lr=1e-4, report_to=("tensorboard", "mlflow"))),
    AlignStageConfig(model="runs/llm/grpo", max_history=5, align=AlignSettings(ce_weight=0.5, layers=(0, 2),
                                                                                   target_modules=("q_proj",))),
    EvaluateStageConfig(predictor="global-mean", split="valid", mode="cot", limit=20, data_dir="/data"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stage)
def test_yaml_round_trip(config: SketchStageConfig, tmp_path: Path) -> None:
    path = tmp_path / f"{config.stage}.yaml"
    config.to_yaml(path)
    assert yaml.safe_load(path.read_text())["stage"] == config.stage
    assert type(config).from_yaml(path) == config


def test_defaults_match_the_command_line_defaults() -> None:
    grpo = GRPOStageConfig()
    assert (grpo.data, grpo.model, grpo.sketch, grpo.max_history, grpo.warmup.rows) == \
        ("movies-tv", "smollm2", "none", 10, 0)
    assert grpo.grpo.report_to == ("none",) and grpo.warmup.report_to == ("none",)
    assert AlignStageConfig(model="m").align.eval_every == 50
    assert EvaluateStageConfig(predictor="p").mode == "answer-only"


def test_options_override_the_file_and_set_overrides_both(tmp_path: Path) -> None:
    path = tmp_path / "grpo.yaml"
    write_yaml({"model": "a", "limit": 8, "grpo": {"lr": 1e-5, "steps": 3}, "warmup": {"rows": 16}}, path)
    config = read_stage_config(GRPOStageConfig, path, {"model": "b", "limit": None, "grpo.steps": 5},
                               ["grpo.steps=7", "warmup.report_to=tensorboard", "sketch=shipped"])
    assert (config.model, config.limit, config.sketch) == ("b", 8, "shipped")
    assert (config.grpo.lr, config.grpo.steps, config.warmup.rows) == (1e-5, 7, 16)
    assert config.warmup.report_to == ("tensorboard",)
    assert GRPOStageConfig.from_yaml(None, ["grpo.epochs=1e-1"]).grpo.epochs == pytest.approx(0.1)


@pytest.mark.parametrize(("override", "message"), [
    ("grpo.lrr=1", r"unknown config key grpo\.lrr; valid keys: .*\blr\b.*report_to"),
    ("clusterz=4", r"unknown config key clusterz; valid keys: .*clusters.*embedder"),
    ("warmup.rows=-1", r"warmup\.rows must be >= 0"),
    ("grpo.group_size=1", r"grpo\.group_size must be at least 2"),
])
def test_unknown_and_invalid_keys_are_named(override: str, message: str) -> None:
    cls = SketchStageConfig if override.startswith("clusterz") else GRPOStageConfig
    with pytest.raises(ConfigError, match=message):
        cls.from_yaml(None, [override])


@pytest.mark.parametrize("value", ["nan", ".inf", "-.inf"])
def test_non_finite_floats_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"grpo\.lr must be a finite number"):
        GRPOStageConfig.from_yaml(None, [f"grpo.lr={value}"])
    with pytest.raises(ConfigError, match=r"theta must be a finite number"):
        SketchStageConfig.from_yaml(None, [f"theta={value}"])
    with pytest.raises(ConfigError, match=r"align\.ce_weight must be a finite number"):
        AlignSettings(ce_weight=math.nan)
    with pytest.raises(ConfigError, match=r"warmup\.lr must be a finite number"):
        WarmupSettings(lr=math.inf)


def test_values_are_checked_in_python_too() -> None:
    with pytest.raises(ConfigError, match="model must name the base"):
        AlignStageConfig()
    with pytest.raises(ConfigError, match="mode must be one of answer-only, cot"):
        EvaluateStageConfig(predictor="global-mean", mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="apply to --endpoint only"):
        SketchStageConfig(allow_http=True)
    with pytest.raises(ConfigError, match=r"limit must be >= 1"):
        GRPOStageConfig(limit=0)
    with pytest.raises(ConfigError, match=r"grpo\.scale_rewards must be group, batch or none"):
        GRPOSettings(scale_rewards="std")  # type: ignore[arg-type]


def test_a_config_of_another_stage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sketch.yaml"
    SketchStageConfig().to_yaml(path)
    with pytest.raises(ConfigError, match="is a sketch config, not a grpo config"):
        GRPOStageConfig.from_yaml(path)


def test_report_to_is_checked() -> None:
    check_report_to(("tensorboard", "mlflow"), "grpo.report_to")
    with pytest.raises(ConfigError, match=r"grpo\.report_to: none and all stand alone"):
        check_report_to(("none", "tensorboard"), "grpo.report_to")
    with pytest.raises(ConfigError, match=r"grpo\.report_to must name loggers"):
        GRPOSettings(report_to=())
    assert report_to_option(("none",), "k") == "none" and report_to_option(("all",), "k") == "all"
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match=r"warmup\.report_to: unknown logger 'tensorbord'; valid loggers: .*"
                                          r"tensorboard"):
        report_to_option(("tensorbord",), "warmup.report_to")


def test_grpo_config_passes_report_to_through(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    pytest.importorskip("tensorboard")
    from seqrec.llm.grpo import grpo_config

    config = grpo_config(GRPOSettings(report_to=("tensorboard",)), tmp_path, progress=False)
    assert config.report_to == ["tensorboard"]


def test_the_command_reads_yaml_options_and_set(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.yaml"
    write_yaml({"predictor": "global-mean", "data": "synthetic", "split": "valid", "limit": 3}, path)
    result = runner.invoke(cli.app, ["llm", "evaluate", "--config", str(path), "--limit", "4", "--set", "split=test",
                                     "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = read_stage(tmp_path / "run", "evaluate")
    assert run.metrics["n"] == 4 and run.metrics["split"] == "test"
    assert EvaluateStageConfig.from_yaml(tmp_path / "run" / "config.yaml") == \
        EvaluateStageConfig(predictor="global-mean", data="synthetic", split="test", limit=4)


def test_the_command_names_an_unknown_key() -> None:
    result = runner.invoke(cli.app, ["llm", "evaluate", "global-mean", "--data", "synthetic", "--set", "limt=3"])
    assert isinstance(result.exception, ConfigError)
    assert "unknown config key limt; valid keys:" in str(result.exception) and "limit" in str(result.exception)


def test_the_yaml_examples_in_the_docs_load() -> None:
    text = (Path(__file__).parents[2] / "docs" / "siren.md").read_text()
    blocks = [yaml.safe_load(block.split("```", 1)[0]) for block in text.split("```yaml\n")[1:]]
    classes = {c.stage: c for c in (SketchStageConfig, GRPOStageConfig, AlignStageConfig, EvaluateStageConfig)}
    assert sorted(b["stage"] for b in blocks) == sorted(classes)
    for block in blocks:
        config = read_stage_config(classes[block["stage"]], None, {k: v for k, v in block.items() if k != "stage"})
        assert config.data == "movies-tv"
