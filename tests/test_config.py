"""Typed configs: unknown keys, wrong types, Literals, model names, overrides, round trips, YAML errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.config import apply_overrides, from_dict, read_yaml, to_dict, write_yaml
from seqrec.data.config import DataConfig
from seqrec.data.synthetic import SyntheticConfig
from seqrec.errors import ConfigError
from seqrec.experiment import ExperimentConfig
from seqrec.models import BERT4RecConfig, GRU4RecConfig, SASRecConfig
from seqrec.training.config import EvalConfig, TrainConfig


def test_unknown_key_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as exc:
        ExperimentConfig.from_dict({"train": {"lrr": 0.1}})
    message = str(exc.value)
    assert "train.lrr" in message
    assert "valid keys:" in message and "lr," in message and "epochs" in message


def test_unknown_nested_key_names_its_full_path() -> None:
    with pytest.raises(ConfigError, match=r"data\.synthetic\.num_user\b.*num_users"):
        ExperimentConfig.from_dict({"data": {"synthetic": {"num_user": 10}}})


def test_unknown_section() -> None:
    with pytest.raises(ConfigError, match="unknown config section 'trian'; valid sections: data, distill, eval, model"):
        ExperimentConfig.from_dict({"trian": {}})


@pytest.mark.parametrize(("section", "value", "key", "expected"), [
    ("train", {"epochs": "ten"}, "train.epochs", "must be int; got 'ten'"),
    ("train", {"epochs": 2.5}, "train.epochs", "must be int"),
    ("train", {"lr": "fast"}, "train.lr", "must be float"),
    ("train", {"length_buckets": "yes"}, "train.length_buckets", "must be true or false"),
    ("train", {"epochs": True}, "train.epochs", "must be int"),
    ("eval", {"ks": ["ten"]}, "eval.ks", "must be int"),
    ("data", {"synthetic": {"num_users": "many"}}, "data.synthetic.num_users", "must be int"),
])
def test_wrong_types_name_the_key(section: str, value: dict, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ExperimentConfig.from_dict({section: value})
    assert str(exc.value).startswith(key) and expected in str(exc.value)


def test_a_section_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="train must be a mapping, got int"):
        ExperimentConfig.from_dict({"train": 5})
    with pytest.raises(ConfigError, match="data.synthetic must be a mapping, got list"):
        ExperimentConfig.from_dict({"data": {"synthetic": [1, 2]}})
    with pytest.raises(ConfigError, match="model must be a mapping, got str"):
        ExperimentConfig.from_dict({"model": "sasrec"})


@pytest.mark.parametrize(("data", "key", "choices"), [
    ({"train": {"optimizer": "sgd"}}, "train.optimizer", "adam, adamw"),
    ({"data": {"split": "random"}}, "data.split", "loo, predefined, temporal"),
    ({"model": {"norm": "both"}}, "model.norm", "post, pre"),
    ({"model": {"name": "bert4rec", "activation": "tanh"}}, "model.activation", "gelu, relu"),
])
def test_literal_values_are_checked(data: dict, key: str, choices: str) -> None:
    with pytest.raises(ConfigError, match=f"{key} must be one of {choices}"):
        ExperimentConfig.from_dict(data)


def test_value_checks_in_the_configs_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs must be >= 1"):
        ExperimentConfig.from_dict({"train": {"epochs": 0}})
    with pytest.raises(ConfigError, match=r"eval\.ks"):
        ExperimentConfig.from_dict({"eval": {"ks": [0, 10]}})
    with pytest.raises(ConfigError, match=r"data\.synthetic\.num_items must be >= 10"):
        ExperimentConfig.from_dict({"data": {"synthetic": {"num_items": 3}}})


def test_unknown_model_lists_the_valid_models() -> None:
    with pytest.raises(ConfigError, match="unknown model 'sasrek'; valid models: bert4rec, duorec, gru4rec, sasrec"):
        ExperimentConfig.from_dict({"model": {"name": "sasrek"}})


def test_model_keys_are_checked_against_the_chosen_model() -> None:
    assert isinstance(ExperimentConfig.from_dict({}).model, SASRecConfig)  # default model
    cfg = ExperimentConfig.from_dict({"model": {"name": "gru4rec", "layers": 2}})
    assert cfg.model == GRU4RecConfig(layers=2)
    with pytest.raises(ConfigError, match=r"unknown config key model\.heads"):
        ExperimentConfig.from_dict({"model": {"name": "gru4rec", "heads": 2}})


@pytest.mark.parametrize(("override", "key", "value"), [
    ("train.epochs=7", "epochs", 7),
    ("train.lr=0.005", "lr", 0.005),
    ("train.lr=1.0e-3", "lr", 0.001),
    ("train.length_buckets=true", "length_buckets", True),
    ("train.length_buckets=False", "length_buckets", False),
    ("train.device=cuda:1", "device", "cuda:1"),
    ("train.monitor=HR@20", "monitor", "HR@20"),
])
def test_overrides_parse_yaml_scalars(override: str, key: str, value: object) -> None:
    raw = apply_overrides({"train": {"epochs": 3}}, [override])
    assert raw["train"][key] == value and type(raw["train"][key]) is type(value)
    assert getattr(ExperimentConfig.from_dict(raw).train, key) == value


def test_overrides_build_sections_and_lists() -> None:
    raw = apply_overrides({}, ["eval.ks=[1, 5]", "data.synthetic.num_users=50", "model.name=bert4rec", "name=x"])
    assert raw == {"eval": {"ks": [1, 5]}, "data": {"synthetic": {"num_users": 50}}, "model": {"name": "bert4rec"},
                   "name": "x"}
    cfg = ExperimentConfig.from_dict(raw)
    assert cfg.eval.ks == (1, 5) and cfg.data.synthetic.num_users == 50 and isinstance(cfg.model, BERT4RecConfig)
    assert cfg.run_name == "x"


def test_bad_overrides() -> None:
    with pytest.raises(ConfigError, match="must look like key.subkey=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(ConfigError, match="train is not a section"):
        apply_overrides({"train": 5}, ["train.epochs=3"])
    assert apply_overrides({}, ["data.data_dir="]) == {"data": {"data_dir": None}}


def test_experiment_config_round_trips() -> None:
    cfg = ExperimentConfig(
        data=DataConfig(name="synthetic", split="temporal", min_user_interactions=5,
                        synthetic=SyntheticConfig(num_users=100, seed=3)),
        model=BERT4RecConfig(max_len=20, hidden=32, heads=4, mask_prob=0.3),
        train=TrainConfig(epochs=4, lr=0.01, optimizer="adamw", length_buckets=True),
        eval=EvalConfig(ks=(1, 10), mask_seen=False),
        name="exp",
    )
    raw = cfg.to_dict()
    assert raw["model"]["name"] == "bert4rec" and raw["eval"]["ks"] == [1, 10]  # plain YAML-ready values
    assert ExperimentConfig.from_dict(raw) == cfg
    default = ExperimentConfig()
    assert default.run_name == "sasrec-synthetic"
    again = ExperimentConfig.from_dict(default.to_dict())
    assert again.to_dict() == default.to_dict() and again.run_name == default.run_name


def test_round_trip_through_a_yaml_file(tmp_path: Path) -> None:
    cfg = ExperimentConfig(model=GRU4RecConfig(hidden=8), train=TrainConfig(lr=3e-4), name="g")
    write_yaml(cfg.to_dict(), tmp_path / "c.yaml")
    assert ExperimentConfig.from_dict(read_yaml(tmp_path / "c.yaml")) == cfg


def test_to_dict_of_a_model_config_carries_its_name() -> None:
    assert to_dict(GRU4RecConfig(hidden=8)) == {"name": "gru4rec", "max_len": 50, "hidden": 8, "dropout": 0.2,
                                                "item_features": [], "feature_combine": "sum", "layers": 1,
                                                "gru_hidden": 0}
    assert from_dict(GRU4RecConfig, {"hidden": 8}) == GRU4RecConfig(hidden=8)


def test_read_yaml_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  name: synthetic\ntrain:\n  epochs: 3\n lr: 0.1\n")  # line 5 is mis-indented
    with pytest.raises(ConfigError, match="invalid YAML") as exc:
        read_yaml(path)
    assert str(exc.value).startswith(f"{path}:5: ")


def test_read_yaml_other_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}


def test_flatten_gives_the_dotted_keys_of_set() -> None:
    from seqrec.config import flatten

    assert flatten({"train": {"lr": 0.1, "loggers": []}, "data": {"columns": {}}, "name": "x"}) == {
        "train.lr": 0.1, "train.loggers": [], "data.columns": {}, "name": "x"}
