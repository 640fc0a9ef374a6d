"""Item attribute labels from titles (`seqrec data label`), attribute files, and their use through
`--attributes-file` in attribute metrics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.data.attribute_files import add_attributes, format_attribute_file, read_attribute_file
from seqrec.data.catalog import ItemCatalog
from seqrec.data.example import example_tables
from seqrec.errors import DataError
from seqrec.steering.item_labels import label_items, read_descriptions, read_keyword_rules

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 300)


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    """A folder with clicks.csv, items.csv (titles like "Horror Journey 2") and datasets.yaml naming `shop`."""
    interactions, items = example_tables(users=40, items=20, seed=1)
    (tmp_path / "clicks.csv").write_text(interactions)
    (tmp_path / "items.csv").write_text(items)
    entry = {"path": "clicks.csv", "items": {"path": "items.csv", "attributes": ["genres"]}}
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"shop": entry}))
    (tmp_path / "moods.yaml").write_text("scary: [horror, Thriller]\nfunny: comedy\n")
    return tmp_path


def test_keywords_match_whole_words_in_any_case() -> None:
    catalog = ItemCatalog(4, ["", "Gluten-Free Pasta", "VEGAN chili", "Veganism for beginners", "Plain rice"])
    labels = label_items(catalog, keywords={"vegetarian": ["vegan"], "gluten_free": ["gluten-free"]})
    assert labels == [(), ("gluten_free",), ("vegetarian",), (), ()]


def test_zero_shot_labels_with_any_embedder() -> None:
    vectors = {"apple pie": [1.0, 0.0], "beef stew": [0.0, 1.0], "a sweet dessert": [1.0, 0.1]}
    catalog = ItemCatalog(2, ["", "apple pie", "beef stew"])
    labels = label_items(catalog, descriptions={"dessert": "a sweet dessert"},
                         embed=lambda texts: np.array([vectors[t] for t in texts]), threshold=0.9)
    assert labels == [(), ("dessert",), ()]


def test_grocery_keyword_example_is_valid() -> None:
    rules = read_keyword_rules(REPO / "configs" / "labels-grocery-keywords.yaml")
    assert {"vegetarian", "gluten_free"} <= set(rules)
    catalog = ItemCatalog(2, ["", "Organic Gluten Free Vegan Cookies", "Beef Jerky"])
    assert set(label_items(catalog, keywords=rules)[1]) >= {"vegetarian", "gluten_free", "organic"}


@pytest.mark.parametrize(("text", "expected"), [
    ("[a, b]\n", "expected a mapping"), ("veg: []\n", "non-empty list of keywords"), ("veg: [\n", "invalid YAML"),
    ("veg: [1, '']\n", "non-empty list of keywords"),
])
def test_bad_keyword_files(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text(text)
    with pytest.raises(DataError, match=expected):
        read_keyword_rules(file)
    with pytest.raises(DataError):
        read_descriptions(file)


def test_attribute_file_round_trip_and_errors(tmp_path: Path, tiny_data) -> None:  # noqa: ANN001
    ids = tiny_data.item_map.to_external(range(1, 4))
    file = tmp_path / "attributes.tsv"
    file.write_text(format_attribute_file(ids, ["a\ttitle", "b", "c"], "diet", [("vegan", "gf"), (), ("gf",)]))
    table = read_attribute_file(file)
    assert table.attributes["diet"] == [("vegan", "gf"), (), ("gf",)]
    catalog = add_attributes(tiny_data.catalog, tiny_data.item_map, file)
    assert catalog.attributes["diet"][1:4] == [("vegan", "gf"), (), ("gf",)] and "genre" in catalog.attributes
    assert catalog.has_value("gf").sum() == 2
    with pytest.raises(DataError, match="tabs, newlines"):
        format_attribute_file(ids[:1], ["x"], "diet", [("a|b",)])
    (tmp_path / "other.tsv").write_text("item_id\tdiet\nnot-an-item\tvegan\n")
    with pytest.raises(DataError, match="other.tsv.*match none"):
        add_attributes(tiny_data.catalog, tiny_data.item_map, tmp_path / "other.tsv")
    (tmp_path / "noid.tsv").write_text("id\tdiet\n1\tvegan\n")
    with pytest.raises(DataError, match="noid.tsv:1: an attribute file needs an 'item_id' column"):
        read_attribute_file(tmp_path / "noid.tsv")


def test_data_label_by_keywords_feeds_attribute_metrics(shop: Path, tmp_path_factory, monkeypatch, capsys) -> None:
    out = shop / "moods.tsv"
    args = ["data", "label", "shop", "--datasets", str(shop / "datasets.yaml"), "--keywords", str(shop / "moods.yaml"),
            "--name", "mood", "--out", str(out)]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["item_id", "title", "mood"] and len(rows) == 21
    assert all(("scary" in r[2]) == ("Horror" in r[1] or "Thriller" in r[1]) for r in rows[1:])
    assert any(r[2] == "funny" for r in rows[1:])
    assert_cli_error(args, "exists; pass --force", monkeypatch, capsys)
    assert_cli_error(["data", "label", str(shop / "clicks.csv"), "--keywords", str(shop / "moods.yaml"), "--out",
                      str(shop / "x.tsv")], "no titles", monkeypatch, capsys)
    assert_cli_error(["data", "label", "shop", "--out", str(shop / "x.tsv")], "either --keywords", monkeypatch, capsys)

    runs = tmp_path_factory.mktemp("runs")
    train = ["train", "--set", f"data.path={shop / 'clicks.csv'}", "--set", "model.max_len=10", "--set",
             "model.hidden=16", "--set", "train.epochs=1", "--set", "train.device=cpu", "--set", "eval.ks=[5]",
             "--set", "name=shop", "--out", str(runs)]
    assert runner.invoke(cli.app, train).exit_code == 0
    evaluate = ["evaluate", str(runs / "shop"), "--attributes-file", str(out), "--attribute", "scary", "--json"]
    result = runner.invoke(cli.app, evaluate)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)["metrics"]
    assert 0 <= metrics["scary_ratio@5"] <= 1 and "scary_HR@5" in metrics
    assert_cli_error(["evaluate", str(runs / "shop"), "--attribute", "scary"], "scary", monkeypatch, capsys)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                    reason="zero-shot labels need the text extra (sentence-transformers)")
def test_data_label_zero_shot_with_minilm(tmp_path: Path) -> None:
    (tmp_path / "descriptions.yaml").write_text("scary: a frightening horror story\n")
    out = tmp_path / "labels.tsv"
    result = runner.invoke(cli.app, ["data", "label", "synthetic", "--zero-shot", str(tmp_path / "descriptions.yaml"),
                                     "--threshold", "0.3", "--out", str(out)])  # titles like "Horror Journey 2"
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    horror = [r[2] == "scary" for r in rows if r[1].startswith("Horror")]
    other = [r[2] == "scary" for r in rows if not r[1].startswith("Horror")]
    assert horror and np.mean(horror) > np.mean(other)
