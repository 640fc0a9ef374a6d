"""One self-contained HTML page for one or many runs: metrics, learning curves, protocol and settings.

The page loads nothing: styles are inline, plots are base64 data URIs, there is no script, and a
Content-Security-Policy forbids anything else. Every value from a run is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from seqrec.config import flatten
from seqrec.report.compare import MISSING, Comparison, compare_runs
from seqrec.report.output import write_new_text
from seqrec.report.study import search_section

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 1px solid #d5dae0; padding-bottom: .2rem; }
.note { color: #5a6570; } .scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d5dae0; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f1f4f7; } td.num { text-align: right; font-family: ui-monospace, monospace; }
tbody tr:nth-child(even) { background: #fafbfc; }
.unfinished { color: #a15c00; font-weight: 600; } .absent { color: #9aa4ad; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; max-width: 100%; }
figure img { width: 34rem; max-width: 100%; height: auto; }
figcaption { color: #5a6570; text-align: center; } details { margin: .4rem 0; } summary { cursor: pointer; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def write_report(paths: Sequence[str | Path], out: str | Path, overwrite: bool = False,
                 title: str | None = None) -> Path:
    """Compare the runs in `paths` and write the page to `out` atomically (an existing file only with `overwrite`)."""
    comparison = compare_runs(paths)
    return write_new_text(out, render_report(comparison, title), overwrite)


def render_report(comparison: Comparison, title: str | None = None) -> str:
    """The whole page as a string."""
    labels = comparison.labels
    title = title or ("Run " + labels[0] if len(labels) == 1 else f"{len(labels)} runs compared")
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{escape(title)}</h1>", f'<p class="note">seqrec report · generated {generated}</p>',
            _runs_section(comparison), _metrics_section(comparison), _curves_section(comparison),
            search_section(run.path for run in comparison.runs.values()),
            _protocol_section(comparison), _config_section(comparison)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _runs_section(comparison: Comparison) -> str:
    rows = []
    for label, run in comparison.runs.items():
        status = "finished" if run.finished else '<span class="unfinished">unfinished</span>'
        cells = [escape(v) for v in (label, run.name, run.kind, run.model or "–", run.dataset or "–")]
        cells += [status, escape(run.modified.strftime("%Y-%m-%d %H:%M UTC")), f"<code>{escape(str(run.path))}</code>"]
        rows.append(cells)
    return "<h2>Runs</h2>\n" + _table(["run", "name", "kind", "model", "dataset", "status", "date", "folder"], rows,
                                      numeric=False)


def _metrics_section(comparison: Comparison) -> str:
    if not comparison.metrics:
        return '<h2>Metrics</h2>\n<p class="note">No run has metrics yet (unfinished runs write them last).</p>'
    rows = [[escape(key), *(format_value(values[label]) for label in comparison.labels)]
            for key, values in comparison.metrics.items()]
    monitors = sorted({run.monitor for run in comparison.runs.values()})
    note = (f'<p class="note">Every number in each run\'s metrics.json. Best epoch chosen on validation '
            f"{escape(', '.join(monitors))}; – where a run has no such metric.</p>")
    return "<h2>Metrics</h2>\n" + note + _table(["metric", *map(escape, comparison.labels)], rows)


def _curves_section(comparison: Comparison) -> str:
    if not comparison.curves:
        return '<h2>Learning curves</h2>\n<p class="note">No per-epoch history recorded.</p>'
    figures = []
    for key, png in comparison.curves.items():
        caption = key.replace("valid_", "validation ").replace("_", " ")
        data = base64.b64encode(png).decode("ascii")
        figures.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)} per epoch">'
                       f"<figcaption>{escape(caption)} per epoch</figcaption></figure>")
    return "<h2>Learning curves</h2>\n" + "\n".join(figures)


def _protocol_section(comparison: Comparison) -> str:
    protocols = comparison.protocols
    keys = list(dict.fromkeys(k for p in protocols.values() for k in p))
    if not keys:
        return '<h2>Evaluation protocol</h2>\n<p class="note">No protocol recorded.</p>'
    rows = [[escape(key), *(format_value(protocols[label].get(key, MISSING)) for label in comparison.labels)]
            for key in keys]
    lines = [describe_protocol(label, protocols[label]) for label in comparison.labels]
    note = "".join(f'<p class="note">{escape(line)}</p>' for line in lines if line)
    return "<h2>Evaluation protocol</h2>\n" + note + _table(["", *map(escape, comparison.labels)], rows)


def describe_protocol(label: str, protocol: Mapping[str, Any]) -> str:
    """One sentence per run: how its numbers were measured."""
    if not protocol:
        return ""
    masked = protocol.get("seen_items_masked", protocol.get("mask_seen"))
    parts = [str(protocol.get("ranking") or "full catalogue") + " ranking",
             "" if masked is None else ("seen items masked" if masked else "seen items not masked"),
             f"k = {', '.join(map(str, protocol['ks']))}" if isinstance(protocol.get("ks"), list) else "",
             f"input window {protocol['max_len']}" if "max_len" in protocol else "",
             f"{protocol['split']} split" if "split" in protocol else ""]
    return f"{label}: " + ", ".join(p for p in parts if p) + "."


def _config_section(comparison: Comparison) -> str:
    runs = comparison.runs
    if len(runs) == 1:
        label, run = next(iter(runs.items()))
        rows = [[escape(k), format_value(v)] for k, v in flatten(run.config).items()]
        return "<h2>Configuration</h2>\n" + _table(["key", escape(label)], rows, numeric=False)
    if comparison.config_diff:
        rows = [[escape(key), *(format_value(values[label]) for label in comparison.labels)]
                for key, values in comparison.config_diff.items()]
        diff = ('<p class="note">Settings that differ between the runs.</p>'
                + _table(["key", *map(escape, comparison.labels)], rows, numeric=False))
    else:
        diff = '<p class="note">All runs have the same settings.</p>'
    full = "".join(f"<details><summary>full settings of {escape(label)}</summary>"
                   + _table(["key", "value"], [[escape(k), format_value(v)] for k, v in flatten(run.config).items()],
                            numeric=False) + "</details>" for label, run in runs.items())
    return "<h2>Configuration</h2>\n" + diff + full


def format_value(value: Any) -> str:
    """A value as escaped HTML: numbers with four decimals, absent keys greyed out."""
    if value is MISSING:
        return '<span class="absent">(absent)</span>'
    if value is None:
        return '<span class="absent">–</span>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return escape(f"{value:.4f}" if 1e-3 <= abs(value) < 1e6 else f"{value:.4g}")
    if isinstance(value, (list, tuple, dict)):
        return escape(json.dumps(value, ensure_ascii=False, default=str))
    return escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True) -> str:
    """An HTML table of already-escaped cells; with `numeric`, cells after the first are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    cell = '<td class="num">{}</td>' if numeric else "<td>{}</td>"
    body = "".join("<tr><td>" + row[0] + "</td>" + "".join(cell.format(c) for c in row[1:]) + "</tr>\n"
                   for row in rows)
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>'
