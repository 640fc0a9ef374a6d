"""`seqrec search` and `seqrec search show`: lines within 80 columns, the test metrics shown once, the plots, and
one-line errors for the mistakes a user can make."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import TINY_SYNTHETIC, assert_cli_error
from seqrec import cli
from seqrec.cli import common
from seqrec.search.results import write_description

optuna = pytest.importorskip("optuna")
runner = CliRunner()
TINY = {
    "name": "tiny",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 3, "batch_size": 32, "patience": 0, "device": "cpu", "seed": 0},
    "eval": {"ks": [5, 10]},
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal far wider than 80 columns: the output must still stay within 80."""
    monkeypatch.setattr(common.console, "width", 300)


def invoke(*argv: str) -> str:
    result = runner.invoke(cli.app, list(argv))
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.output.splitlines() if "/tmp" not in line), result.output
    return result.output


def files(tmp_path: Path, space: dict | None = None) -> tuple[str, str]:
    config, space_file = tmp_path / "tiny.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump(TINY))
    space_file.write_text(yaml.safe_dump(space or {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                                                   "model": {"dropout": {"low": 0.0, "high": 0.5}}}))
    return str(config), str(space_file)


def test_search_then_show(tmp_path: Path) -> None:
    config, space = files(tmp_path)
    out = invoke("search", config, "--space", space, "--trials", "3", "--out", str(tmp_path / "r"), "--seed", "0",
                 "--startup-trials", "1")
    assert sum(line.startswith("trial ") for line in out.splitlines()) == 3
    assert "study tiny-search: 3 trials (" in out and out.count("— test") == 1 and out.count("— valid") == 1
    folder = tmp_path / "r" / "tiny-search"
    assert "best config written to" in out and (folder / "best.yaml").is_file()

    shown = invoke("search", "show", str(folder))
    header = next(line for line in shown.splitlines() if "state" in line)
    assert all(word in header for word in ("#", "NDCG@10", "epochs", "lr", "dropout"))
    study = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{folder / 'study.db'}")
    for trial in study.get_trials():
        row = next(line for line in shown.splitlines() if line.split("│")[1:2] == [f" {trial.number} "])
        assert trial.state.name.lower() in row and f"{trial.value:.4f}" in row
    for name in ("history.png", "importance.png"):
        assert (folder / name).read_bytes().startswith(PNG)

    trial = next(folder.glob("trial-*"))  # the HTML report of a trial shows its study's plots
    invoke("report", str(trial), "--out", str(tmp_path / "report.html"))
    page = (tmp_path / "report.html").read_text()
    section = page[page.index("<h2>Hyper-parameter search</h2>"):]
    assert "Study <code>tiny-search</code>" in section
    assert section.count('src="data:image/png;base64,') == 2 and "parameter importance" in section


def test_show_continues_wide_tables_and_names_failures(tmp_path: Path) -> None:
    """Six parameters do not fit 80 columns next to the trial columns: they continue in a second table."""
    folder = tmp_path / "wide"
    folder.mkdir()
    write_description(folder, {"study": "wide", "storage": None})
    study = optuna.create_study(study_name="wide", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
    study.set_user_attr("seqrec", {"metric": "NDCG@10", "kind": "model"})
    names = ["train.learning_rate_x", "model.dropout_rate_x", "model.hidden_units", "model.blocks_count",
             "model.max_length_x", "train.weight_decay"]
    distributions = {n: optuna.distributions.FloatDistribution(1e-6, 1.0) for n in names}
    for number in range(3):
        study.add_trial(optuna.trial.create_trial(params={n: 0.123456 * (number + 1) / 4 for n in names},
                                                  distributions=distributions, value=0.1 * number))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"error": "diverged"}))
    study.add_trial(optuna.trial.create_trial(params={n: 0.5 for n in names}, distributions=distributions, value=0.9,
                                              system_attrs={"constraints:overall_drop": 0.05}))
    out = invoke("search", "show", str(folder), "--out", str(tmp_path / "plots"))
    assert "trials (continued)" in out and "trial 3 failed: diverged" in out
    row = next(line for line in out.splitlines() if line.startswith("│ 4 "))
    assert "infeasible" in row and "0.9000" in row  # it broke its constraint: shown, never the best
    assert all(n.rpartition(".")[2] in out for n in names)
    assert (tmp_path / "plots" / "history.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(("space", "extra", "expected"), [
    ({"train.learnrate": {"low": 1e-4, "high": 1e-2}}, [], "unknown config key train.learnrate; valid keys: "),
    ({"train.lr": {"low": 1e-2, "high": 1e-4}}, [], "train.lr: low (0.01) must be below high (0.0001)"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--storage", "sqlite:////no/such/dir/s.db"],
     "cannot open the study storage sqlite:////no/such/dir/s.db"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--pruner", "hyperband"], "pruner must be one of median, halving"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--metric", "NDCG@20"], "metric 'NDCG@20' needs a cut-off"),
    ({"model.dropout": {"low": 0.1, "high": 1.5}}, [], "space.yaml: model.dropout = 1.5 is not a valid setting"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--metric", "test_NDCG@10"],
     "(test metrics never steer it); did you mean NDCG@10?"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--trials", "0"], "trials must be at least 1, got 0: give e.g. "
                                                                  "--trials 1"),
    ({"train.lr": {"low": 1e-4, "high": 1e-2}}, ["--timeout", "-5"], "timeout must be a number of seconds above 0"),
])
def test_mistakes_are_one_line_errors(space: dict, extra: list[str], expected: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    config, space_file = files(tmp_path, space)
    assert_cli_error(["search", config, "--space", space_file, "--out", str(tmp_path / "r"), *extra], expected,
                     monkeypatch, capsys)


def test_show_needs_a_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert_cli_error(["search", "show", str(tmp_path)], "is not a study folder (no search.yaml)", monkeypatch, capsys)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(url)  # a database without studies
    assert_cli_error(["search", "show", "mine", "--storage", url], "no study 'mine' in", monkeypatch, capsys)


def test_a_folder_of_another_study_is_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    """The same study name in another storage would rewrite the folder's search.yaml, best.yaml and plots."""
    config, space = files(tmp_path)
    folder = tmp_path / "r" / "tiny-search"
    folder.mkdir(parents=True)
    write_description(folder, {"study": "tiny-search", "storage": None})
    (folder / "best.yaml").write_text("# the best of the first study\n")
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    other = tmp_path / "other.db"
    assert_cli_error(["search", config, "--space", space, "--out", str(tmp_path / "r"), "--storage",
                      f"sqlite:///{other}"], "already holds study 'tiny-search' in sqlite:///", monkeypatch, capsys)
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before and not other.exists()


def test_show_writes_nothing_it_was_not_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    """A storage that is not there is an error, not a new empty database; --out that is a file is an error."""
    missing = tmp_path / "missing.db"
    assert_cli_error(["search", "show", "mine", "--storage", f"sqlite:///{missing}"],
                     f"study storage sqlite:///{missing} does not exist", monkeypatch, capsys)
    folder = tmp_path / "study"
    folder.mkdir()
    write_description(folder, {"study": "study", "storage": None})
    assert_cli_error(["search", "show", str(folder)], "does not exist (no file", monkeypatch, capsys)
    assert not missing.exists() and not (folder / "study.db").exists()
    optuna.create_study(study_name="study", storage=f"sqlite:///{folder / 'study.db'}")
    (tmp_path / "plots").write_text("a file")
    assert_cli_error(["search", "show", str(folder), "--out", str(tmp_path / "plots")],
                     "is a file, not a folder; choose another --out", monkeypatch, capsys)
