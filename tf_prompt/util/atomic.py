"""Whole-file writes: a reader, or a kill at any instant, sees the old file or the new one.

A run's outputs (metrics.json, predictions.conll, the ordered trace, report.html, sweep tables
and plots) are each written to a temporary file in the same directory, flushed to disk, and
renamed over the old one with `os.replace`, which is atomic on POSIX and Windows when both names
are on one file system (hence the same directory). A failure removes the temporary file and
leaves the old file untouched. Standard library only, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from tf_prompt.util.jsontext import encodable

__all__ = ["TEMPORARY", "replacing", "write_bytes", "write_text"]

#: The name of a temporary file made by `replacing` (a kill can leave one behind).
TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.tmp(\.[^.]*)?")


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a crash of the machine could otherwise undo it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:   # e.g. Windows, where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on a clean exit it replaces `path` in one step.

    For writers that insist on a file name (`write_conll`, matplotlib's `savefig`): the temporary
    name keeps `path`'s suffix so format detection by extension still works. If the block raises,
    the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    if path.is_symlink():   # write through a link, as open() would, instead of replacing it
        path = path.resolve()
    if path.exists() and not path.is_file():   # never rename over /dev/null or a folder
        raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path)) if path.is_dir() else \
            OSError(errno.EINVAL, "not a regular file", str(path))
    # Not tempfile.mkstemp: its files are 0600, and an output should get the usual permissions
    # (0666 less the umask), like a file created by open().
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as fh:   # the writer may not have synced: do it before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (see the module docstring)."""
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically; newlines are written as given (no translation).

    A lone surrogate is written as U+FFFD (the replacement character), as a decoder shows an
    undecodable byte, rather than failing the whole file. JSON writers escape it exactly
    before it gets here (jsontext.py); this keeps pages and tables built from such text
    (report.html, sweep results) writable.
    """
    write_bytes(path, encodable(text).encode(encoding))
