"""The HTML report: one self-contained page with the runs' metrics, curves, protocol and escaped settings."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from seqrec.errors import SeqrecError
from seqrec.report.html import write_report
from seqrec.runs import METRICS


class PageParser(HTMLParser):
    """Tags, the URLs in src/href attributes, and the text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action", "srcset", "poster")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_report_of_many_runs_holds_metrics_curves_protocol_and_settings(runs_root: Path, tmp_path: Path) -> None:
    paths = [runs_root / "sasrec", runs_root / "gru4rec", runs_root / "unfinished"]
    page = write_report(paths, tmp_path / "report.html").read_text(encoding="utf-8")
    parsed = parse(page)
    text = " ".join(parsed.text)
    for name in ("sasrec", "gru4rec"):
        metrics = json.loads((runs_root / name / METRICS).read_text())
        for key in ("NDCG@10", "HR@10"):
            assert f"{metrics['test'][key]:.4f}" in text
    assert "test.NDCG@10" in text and "train.lr" in text and "unfinished" in text
    assert "seen items masked" in text and "seen_items_masked" in text and "max_len" in text
    assert parsed.tags.count("img") == 2 and parsed.tags[:1] == ["html"]
    assert all(url.startswith("data:image/png;base64,") for url in parsed.urls) and len(parsed.urls) == 2
    assert not {"script", "link", "iframe", "object", "embed"} & set(parsed.tags)
    assert "http://" not in page and "https://" not in page


def test_values_are_escaped(runs_root: Path, tmp_path: Path, hostile: str) -> None:
    page = write_report([runs_root / "<script>alert(1)"], tmp_path / "one.html").read_text(encoding="utf-8")
    parsed = parse(page)
    assert "script" not in parsed.tags
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page
    assert hostile in " ".join(parsed.text)  # shown as text, whole
    assert "data.note" in " ".join(parsed.text)  # a single run lists all its settings


def test_an_existing_file_is_replaced_only_when_asked(runs_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("keep me")
    with pytest.raises(SeqrecError, match="already exists"):
        write_report([runs_root / "sasrec"], out)
    assert out.read_text() == "keep me"
    write_report([runs_root / "sasrec"], out, overwrite=True)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind
