"""The hyper-parameter search section of the HTML report: for runs that are trials of a study (their parent
folder holds the study's search.yaml), the study's optimisation-history and parameter-importance plots, as the
search wrote them into the study folder."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from html import escape
from pathlib import Path

STUDY_FILE = "search.yaml"  # what marks a study folder
PLOTS = {"history.png": "optimisation history", "importance.png": "parameter importance"}


def study_folders(run_paths: Iterable[Path]) -> list[Path]:
    """The study folders the runs are trials of, once each, in order."""
    found = [Path(path).parent for path in run_paths if (Path(path).parent / STUDY_FILE).is_file()]
    return list(dict.fromkeys(found))


def search_section(run_paths: Iterable[Path]) -> str:
    """The section's HTML, or "" when no run is a trial of a study."""
    parts = []
    for folder in study_folders(run_paths):
        figures = []
        for file, caption in PLOTS.items():
            if (folder / file).is_file():
                data = base64.b64encode((folder / file).read_bytes()).decode("ascii")
                figures.append(f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                               f"<figcaption>{caption}</figcaption></figure>")
        body = "\n".join(figures) or (f'<p class="note">No plots yet: <code>seqrec search show '
                                      f"{escape(str(folder))}</code> draws them.</p>")
        parts.append(f"<h3>Study <code>{escape(folder.name)}</code></h3>\n{body}")
    return "<h2>Hyper-parameter search</h2>\n" + "\n".join(parts) if parts else ""
