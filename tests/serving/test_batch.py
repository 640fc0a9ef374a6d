"""Batch export: every user's list streamed to Parquet, CSV or JSON Lines equals `recommend`; files are never
half-written or overwritten by accident; `seqrec recommend` for users, sessions and --all."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import seqrec
from helpers import TINY_EVAL, assert_cli_error, tiny_model_config, tiny_train_config
from seqrec import cli
from seqrec.cli import common
from seqrec.data.splits import SplitData
from seqrec.errors import SeqrecError, UnknownIdError
from seqrec.recommender import Recommender
from seqrec.serving import batch
from seqrec.serving.batch import export_recommendations, read_item_ids

runner = CliRunner()


@pytest.fixture(scope="module")
def saved(tiny_data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained SASRec run directory (40 items, 60 users)."""
    run = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(epochs=1), TINY_EVAL, progress=False)
    return run.save(tmp_path_factory.mktemp("batch") / "run")


@pytest.fixture(scope="module")
def rec(saved: Path) -> Recommender:
    return seqrec.load(saved).recommender


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.console, "width", 300)


def read_rows(path: Path, kind: str) -> list[dict]:
    """The file's rows as dicts with the types `recommend` gives (rank int, score float)."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        assert table.schema.names == ["user", "rank", "item", "score", "title"]
        rows = table.to_pylist()
    elif kind == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{**r, "rank": int(r["rank"]), "score": float(r["score"])} for r in rows]


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl"])
def test_every_users_list_equals_recommend(rec: Recommender, tmp_path: Path, kind: str) -> None:
    path = export_recommendations(rec, tmp_path / f"recs.{kind}", k=7, chunk_size=8)  # one block of 8 chunks
    rows = read_rows(path, kind)
    assert rows == rec.recommend(rec.user_map.external, k=7, chunk_size=8)  # the same scores, bit for bit
    assert len(rows) == 7 * 60 and [p.name for p in tmp_path.iterdir()] == [f"recs.{kind}"]


def test_blocks_keep_the_users_order_and_the_lists(rec: Recommender, tmp_path: Path) -> None:
    users = rec.user_map.external[::-1][:25]  # in reverse order; chunks of 1 user, blocks of 16 and 9
    batch_rows = read_rows(export_recommendations(rec, tmp_path / "r.jsonl", k=4, users=users, chunk_size=1), "jsonl")
    expected = rec.recommend(users, k=4)
    assert [(r["user"], r["rank"], r["item"], r["title"]) for r in batch_rows] == \
        [(r["user"], r["rank"], r["item"], r["title"]) for r in expected]
    np.testing.assert_allclose([r["score"] for r in batch_rows], [r["score"] for r in expected], rtol=1e-6)


def test_short_lists_allow_and_deny(rec: Recommender, tmp_path: Path) -> None:
    allow = rec.item_map.external[:30]
    rows = read_rows(export_recommendations(rec, tmp_path / "r.csv", k=25, allow=allow, deny=allow[:5],
                                            mask_seen=True), "csv")
    for n, user in enumerate(rec.user_map.external):
        candidates = set(allow[5:]) - set(rec.item_map.to_external(rec.histories[n]))
        mine = [r["item"] for r in rows if r["user"] == user]
        assert set(mine) == candidates and len(mine) == len(candidates)  # 25 candidates minus the seen ones
    with pytest.raises(SeqrecError, match="k = 26 is more than the 25 candidate items"):
        export_recommendations(rec, tmp_path / "s.csv", k=26, allow=allow, deny=allow[:5])
    with pytest.raises(UnknownIdError, match="ghost"):
        export_recommendations(rec, tmp_path / "s.csv", k=3, users=["ghost"])
    assert not (tmp_path / "s.csv").exists()


def test_an_existing_file_is_kept_unless_overwrite(rec: Recommender, tmp_path: Path) -> None:
    path = tmp_path / "recs.parquet"
    path.write_text("mine")
    with pytest.raises(SeqrecError, match="recs.parquet exists; pass --force"):
        export_recommendations(rec, path, k=3)
    assert path.read_text() == "mine"
    export_recommendations(rec, path, k=3, overwrite=True)
    assert len(read_rows(path, "parquet")) == 3 * 60


def test_a_failed_export_leaves_no_file(rec: Recommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = rec.top_items

    def fail_on_second_block(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rec, "top_items", fail_on_second_block)
    with pytest.raises(KeyboardInterrupt):
        export_recommendations(rec, tmp_path / "recs.csv", k=3, chunk_size=2)  # blocks of 32 users
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_formats_by_suffix_or_by_name(rec: Recommender, tmp_path: Path) -> None:
    with pytest.raises(SeqrecError, match=r"suffix '\.txt'.*--format parquet/csv/jsonl"):
        export_recommendations(rec, tmp_path / "recs.txt", k=3)
    path = export_recommendations(rec, tmp_path / "recs.txt", k=3, format="csv")
    assert path.read_text().splitlines()[0] == "user,rank,item,score,title"
    with pytest.raises(SeqrecError, match="unknown output format 'xlsx'"):
        export_recommendations(rec, tmp_path / "recs.csv", k=3, format="xlsx")  # type: ignore[arg-type]
    with pytest.raises(SeqrecError, match="is not a folder"):
        export_recommendations(rec, tmp_path / "missing" / "recs.csv", k=3)


def test_parquet_without_pyarrow_says_what_to_install(rec: Recommender, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SeqrecError, match=r"pip install 'seqrec\[data\]'"):
        export_recommendations(rec, tmp_path / "recs.parquet", k=3)
    assert list(tmp_path.iterdir()) == []
    assert len(read_rows(export_recommendations(rec, tmp_path / "recs.jsonl", k=2), "jsonl")) == 120


def test_id_files(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"\xef\xbb\xbf7\r\n  12 \n\nab\n")
    assert read_item_ids(path) == ["7", "12", "ab"]
    path.write_text("\n \n")
    with pytest.raises(SeqrecError, match="no item ids; write one item id per line"):
        read_item_ids(path)
    with pytest.raises(SeqrecError, match="file not found"):
        read_item_ids(tmp_path / "none.txt")


def test_cli_exports_every_user(saved: Path, rec: Recommender, tmp_path: Path) -> None:
    out = tmp_path / "recs.parquet"
    allow = tmp_path / "allow.txt"
    allow.write_text("\n".join(rec.item_map.external[:20]))
    args = ["recommend", str(saved), "--all", "--out", str(out), "--k", "4", "--allow-file", str(allow)]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "top 4 for 60 users written to" in result.output
    assert read_rows(out, "parquet") == rec.recommend(rec.user_map.external, k=4, allow=rec.item_map.external[:20],
                                                      chunk_size=batch.DEFAULT_CHUNK)
    assert runner.invoke(cli.app, [*args, "--force"]).exit_code == 0


def test_cli_recommends_for_a_session(saved: Path, rec: Recommender) -> None:
    items = rec.item_map.external
    result = runner.invoke(cli.app, ["recommend", str(saved), "--item", items[2], "--item", "nope", "--item",
                                     items[7], "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer == {"rows": rec.recommend_sessions([[items[2], items[7]]], k=3).rows, "unknown": ["nope"]}
    table = runner.invoke(cli.app, ["recommend", str(saved), "--item", items[2], "--item", "nope", "--item",
                                    items[7], "--k", "3"])
    assert table.exit_code == 0 and "1 of 3 items unknown to this run (skipped)" in " ".join(table.output.split())
    for row in answer["rows"]:
        assert row["title"] in table.output


@pytest.mark.parametrize(("args", "expected"), [
    (["--user", "1", "--all", "--out", "x.csv"], "give --user USER (repeatable), --item ITEM"),
    ([], "give --user USER (repeatable), --item ITEM"),
    (["--all"], "give both --all and --out"),
    (["--user", "1", "--out", "x.csv"], "give both --all and --out"),
    (["--item", "zzz"], "session 0 has no item this run knows (zzz)"),
    (["--user", "1", "--k", "41"], "k = 41 is more than the 40 candidate items"),
])
def test_cli_mistakes_are_one_line_errors(saved: Path, args: list[str], expected: str, monkeypatch, capsys) -> None:  # noqa: ANN001
    assert_cli_error(["recommend", str(saved), *args], expected, monkeypatch, capsys)


def test_cli_refuses_to_overwrite(saved: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "recs.csv"
    out.write_text("keep")
    assert_cli_error(["recommend", str(saved), "--all", "--out", str(out)], "exists; pass --force", monkeypatch,
                     capsys)
    assert out.read_text() == "keep"


def test_cli_interrupted_export_leaves_the_old_file(saved: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "recs.jsonl"
    out.write_text("old")

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(Recommender, "top_items", interrupted)
    result = runner.invoke(cli.app, ["recommend", str(saved), "--all", "--out", str(out), "--force"])
    assert result.exit_code == 130 and out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [out.name]
