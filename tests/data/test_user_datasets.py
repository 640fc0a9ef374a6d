"""Your own dataset names (datasets.yaml), `seqrec data list/info` with them, `seqrec data info PATH`, training on
a user dataset by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.data.config import DataConfig
from seqrec.data.example import example_tables
from seqrec.data.registry import dataset_info, list_datasets, load
from seqrec.data.user_datasets import ENV_VAR, read_datasets, resolve, resolve_dict
from seqrec.errors import DataError

runner = CliRunner()
SHOP = {"description": "web-shop clicks", "path": "shop/clicks.csv",
        "items": {"path": "shop/items.csv", "attributes": ["genres"]}, "split": "temporal"}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 300)
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A data root holding shop/clicks.csv, shop/items.csv and a datasets.yaml naming them `shop`."""
    interactions, items = example_tables(users=40, items=20, seed=1)
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "clicks.csv").write_text(interactions)
    (tmp_path / "shop" / "items.csv").write_text(items)
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"shop": SHOP}))
    return tmp_path


def write(folder: Path, text: str) -> Path:
    file = folder / "mine.yaml"
    file.write_text(text)
    return file


def test_a_user_dataset_loads_by_name_with_its_settings(root: Path) -> None:
    data = load(DataConfig(name="shop", data_dir=str(root)))
    assert data.name == "shop" and data.source.split == "temporal"
    assert data.source.path == str(root / "shop" / "clicks.csv")
    assert "genres" in data.catalog.attributes and data.catalog.titles[1]
    explicit = resolve(DataConfig(name="shop", data_dir=str(root), split="temporal_users", test_share=0.2))
    assert explicit.split == "temporal_users" and explicit.test_share == 0.2 and explicit.path is not None
    assert resolve_dict({"name": "shop", "data_dir": str(root), "split": "loo"})["split"] == "loo"  # explicit wins
    assert resolve(DataConfig(name="synthetic")) == DataConfig(name="synthetic")  # built-in names untouched


def test_list_and_info_show_user_datasets(root: Path) -> None:
    rows = {r["name"]: r for r in list_datasets(root)}
    assert rows["shop"]["user_dataset"] and rows["shop"]["present"] and "ml-1m" in rows
    assert rows["shop"]["description"] == "web-shop clicks" and rows["shop"]["default_split"] == "temporal"
    result = runner.invoke(cli.app, ["data", "list", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    assert "shop (yours)" in result.output and str(root / "datasets.yaml") in result.output
    info = dataset_info("shop", root)
    assert info["users"] == 40 and info["items"] == 20 and info["has_titles"] and info["attributes"] == {"genres": 8}
    assert info["description"].startswith("web-shop clicks")
    result = runner.invoke(cli.app, ["data", "info", "shop", "--data-dir", str(root)])
    assert result.exit_code == 0 and "web-shop clicks" in result.output, result.output


def test_datasets_file_from_option_and_environment(root: Path, tmp_path_factory: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    file = write(elsewhere, yaml.safe_dump({"clicks": {"path": str(root / "shop" / "clicks.csv")}}))
    result = runner.invoke(cli.app, ["data", "list", "--data-dir", str(elsewhere), "--datasets", str(file)])
    assert result.exit_code == 0 and "clicks (yours)" in result.output and "shop" not in result.output
    monkeypatch.setenv(ENV_VAR, str(file))
    assert {r["name"] for r in list_datasets(elsewhere) if r.get("user_dataset")} == {"clicks"}
    assert load(DataConfig(name="clicks", data_dir=str(elsewhere))).num_users == 40


BAD_FILES = [
    ("- shop\n- other\n", "expected a mapping of dataset names"),
    ("shop: [\n", "invalid YAML"),
    ("shop: clicks.csv\n", "dataset 'shop': expected a mapping of settings"),
    ("shop: {path: shop/clicks.csv, colums: {user: uid}}\n", "dataset 'shop': unknown config key colums"),
    ("shop: {path: shop/clicks.csv, split: random}\n", "dataset 'shop': split must be one of"),
    ("shop: {path: shop/clicks.csv, columns: {customer: uid}}\n", "dataset 'shop': unknown key data.columns.customer"),
    ("shop: {description: no file}\n", "dataset 'shop': key 'path' is required"),
    ("shop: {path: shop/clicks.csv, description: [a]}\n", "dataset 'shop': key 'description' must be text"),
    ("shop: {path: shop/clicks.csv, name: other}\n", "dataset 'shop': key 'name' cannot be set here"),
    ("ml-1m: {path: shop/clicks.csv}\n", "dataset 'ml-1m': the name is a built-in dataset"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_datasets_files_name_the_file_entry_and_key(root: Path, text: str, expected: str) -> None:
    file = write(root, text)
    with pytest.raises(DataError) as err:
        read_datasets(file)
    assert str(file) in str(err.value) and expected in str(err.value)


def test_a_path_that_points_nowhere_is_refused_where_it_is_used(root: Path, monkeypatch, capsys) -> None:
    (root / "datasets.yaml").write_text("gone: {path: nowhere/clicks.csv}\n")
    rows = {r["name"]: r for r in list_datasets(root)}
    assert not rows["gone"]["present"]
    with pytest.raises(DataError, match=r"datasets.yaml: dataset 'gone': path .*nowhere.* does not exist"):
        load(DataConfig(name="gone", data_dir=str(root)))
    assert_cli_error(["data", "info", "gone", "--data-dir", str(root)], "does not exist", monkeypatch, capsys)


def test_missing_datasets_file_and_unknown_names_are_errors(root: Path, monkeypatch, capsys) -> None:
    assert_cli_error(["data", "list", "--datasets", str(root / "none.yaml")], "datasets file not found",
                     monkeypatch, capsys)
    assert_cli_error(["data", "info", "shopp", "--data-dir", str(root)], "neither a dataset name nor", monkeypatch,
                     capsys)
    with pytest.raises(DataError, match="datasets.yaml"):
        load(DataConfig(name="shopp", data_dir=str(root)))


def test_data_info_on_a_bare_file_and_folder(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    by_path = dataset_info(DataConfig(path=str(root / "shop" / "clicks.csv")))
    assert by_path["name"] == "clicks" and by_path["description"].startswith("csv data")
    named = dataset_info("shop", root)
    same = ("users", "items", "interactions", "mean_length", "head_items", "tail_items", "has_timestamps")
    assert {k: by_path[k] for k in same} == {k: named[k] for k in same}
    result = runner.invoke(cli.app, ["data", "info", str(root / "shop" / "clicks.csv")])
    assert result.exit_code == 0 and "interactions" in result.output, result.output
    folder = tmp_path_factory.mktemp("ml")
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::4::{100 * u + i}\n" for u in (1, 2, 3) for i in (1, 2, 3)))
    result = runner.invoke(cli.app, ["data", "info", str(folder)])
    assert result.exit_code == 0 and "movielens" in result.output, result.output
    assert dataset_info(DataConfig(path=str(folder)))["interactions"] == 9


def test_train_on_a_user_dataset_by_name_records_its_source(root: Path, tmp_path: Path) -> None:
    args = ["train", "--set", "data.name=shop", "--set", "model.max_len=10", "--set", "model.hidden=16",
            "--set", "train.epochs=1", "--set", "train.device=cpu", "--set", "eval.ks=[5]",
            "--datasets", str(root / "datasets.yaml"), "--out", str(tmp_path / "runs")]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "runs" / "sasrec-shop" / "config.yaml").read_text())
    assert config["data"]["path"] == str(root / "shop" / "clicks.csv") and config["data"]["split"] == "temporal"
    result = runner.invoke(cli.app, ["evaluate", str(tmp_path / "runs" / "sasrec-shop"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["protocol"]["dataset"] == "shop"
