"""Files that a crash never leaves half-written, with normal permissions, and JSON read with clear errors."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqrec.errors import RunError, SeqrecError

TMP_MARK = ".tmp-"  # hidden temporary siblings: .<name>.tmp-<host>-<pid>-<token>


def host_name() -> str:
    """This machine's name as it appears in temporary and claim file names (short enough for any file name)."""
    return socket.gethostname()[:40]


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name beside `path` that records which process made it (so leftovers can be cleaned)."""
    return path.parent / f".{path.name[:80]}{TMP_MARK}{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"


def normal_permissions(root: Path) -> None:
    """Give `root` and everything below it the modes a new file or folder gets from the umask (some writers,
    such as safetensors, create files as 0600)."""
    mask = current_umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)


def write_file_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_name)` on a temporary file beside `path`, then move it into place.

    The temporary file is created with the process umask (like any new file), not the 0600 of `mkstemp`.
    """
    tmp = temp_sibling(path)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(str(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # some writers (safetensors) recreate the file as 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one step."""
    write_file_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def dumps_json(data: Any, where: str, indent: int | None = 2) -> str:
    """JSON text of `data`; NaN or infinity (invalid JSON) is an error naming `where`."""
    try:
        return json.dumps(data, indent=indent, allow_nan=False)
    except ValueError:
        raise SeqrecError(f"{where}: refusing to write NaN or infinity as JSON ({first_non_finite(data)}); "
                          "a metric or value is not a number") from None


def first_non_finite(data: Any, key: str = "") -> str:
    """Dotted key of the first NaN/inf value inside nested dicts and lists ("" when none)."""
    if isinstance(data, float) and (data != data or data in (float("inf"), float("-inf"))):
        return key or "value"
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return ""
    for k, v in items:
        found = first_non_finite(v, f"{key}.{k}" if key else str(k))
        if found:
            return found
    return ""


def read_json(path: Path, fix: str, error: type[SeqrecError] = RunError) -> Any:
    """Parse a JSON file; a missing, unreadable or damaged file raises `error` naming it, the line and `fix`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path} is missing; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path} cannot be read ({exc}); {fix}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: damaged JSON ({exc.msg}); {fix}") from None


def read_json_lines(path: Path, fix: str, error: type[SeqrecError] = RunError) -> list[Any]:
    """One JSON value per non-blank line; a damaged line raises `error` naming `path:line` and `fix`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path} cannot be read ({exc}); {fix}") from None
    out = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 is not a line end
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: damaged JSON line ({exc.msg}); {fix}") from None
    return out
