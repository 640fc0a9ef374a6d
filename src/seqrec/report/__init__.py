"""Plots, run listings, run comparisons and the HTML report.

`list_runs`, `compare_runs` and `write_report` are imported on first use, so `seqrec.report.plots` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"list_runs": "runs_table", "RunSummary": "runs_table", "compare_runs": "compare",
            "Comparison": "compare", "write_report": "html", "render_report": "html"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seqrec.report' has no attribute {name!r}")
    return getattr(import_module(f"seqrec.report.{_EXPORTS[name]}"), name)
