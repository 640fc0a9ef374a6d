"""The report opens in a real headless browser without console errors (skipped where Chromium is missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from seqrec.report.html import write_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")


def headless(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Chromium without a display, sandbox, GPU or network, logging the page's console to stderr."""
    command = [str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={cwd / 'profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_report_renders_in_chromium_without_console_messages(runs_root: Path, tmp_path: Path) -> None:
    page = write_report([runs_root / "sasrec", runs_root / "gru4rec", runs_root / "<script>alert(1)"],
                        tmp_path / "report.html")
    dom = headless("--dump-dom", page.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "test.NDCG@10" in dom.stdout and "<script" not in dom.stdout
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "\n".join(console)  # e.g. a blocked external load or a script the policy refused
    shot = tmp_path / "report.png"
    done = headless(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri(), cwd=tmp_path)
    assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
