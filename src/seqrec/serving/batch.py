"""Batch export: top-k lists for many users, a chunk at a time, streamed to a Parquet, CSV or JSON Lines file."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from seqrec.data.text_files import read_text
from seqrec.errors import DataError, SeqrecError, suggest
from seqrec.files import write_file_atomically
from seqrec.recommender import ItemIds, Recommender, TopItems

Format = Literal["parquet", "csv", "jsonl"]
SUFFIXES: dict[str, Format] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
                               ".ndjson": "jsonl"}
COLUMNS = ("user", "rank", "item", "score", "title")
DEFAULT_CHUNK = 256  # users per forward pass: on CPU, short chunks sorted by length waste the least padding
BLOCK_CHUNKS = 16  # chunks of users sorted by history length together: less padding, bounded memory


@dataclass
class Columns:
    """One block of recommendation rows as columns (best first per user, users in the order asked)."""

    user: np.ndarray  # [R] object (str)
    rank: np.ndarray  # [R] int32, 1-based
    item: np.ndarray  # [R] internal item ids
    score: np.ndarray  # [R] float32
    users: int  # users in the block
    short: int  # of them, users with fewer than k rows


class Writer(Protocol):
    """Appends blocks of rows to an open file; `close` finishes it."""

    def write(self, columns: Columns) -> None: ...

    def close(self) -> None: ...


def export_recommendations(recommender: Recommender, path: str | Path, k: int = 10,
                           users: Iterable[str] | Iterable[int] | None = None, *, mask_seen: bool | None = None,
                           allow: ItemIds | None = None, deny: ItemIds | None = None, format: Format | None = None,
                           overwrite: bool = False, chunk_size: int = DEFAULT_CHUNK, progress: bool = False) -> Path:
    """Write the top-k lists of `users` (default: every user of the run) to `path`, as `recommend` would give them.

    The format follows the suffix (.parquet, .csv, .jsonl) unless `format` is given. Users are scored `chunk_size`
    at a time and each block of chunks is appended to a temporary sibling that replaces `path` only when all are
    written; an existing `path` is refused unless `overwrite`. A user with fewer unseen candidates than k gets
    fewer rows (the progress bar counts them).
    """
    path = Path(path)
    kind = output_format(path, format)
    check_output(path, overwrite)
    if kind == "parquet":
        _pyarrow()
    internal = (np.arange(len(recommender.user_map)) if users is None
                else recommender.user_map.to_internal(list(users), kind="user id"))
    candidates = recommender.candidate_mask(allow, deny)
    recommender.check_k(k, candidates)
    masked = recommender.mask_seen if mask_seen is None else mask_seen
    blocks = recommendation_blocks(recommender, internal, k, masked, candidates, chunk_size)

    def write(tmp: str) -> None:
        writer = WRITERS[kind](tmp, recommender)
        try:
            with _progress(len(internal), progress) as advance:
                for columns in blocks:
                    writer.write(columns)
                    advance(columns.users, columns.short)
        finally:
            writer.close()

    write_file_atomically(path, write)
    return path


def recommendation_blocks(recommender: Recommender, users: np.ndarray, k: int, mask_seen: bool,
                          candidates: np.ndarray, chunk_size: int = DEFAULT_CHUNK) -> Iterator[Columns]:
    """The rows of `users` (internal ids), `BLOCK_CHUNKS` chunks of users at a time."""
    if chunk_size < 1:
        raise SeqrecError(f"chunk_size must be >= 1, got {chunk_size}")
    names = np.asarray(recommender.user_map.external, dtype=object)  # [U]
    block = chunk_size * BLOCK_CHUNKS
    for start in range(0, len(users), block):
        part = users[start : start + block]
        top = recommender.top_items(recommender.histories.take(part), k, mask_seen, candidates, chunk_size,
                                    rows=part)
        yield columns_of(names[part], top)


def columns_of(names: np.ndarray, top: TopItems) -> Columns:
    """Flatten top-k arrays into rows; entries past a row's length are dropped.  names [C], top [C, K] -> [R]"""
    real = np.arange(top.items.shape[1])[None, :] < top.lengths[:, None]  # [C, K]
    ranks = np.broadcast_to(np.arange(1, top.items.shape[1] + 1, dtype=np.int32), real.shape)
    return Columns(np.repeat(names, top.lengths), ranks[real], top.items[real], top.scores[real], len(names),
                   len(top.short))


def output_format(path: Path, format: str | None = None) -> Format:
    """The format asked for, else the one of the file's suffix."""
    if format is not None:
        if format not in WRITERS:
            raise SeqrecError(f"unknown output format {format!r}; use one of {suggest(WRITERS)}")
        return format  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SeqrecError(f"{path}: cannot tell the output format from the suffix {suffix or '(none)'!r}; name the "
                          f"file .parquet, .csv or .jsonl, or give the format (--format {'/'.join(WRITERS)})")
    return SUFFIXES[suffix]


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace a file unless asked, and fail early when the folder is missing or the path is a folder."""
    if path.is_dir():
        raise SeqrecError(f"{path} is a folder; give a file name for the recommendations, e.g. {path / 'recs.parquet'}")
    if path.exists() and not overwrite:
        raise SeqrecError(f"{path} exists; pass --force to replace it (overwrite=True in Python), or choose another "
                          "file")
    if not path.parent.is_dir():
        raise SeqrecError(f"{path.parent} is not a folder; create it first or write the file elsewhere")


def read_item_ids(path: str | Path) -> list[str]:
    """Item ids from a text file, one per line (blank lines and surrounding spaces ignored)."""
    lines = [line.strip() for line in read_text(Path(path)).splitlines()]
    ids = [line for line in lines if line]
    if not ids:
        raise DataError(f"{path}: no item ids; write one item id per line")
    return ids


class ParquetWriter:
    """Columns user, rank, item, score, title; one row group per chunk."""

    def __init__(self, path: str, recommender: Recommender) -> None:
        pa, pq = _pyarrow()
        self.pa = pa
        self.items = pa.array([""] + recommender.item_map.external, type=pa.string())  # [N+1] by internal id
        self.titles = pa.array(recommender.catalog.titles or [""] * (recommender.num_items + 1), type=pa.string())
        self.schema = pa.schema([("user", pa.string()), ("rank", pa.int32()), ("item", pa.string()),
                                 ("score", pa.float32()), ("title", pa.string())])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, columns: Columns) -> None:
        pa, index = self.pa, self.pa.array(columns.item)
        table = pa.Table.from_arrays([pa.array(columns.user, type=pa.string()), pa.array(columns.rank),
                                      self.items.take(index), pa.array(columns.score), self.titles.take(index)],
                                     schema=self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class CsvWriter:
    """A header line, then one line per row (the csv module's quoting; scores as shortest round-trip floats)."""

    def __init__(self, path: str, recommender: Recommender) -> None:
        self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        self.out = csv.writer(self.file)
        self.out.writerow(COLUMNS)
        self.items = np.asarray(["", *recommender.item_map.external], dtype=object)
        self.titles = np.asarray(recommender.catalog.titles or [""] * (recommender.num_items + 1), dtype=object)

    def write(self, columns: Columns) -> None:
        self.out.writerows(zip(columns.user.tolist(), columns.rank.tolist(), self.items[columns.item].tolist(),
                               columns.score.tolist(), self.titles[columns.item].tolist(), strict=True))

    def close(self) -> None:
        self.file.close()


class JsonlWriter:
    """One JSON object per line: {"user", "rank", "item", "score", "title"}."""

    def __init__(self, path: str, recommender: Recommender) -> None:
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        quoted = [json.dumps(i) for i in ["", *recommender.item_map.external]]  # JSON text of each id, once
        self.items = np.asarray(quoted, dtype=object)
        titles = recommender.catalog.titles or [""] * (recommender.num_items + 1)
        self.titles = np.asarray([json.dumps(t) for t in titles], dtype=object)

    def write(self, columns: Columns) -> None:
        users = [json.dumps(u) for u in columns.user.tolist()]
        self.file.writelines(
            f'{{"user": {u}, "rank": {r}, "item": {i}, "score": {s!r}, "title": {t}}}\n'
            for u, r, i, s, t in zip(users, columns.rank.tolist(), self.items[columns.item].tolist(),
                                     columns.score.tolist(), self.titles[columns.item].tolist(), strict=True))

    def close(self) -> None:
        self.file.close()


WRITERS: dict[str, Callable[[str, Recommender], Writer]] = {"parquet": ParquetWriter, "csv": CsvWriter,
                                                            "jsonl": JsonlWriter}


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise SeqrecError("writing Parquet needs pyarrow: pip install 'seqrec[data]' (or write .csv / .jsonl)"
                          ) from None
    return pyarrow, pyarrow.parquet


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A Rich bar over users with ETA and the count of short lists so far; yields `advance(users, short)`."""
    if not enabled:
        yield lambda users, short: None
        return
    from seqrec.training.callbacks import progress_bar

    found = [0]
    with progress_bar() as bar:
        task = bar.add_task("recommend", total=total, status="")

        def advance(users: int, short: int) -> None:
            found[0] += short
            status = f"{found[0]:,} users with fewer than k unseen items" if found[0] else ""
            bar.update(task, advance=users, status=status)

        yield advance
