"""Runs remember their data: the source and fingerprint are recorded, later stages re-read that source and refuse
changed data, runs trained in Python save with `run.save` and evaluate from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import seqrec
from helpers import TINY_EVAL, TINY_SYNTHETIC, assert_cli_error, tiny_model_config, tiny_train_config
from seqrec import cli
from seqrec.api import evaluate_run
from seqrec.data import registry
from seqrec.data.catalog import ItemCatalog
from seqrec.data.config import FRAME_FORMAT, DataConfig
from seqrec.data.fingerprint import data_fingerprint
from seqrec.data.interactions import Interactions
from seqrec.data.readers import RawDataset, read_sasrec
from seqrec.data.splits import SplitData, leave_one_out
from seqrec.errors import DataError, Interrupted, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.model_runs import run_data
from seqrec.runs import METRICS, Run, load_run
from seqrec.training.checkpoint import checkpoint_info

runner = CliRunner()


def train(data: SplitData) -> Run:
    return seqrec.train(tiny_model_config("sasrec"), data, tiny_train_config(), TINY_EVAL, progress=False)


def evaluate_cli(path: Path) -> dict:
    result = runner.invoke(cli.app, ["evaluate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def python_run(tiny_data: SplitData) -> Run:
    return train(tiny_data)


def test_a_run_records_its_source_and_fingerprint(python_run: Run, tiny_data: SplitData) -> None:
    assert python_run.metrics["protocol"]["data_fingerprint"] == data_fingerprint(tiny_data)
    source = getattr(tiny_data, "source", None)
    assert python_run.config.data == (source or DataConfig(name="synthetic", format=FRAME_FORMAT))


def test_a_run_trained_in_python_saves_and_evaluates_from_the_command_line(python_run: Run, tmp_path: Path
                                                                           ) -> None:
    if getattr(python_run.config.data, "format", None) == FRAME_FORMAT:
        pytest.skip("datasets.load does not record its source yet (SplitData.source)")
    path = python_run.save(tmp_path / "runs" / "mine")
    assert path == tmp_path / "runs" / "mine" and python_run.path == path
    assert seqrec.load(path).config.name == "mine"
    assert evaluate_cli(path)["metrics"] == python_run.metrics["test"]


def test_save_never_overwrites(python_run: Run, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="already exists"):
        python_run.save(tmp_path / "taken")
    assert list((tmp_path / "taken").iterdir()) == []


def frame_data(seed: int, from_frame: bool) -> SplitData:
    """30 users with 6 random items each: through `seqrec.datasets.from_frame`, or a split built by hand."""
    users, items = np.repeat(np.arange(30), 6), np.random.default_rng(seed).integers(1, 25, 180)
    if from_frame:
        pandas = pytest.importorskip("pandas")
        return seqrec.datasets.from_frame(pandas.DataFrame({"user_id": users, "item_id": items}))
    inter = Interactions.from_raw(users, items)
    return leave_one_out(inter, ItemCatalog.empty(inter.num_items), "frame")


@pytest.mark.parametrize("from_frame", [True, False])
def test_a_run_built_in_memory_says_so(from_frame: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys) -> None:  # noqa: ANN001
    data = frame_data(0, from_frame)
    run = train(data)
    assert run.config.data.format == FRAME_FORMAT
    path = run.save(tmp_path / "frame-run")
    with pytest.raises(DataError, match="built in memory.*pass the dataset"):
        evaluate_run(path)
    assert_cli_error(["evaluate", str(path)], "this run's data was built in memory", monkeypatch, capsys)
    assert evaluate_run(path, data=data).metrics == run.metrics["test"]  # the same data, passed in
    other = frame_data(1, from_frame)
    assert other.item_map == data.item_map
    with pytest.raises(DataError, match="other data than the dataset passed"):
        evaluate_run(path, data=other)


SASREC_LINES = [f"{user} {item}" for user in range(1, 9) for item in ((user * 3 + k) % 12 + 1 for k in range(5))]


def use_file_dataset(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A named dataset `tiny-file`: one SASRec-format file under `root`."""
    file = root / "tiny" / "tiny.txt"
    file.parent.mkdir(parents=True)
    file.write_text("\n".join(SASREC_LINES) + "\n")
    spec = registry.DatasetSpec("tiny-file", "a tiny SASRec file", "tiny", ("tiny.txt",),
                                lambda folder, _: RawDataset(*read_sasrec(folder / "tiny.txt")))
    monkeypatch.setitem(registry.DATASETS, spec.name, spec)
    return file


def test_a_changed_data_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    file = use_file_dataset(tmp_path / "data", monkeypatch)
    config = ExperimentConfig(data=DataConfig(name="tiny-file", data_dir=str(tmp_path / "data")),
                              model=tiny_model_config("sasrec"), train=tiny_train_config(), eval=TINY_EVAL)
    run = seqrec.run_experiment(config, tmp_path / "runs", progress=False)
    assert evaluate_cli(run.path)["metrics"] == run.metrics["test"]
    lines = list(SASREC_LINES)
    user, item = lines[7].split()
    lines[7] = f"{user} {int(item) % 12 + 1}"  # one interaction changes; every item id still exists
    file.write_text("\n".join(lines) + "\n")
    assert_cli_error(["evaluate", str(run.path)], "the data changed since training", monkeypatch, capsys)
    with pytest.raises(DataError, match=f"{run.path} was trained on other data than the dataset 'tiny-file'"):
        run_data(load_run(run.path))


def test_a_changed_csv_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    file = tmp_path / "clicks.csv"
    rows = [f"u{user},sku{item},{10 * user + k}" for user in range(8)
            for k, item in enumerate((user * 3 + k) % 12 for k in range(5))]
    file.write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    source = DataConfig(path=str(file), columns={"user": "user", "item": "item", "timestamp": "ts"})
    config = ExperimentConfig(data=source, model=tiny_model_config("sasrec"), train=tiny_train_config(),
                              eval=TINY_EVAL, name="clicks")
    run = seqrec.run_experiment(config, tmp_path / "runs", progress=False)
    assert run.config.data.path == str(file) and run.config.data.format == "csv"
    assert evaluate_cli(run.path)["metrics"] == run.metrics["test"]
    file.write_text(file.read_text().replace("u0,sku1,", "u0,sku2,"))  # one interaction, the same items
    assert_cli_error(["evaluate", str(run.path)], f"other data than the file {file} holds now", monkeypatch, capsys)


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    file = use_file_dataset(tmp_path / "data", monkeypatch)
    config = ExperimentConfig(data=DataConfig(name="tiny-file", data_dir=str(tmp_path / "data")),
                              model=tiny_model_config("sasrec"), train=tiny_train_config(epochs=2), eval=TINY_EVAL,
                              name="cut")

    def interrupt(record: dict) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        seqrec.run_experiment(config, tmp_path / "runs", progress=False, callbacks=[interrupt])
    cut = tmp_path / "runs" / "cut"
    assert len(checkpoint_info(cut)["data_fingerprint"]) == 64
    original = file.read_text()
    file.write_text(original.replace("1 4\n", "1 5\n", 1))
    with pytest.raises(DataError, match="changed since the run started"):
        seqrec.resume(cut, progress=False)
    file.write_text(original)
    assert seqrec.resume(cut, progress=False).metrics["epochs_run"] == 2


def test_a_run_without_a_fingerprint_still_loads(python_run: Run, tiny_data: SplitData, tmp_path: Path) -> None:
    path = python_run.save(tmp_path / "old")
    metrics = json.loads((path / METRICS).read_text())
    del metrics["protocol"]["data_fingerprint"]
    (path / METRICS).write_text(json.dumps(metrics))
    old = load_run(path)
    assert evaluate_run(old, data=tiny_data).metrics == python_run.metrics["test"]  # item ids alone are checked
    other = seqrec.datasets.load("synthetic", synthetic={**TINY_SYNTHETIC, "num_items": 41})
    with pytest.raises(RunError, match="no longer has the item ids"):
        evaluate_run(old, data=other)


def test_retrieval_refuses_a_base_run_trained_on_other_data(python_run: Run, tiny_data: SplitData,
                                                            tmp_path: Path) -> None:
    from seqrec.retrieval.config import RetrievalConfig
    from seqrec.retrieval.setup import from_base_run

    path = python_run.save(tmp_path / "base")
    config = RetrievalConfig(base_run=str(path))
    from_base_run(config, python_run.config.model, tiny_data)  # the data it was trained on
    other = seqrec.datasets.load("synthetic", synthetic={**TINY_SYNTHETIC, "seed": 1})
    assert other.item_map == tiny_data.item_map  # the old check alone would let it through
    with pytest.raises(DataError, match="other data than the dataset 'synthetic'"):
        from_base_run(config, python_run.config.model, other)
