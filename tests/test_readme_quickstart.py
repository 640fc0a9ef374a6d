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
