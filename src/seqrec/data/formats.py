"""File formats of the user's own data: detect one from a path, and read a table file into a pyarrow Table."""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from seqrec.data.config import FORMATS
from seqrec.data.text_files import UTF8_BOM, UTF16_BOMS
from seqrec.errors import DataError, suggest

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
              ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".inter": "recbole", ".dat": "movielens"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
AMAZON_PARTS = ("train", "valid", "test")


def detect_format(path: Path) -> str:
    """The format of a file (by extension; `.txt` by its first lines) or of a folder (by the files it holds)."""
    if path.is_dir():
        return _folder_format(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix == ".txt":
        return _text_format(path)
    raise DataError(f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; set data.format "
                    f"to one of {suggest(FORMATS)}")


def _folder_format(folder: Path) -> str:
    names = {p.name for p in folder.iterdir()}
    if {"train.csv", "dev.csv", "test.csv"} <= names:
        return "rechorus"
    if "ratings.dat" in names:
        return "movielens"
    if all(any(n in names for n in (f"{part}.jsonl", f"{part}.jsonl.gz")) for part in AMAZON_PARTS):
        return "amazon2023"
    if any(n.endswith(".inter") for n in names):
        return "recbole"
    if any(n.endswith((".parquet", ".pq")) for n in names):
        return "parquet"
    shown = suggest(sorted(names)[:10]) or "nothing"
    raise DataError(f"{folder}: cannot tell the format of this folder (it holds {shown}); point data.path at the "
                    f"interaction file, or set data.format to one of {suggest(FORMATS)}")


def _text_format(path: Path) -> str:
    """SASRec (`user item` per line) or S3-Rec (`user i1 i2 ...`), from the first lines."""
    with open(path, "rb") as handle:
        head = [line.split() for line in handle.read(1 << 16).splitlines()[:100]]
    counts = {len(fields) for fields in head if fields}
    return "sasrec" if counts == {2} else "s3rec"


def read_arrow(path: Path, fmt: str) -> pa.Table:
    """A csv / tsv / parquet / jsonl file (or a folder of parquet files) as a pyarrow Table.

    CSV and TSV columns are read as text (ids keep their leading zeros; numbers are parsed later, with the row of
    any bad value named); empty fields are nulls.
    """
    if not path.exists():
        raise DataError(f"{path}: file not found; check data.path")
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "jsonl":
            return pa_json.read_json(_stream(path))
        return _read_delimited(path, DELIMITERS[fmt])
    except (pa.ArrowException, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read as {fmt} ({_arrow_message(exc)}); fix the file or set "
                        f"data.format (valid: {suggest(FORMATS)})") from None


def _stream(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None)


def _read_delimited(path: Path, delimiter: str) -> pa.Table:
    header = _header(path, delimiter)
    if len(set(header)) != len(header):
        duplicate = next(h for h in header if header.count(h) > 1)
        raise DataError(f"{path}:1: the header names column {duplicate!r} twice; rename one of them")
    convert = pa_csv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=True,
                                    null_values=[""], quoted_strings_can_be_null=False)
    parse = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    return pa_csv.read_csv(_stream(path), parse_options=parse, convert_options=convert)


def _header(path: Path, delimiter: str) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        first = re.split(rb"[\r\n]", handle.read(1 << 20), maxsplit=1)[0]  # pyarrow ends lines at \r, \n, \r\n
    if first.startswith(UTF16_BOMS):
        raise DataError(f"{path}:1: the file is UTF-16 or UTF-32 text; re-save it as UTF-8")
    try:
        text = first.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}:1: the header is not valid UTF-8 text; re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}:1: expected a header line with the column names (e.g. user_id,item_id,timestamp)")
    try:
        return next(csv.reader([text], delimiter=delimiter))
    except csv.Error as exc:
        raise DataError(f"{path}:1: the header line cannot be read ({exc}); fix the column names") from None


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
