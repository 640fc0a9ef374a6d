"""The search space: dotted keys and sections, types taken from the config, every bad key, range or type a
`ConfigError` naming the key and the fix; property tests for the parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec.errors import ConfigError
from seqrec.experiment import ExperimentConfig
from seqrec.search.model_search import experiment_keys
from seqrec.search.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    check_space,
    parse_space,
    with_values,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RAW = {"data": {"name": "synthetic"}, "model": {"name": "sasrec", "hidden": 16}, "train": {"epochs": 2}}
KNOWN = experiment_keys(RAW)


def test_dotted_keys_sections_and_lists() -> None:
    space = parse_space({"train.lr": {"low": "1e-4", "high": 1e-2, "log": True},  # YAML reads 1e-4 as a string
                         "model": {"dropout": {"low": 0.1, "high": 0.5}, "blocks": {"low": 1, "high": 3}},
                         "model.hidden": [16, 32]}, KNOWN)
    assert space.params == (FloatParam("train.lr", 1e-4, 1e-2, log=True), FloatParam("model.dropout", 0.1, 0.5),
                            IntParam("model.blocks", 1, 3), CategoricalParam("model.hidden", (16, 32)))
    assert space.keys == ["train.lr", "model.dropout", "model.blocks", "model.hidden"]


def test_a_range_takes_the_type_of_the_config_value() -> None:
    space = parse_space({"train.weight_decay": {"low": 0, "high": 1}, "train.batch_size": {"low": 16.0, "high": 64,
                                                                                            "step": 16}}, KNOWN)
    assert space.params == (FloatParam("train.weight_decay", 0.0, 1.0), IntParam("train.batch_size", 16, 64, 16))
    assert parse_space({"x": {"low": 1, "high": 4}}).params == (IntParam("x", 1, 4),)  # no config: from the ends
    assert parse_space({"x": {"low": 1, "high": 4, "type": "float"}}).params == (FloatParam("x", 1.0, 4.0),)


@pytest.mark.parametrize(("space", "expected"), [
    ({"train.learning_rate": {"low": 1e-4, "high": 1e-2}}, "unknown config key train.learning_rate; valid keys: "
                                                            "train.batch_size, train.bf16, "),
    ({"train.weight_decy": {"low": 0, "high": 0.1}}, "unknown config key train.weight_decy (did you mean "
                                                      "train.weight_decay?); valid keys: train.batch_size"),
    ({"modle.hidden": [16]}, "unknown config key modle.hidden (did you mean model.hidden?); valid keys are in the "
                             "sections data, distill, eval, model, retrieval, train"),  # the sections, not every key
    ({"name": ["a", "b"]}, "unknown config key name; valid keys are in the sections data, distill, eval, model, "),
    ({"model": {}}, "model is a section, not a setting; give ranges or choices for its keys, e.g. `model.blocks: "),
    ({"train": None}, "train is a section, not a setting; "),
    ({"train.lr": {"low": 1e-2, "high": 1e-4}}, "train.lr: low (0.01) must be below high (0.0001)"),
    ({"train.lr": {"low": 0, "high": 1e-2, "log": True}}, "train.lr: a log-scale range needs low > 0"),
    ({"train.lr": {"low": 0.1, "high": 0.5, "step": 0.3}}, "train.lr: step must be > 0 and divide high - low"),
    ({"train.lr": {"low": 0.1, "high": 0.5, "step": 0.1, "log": True}}, "train.lr: give step or log, not both"),
    ({"train.lr": {"low": 0.1}}, "train.lr: a range needs low and high"),
    ({"train.lr": {"low": "fast", "high": 1}}, "train.lr: low must be a finite number, got 'fast'"),
    ({"train.lr": {"low": 0.1, "high": math.inf}}, "train.lr: high must be a finite number"),
    ({"train.lr": {"low": 0.1, "high": 1, "scale": "log"}}, "train.lr: unknown field 'scale'"),
    ({"train.lr": {"low": 0.1, "high": 1, "type": "real"}}, "train.lr: type must be one of categorical, float, int"),
    ({"train.lr": 0.01}, "train.lr: give a range ({low: ..., high: ...}) or a list of choices, got 0.01"),
    ({"model.blocks": {"low": 1, "high": 2.5}}, "model.blocks: high of an int range must be a whole number"),
    ({"model.blocks": {"low": 1, "high": 4, "step": 2}}, "model.blocks: step must be >= 1 and divide high - low (3)"),
    ({"model.hidden": []}, "model.hidden: choices must be a non-empty list"),
    ({"model.hidden": [16, 16]}, "model.hidden: choices repeat a value"),
    ({"model.hidden": [[16, 32]]}, "model.hidden: each choice must be a number, a string, true/false or null"),
    ({"model.hidden": {"choices": [16], "low": 1}}, "model.hidden: a categorical key takes only choices, not low"),
    ({"train.bf16": {"low": 0, "high": 1}}, "train.bf16: a true/false setting is searched with choices: [true, "
                                            "false]"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}, "train": {"lr": [0.1]}}, "train.lr is given twice"),
    ({}, "a search space maps config keys to ranges or choices"),
    ([1, 2], "a search space maps config keys to ranges or choices"),
])
def test_bad_spaces_name_the_key_and_the_fix(space: object, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_space(space, KNOWN, "space.yaml")
    assert str(exc.value).startswith("space.yaml: ") and expected in str(exc.value)


def test_numeric_strings_of_a_float_key_are_numbers() -> None:
    """YAML reads `[0.0, 1e-5]` as 0.0 and the string '1e-5': a float key's choices are floats all the same."""
    space = parse_space({"train.weight_decay": [0.0, "1e-5", "1e-4"], "model.name": ["sasrec", "gru4rec"]}, KNOWN)
    assert space.params == (CategoricalParam("train.weight_decay", (0.0, 1e-5, 1e-4)),
                            CategoricalParam("model.name", ("sasrec", "gru4rec")))
    with pytest.raises(ConfigError, match="choices repeat a value"):
        parse_space({"train.lr": [0.001, "1e-3"]}, KNOWN)


def test_values_the_config_refuses_fail_before_any_trial() -> None:
    def check(space: dict) -> str:
        with pytest.raises(ConfigError) as exc:
            check_space(parse_space(space, KNOWN), RAW, ExperimentConfig.from_dict, "space.yaml")
        return str(exc.value)

    assert check({"model.dropout": {"low": 0.1, "high": 1.5}}) == (
        "space.yaml: model.dropout = 1.5 is not a valid setting: model.dropout must be in [0, 1), got 1.5")
    assert "train.epochs = 1.0 is not a valid setting: train.epochs must be int" in check(
        {"train.epochs": {"type": "float", "low": 1, "high": 5}})
    assert "model.heads = 3 is not a valid setting: model.hidden (16) must be divisible by model.heads (3)" in check(
        {"model.heads": [1, 3]})
    check_space(parse_space({"model.heads": [1, 2, 4], "train.lr": {"low": 1e-4, "high": 1e-2}}, KNOWN), RAW,
                ExperimentConfig.from_dict)  # valid everywhere: no error


def test_with_values_sets_dotted_keys_in_a_copy() -> None:
    out = with_values(RAW, {"train.lr": 0.01, "data.synthetic.num_users": 50, "model.hidden": 32})
    assert out == {"data": {"name": "synthetic", "synthetic": {"num_users": 50}},
                   "model": {"name": "sasrec", "hidden": 32}, "train": {"epochs": 2, "lr": 0.01}}
    assert RAW["model"]["hidden"] == 16 and "lr" not in RAW["train"]


# ---------------------------------------------------------------- properties of the parser

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
choices = st.lists(st.none() | st.booleans() | st.integers(-5, 5) | finite | st.text(max_size=5), min_size=1,
                   max_size=6, unique_by=lambda c: (type(c), c))


@FAST
@given(low=finite, high=finite, log=st.booleans())
def test_float_ranges_round_trip_or_are_refused(low: float, high: float, log: bool) -> None:
    spec = {"low": low, "high": high, "log": log}
    if low < high and (low > 0 or not log):
        space = parse_space({"x": spec}, {"x": 0.5})
        assert space.params == (FloatParam("x", low, high, log),)
        assert parse_space(space.spec(), {"x": 0.5}) == space
    else:
        with pytest.raises(ConfigError, match="space: x: "):
            parse_space({"x": spec}, {"x": 0.5})


@FAST
@given(low=st.integers(-100, 100), size=st.integers(-3, 50), step=st.integers(-2, 7))
def test_int_ranges_round_trip_or_are_refused(low: int, size: int, step: int) -> None:
    spec = {"low": low, "high": low + size, "step": step}
    if size > 0 and step >= 1 and size % step == 0:
        space = parse_space({"n": spec}, {"n": 1})
        assert space.params == (IntParam("n", low, low + size, step),)
        assert parse_space(space.spec(), {"n": 1}) == space
    else:
        with pytest.raises(ConfigError, match="space: n: "):
            parse_space({"n": spec}, {"n": 1})


@FAST
@given(values=choices)
def test_choices_round_trip(values: list) -> None:
    space = parse_space({"c": values})
    assert space.params == (CategoricalParam("c", tuple(values)),)
    assert parse_space(space.spec()) == space


json_like = st.recursive(st.none() | st.booleans() | st.integers() | finite | st.text(max_size=6),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                             st.sampled_from([*"abc", "low", "high", "log", "step", "choices", "type"]) | st.text(
                                 max_size=4), inner, max_size=4), max_leaves=12)


@FAST
@given(data=st.dictionaries(st.sampled_from(["train.lr", "model.hidden", "model", "train", "x"]) | st.text(max_size=5),
                            json_like, max_size=4) | json_like)
def test_any_input_is_a_space_or_a_config_error(data: object) -> None:
    try:
        space = parse_space(data, KNOWN)
    except ConfigError:
        return
    assert space.params and set(space.keys) <= set(KNOWN)
    assert parse_space(space.spec(), KNOWN) == space
