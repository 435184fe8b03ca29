"""One process at a time in a folder: an exclusive `flock` on the folder itself.

Why: two commands sharing an output folder (the same `finetune` started twice, in two shells or
by a sweep) would each write the same state files and checkpoints, and for a paid fine-tuning
job each could start a job of its own. The lock is taken on the folder's own descriptor (no lock
file to leave behind) and is released by the kernel when the process ends, however it ends, so
a kill never leaves a folder locked. `runs/rundir.py` locks run folders the same way.

POSIX only; elsewhere (Windows) nothing is locked. Standard library only, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:   # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderBusy", "exclusive"]


class FolderBusy(Exception):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def exclusive(folder: str | Path) -> Iterator[None]:
    """Hold `folder` (which must exist) for the block; FolderBusy at once if another holds it."""
    if fcntl is None:   # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FolderBusy(str(folder)) from None
        yield
    finally:
        os.close(fd)   # closing the descriptor releases the lock
