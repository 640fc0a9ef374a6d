"""The README's "Your own data" commands run as written (with a smaller model), in an empty folder."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from seqrec import cli
from seqrec.cli import common

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- own-data-quickstart:start -->\s*```bash\n(.*?)```\s*<!-- own-data-quickstart:end -->", re.S)
TINY = ["--set", "model.hidden=16", "--set", "model.max_len=20", "--set", "train.epochs=2", "--set",
        "train.device=cpu"]


def quickstart_commands() -> list[list[str]]:
    """The commands between the README's markers: continuation lines joined, comments dropped."""
    match = BLOCK.search(README.read_text())
    assert match, "README.md lost its own-data-quickstart markers"
    text = match.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in text.splitlines() if line.strip()]


def test_readme_own_data_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.console, "width", 200)
    commands = quickstart_commands()
    assert [c[:2] for c in commands] == [["seqrec", "data"], ["seqrec", "data"], ["seqrec", "train"],
                                         ["seqrec", "evaluate"], ["seqrec", "recommend"]]
    for command in commands:
        argv = command + (TINY if command[1] == "train" else [])
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exc:
            cli.main()
        out, err = capsys.readouterr()
        assert exc.value.code == 0, f"{shlex.join(command)}\n{out}\n{err}"
        if command[1] == "evaluate":
            assert "Comedy_ratio" in out
        if command[1] == "recommend":
            assert re.search(r"\bu1\b.*\bi\d+\b", out), out  # user u1, then item ids like i17
    assert (tmp_path / "runs" / "shop" / "metrics.json").is_file()


PYTHON_BLOCK = re.compile(r"## Quickstart: Python\s*```python\n(.*?)```", re.S)


def test_readme_python_quickstart_trains_the_config_of_the_headline_number() -> None:
    """The quickstart's library defaults are the settings of configs/sasrec-ml-1m-sas.yaml, field by field.

    Same settings and seed give the same training, so the quickstart reproduces the README's SASRec row.
    """
    import ast

    import seqrec
    from seqrec.config import read_yaml
    from seqrec.experiment import ExperimentConfig

    block = PYTHON_BLOCK.search(README.read_text())
    assert block, "README.md lost its Python quickstart"
    calls = {}
    for node in ast.walk(ast.parse(block.group(1))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("SASRecConfig", "TrainConfig"):
            calls[node.func.attr] = eval(compile(ast.Expression(node), "README", "eval"), {"seqrec": seqrec})
    shipped = ExperimentConfig.from_dict(read_yaml(README.parent / "configs" / "sasrec-ml-1m-sas.yaml"))
    assert calls["SASRecConfig"] == shipped.model
    assert calls["TrainConfig"] == shipped.train
    assert "ml-1m-sas" in block.group(1) and shipped.data.name == "ml-1m-sas"
    assert shipped.eval == seqrec.EvalConfig()
