"""Report files written in one step, never replacing an existing file unless asked to."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from seqrec.errors import SeqrecError
from seqrec.files import temp_sibling, write_file_atomically


def write_new_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write `data` to `path` atomically; an existing `path` is an error unless `overwrite`.

    Without `overwrite` the finished temporary file is hard-linked into place, which fails if another process
    created `path` meanwhile, so nothing is ever replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise SeqrecError(f"{path} is a folder; give a file name for the output")
    if not path.parent.is_dir():
        raise SeqrecError(f"folder {path.parent} does not exist; create it or choose another output path")
    if overwrite:
        write_file_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
        return path
    _refuse_existing(path)
    tmp = temp_sibling(path)
    try:
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            _refuse_existing(path)
        except OSError:  # a file system without hard links: check, then rename
            _refuse_existing(path)
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def write_new_text(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """`write_new_bytes` for UTF-8 text."""
    return write_new_bytes(path, text.encode("utf-8"), overwrite)


def _refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise SeqrecError(f"{path} already exists; choose another output path or pass --force to replace it")
