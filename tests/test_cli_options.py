"""The command line's shared behaviour: -h everywhere, --version, --quiet, --verbose, one spelling per option,
and every command example in the README and docs parses."""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from helpers import TINY_SYNTHETIC
from seqrec import cli
from seqrec.cli import common

app_module = importlib.import_module("seqrec.cli.app")  # `seqrec.cli.app` the attribute is the Typer app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = {
    "name": "quiet",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 2, "batch_size": 32, "patience": 0, "device": "cpu"},
    "eval": {"ks": [5, 10]},
}


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group below COMMAND with the words that reach it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


def parse_only(args: list[str]) -> None:
    """Parse `seqrec ARGS` as the app would (types, required options), but run no command."""
    root = typer.main.get_command(cli.app)
    for _, command in walk(root):
        if not getattr(command, "commands", None):
            command.callback = lambda **kwargs: None
    root.main(args, prog_name="seqrec", standalone_mode=False)


def test_short_help_on_every_command() -> None:
    paths = [path for path, _ in walk(typer.main.get_command(cli.app))]
    assert ("sae", "tune") in paths and len(paths) > 15
    for path in paths:
        result = runner.invoke(cli.app, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and "--help" in result.output


def test_version(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.output == f"seqrec {common.package_version()}\n"
    assert re.fullmatch(r"\d+\.\d+\S*", common.package_version())
    monkeypatch.setattr(sys, "argv", ["seqrec", "--version"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("seqrec ")


def test_version_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import seqrec

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert common.package_version() == seqrec.__version__


def test_tune_is_a_sae_command() -> None:
    result = runner.invoke(cli.app, ["sae", "tune", "--help"])
    assert result.exit_code == 0
    for option in ("--target", "--suppress", "--lambda", "--latents", "--set", "--out", "--data-dir"):
        assert option in result.output
    gone = runner.invoke(cli.app, ["tune", "runs/x", "--target", "Comedy"])
    assert gone.exit_code == 2 and "No such command 'tune'" in gone.output


def test_every_group_registers() -> None:
    names = list(typer.main.get_command(cli.app).commands)  # type: ignore[attr-defined]
    assert {"data", "train", "evaluate", "recommend", "rebuild-index", "demo", "sae", "steer", "profiles",
            "llm"} <= set(names)
    assert all(callable(group.register) for group in app_module.GROUPS)


def test_verbose_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["seqrec", "--verbose", "data", "info", "no-such-dataset"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" in err and "error: " in err and "no-such-dataset" in err
    assert not common.settings.verbose  # reset for the next command

    monkeypatch.setattr(sys, "argv", ["seqrec", "data", "info", "no-such-dataset"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1


def test_quiet_and_verbose_exclude_each_other(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["seqrec", "-q", "-v", "data", "list"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_ctrl_c_outside_long_work_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app_module, "app", interrupted)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 130


@pytest.fixture
def spy_training(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the `progress` flag the CLI passes to the library, and train nothing."""
    import seqrec.api

    seen: list[bool] = []

    def run_experiment(config: Any, out: Any, progress: bool = True) -> Any:
        seen.append(progress)
        return type("Run", (), {"path": None})()

    monkeypatch.setattr(seqrec.api, "run_experiment", run_experiment)
    return seen


def test_quiet_turns_progress_off(spy_training: list[bool], tmp_path: Path) -> None:
    config = tmp_path / "quiet.yaml"
    config.write_text(yaml.safe_dump(EXPERIMENT))
    assert runner.invoke(cli.app, ["train", str(config), "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli.app, ["-q", "train", str(config), "--out", str(tmp_path)]).exit_code == 0
    assert spy_training == [True, False]
    assert not common.settings.quiet  # restored after the command


def test_quiet_training_prints_results_only(tmp_path: Path) -> None:
    config = tmp_path / "quiet.yaml"
    config.write_text(yaml.safe_dump(EXPERIMENT))
    result = runner.invoke(cli.app, ["--quiet", "train", str(config), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "NDCG" in result.output and "run saved to" in result.output  # results still print
    assert "epoch 1:" not in result.output and "ETA" not in result.output and "batches" not in result.output


def test_quiet_hides_informational_lines(tmp_path: Path) -> None:
    loud = runner.invoke(cli.app, ["data", "list", "--data-dir", str(tmp_path)])
    quiet = runner.invoke(cli.app, ["-q", "data", "list", "--data-dir", str(tmp_path)])
    assert loud.exit_code == quiet.exit_code == 0
    assert "missing datasets are read from" in loud.output and "missing datasets" not in quiet.output
    assert "synthetic" in quiet.output  # the table itself


def test_one_spelling_per_option() -> None:
    """Outputs are --out, lists are repeated options, and the shared options keep their one name."""
    seen: dict[str, set[str]] = {}
    for path, command in walk(typer.main.get_command(cli.app)):
        for param in getattr(command, "params", []):
            for opt in param.opts:
                seen.setdefault(opt, set()).add(" ".join(path))
            if param.param_type_name == "option" and "--out" not in param.opts:
                assert not {"--output", "--output-dir", "--outdir"} & set(param.opts), (path, param.opts)
            assert "comma" not in (getattr(param, "help", "") or "").lower(), (path, param.opts)
    for plural in ("--attributes", "--scales", "--betas", "--models", "--ks"):
        assert plural not in seen, (plural, seen.get(plural))
    assert {"train", "demo", "sae train", "sae tune", "profiles write", "profiles embed", "llm grpo"} <= seen["--out"]
    assert {"train", "sae train", "sae tune"} <= seen["--set"]
    assert {"train", "evaluate", "steer", "data list", "llm sketch"} <= seen["--data-dir"]


def shell_examples(text: str) -> Iterator[list[str]]:
    """`seqrec …` lines of the bash blocks in TEXT (comments dropped, `torchrun … -m seqrec` included)."""
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "seqrec" in words and "$" not in line and "…" not in line:
                yield words[words.index("seqrec") + 1:]


DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_documented_commands_parse(doc: str) -> None:
    examples = list(shell_examples((ROOT / doc).read_text(encoding="utf-8")))
    if doc == "README.md":
        assert len(examples) > 20
    for args in examples:
        try:
            parse_only(args)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{doc}: `seqrec {' '.join(args)}` does not parse: {exc}")
