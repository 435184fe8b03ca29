"""Errors about a run folder, apart so that the folder's writers, readers and owner share them
without importing one another."""

from __future__ import annotations

from tf_prompt.data.conll import DataError


class RunDirError(DataError):
    """The output folder cannot be used as asked; `str(e)` is one line naming the folder."""


class OutputError(RunDirError):
    """An output file could not be written; `str(e)` is one line naming the file."""


class RunFileError(ValueError):
    """A run file that cannot be read back (bad JSON, a field of the wrong type, a broken CoNLL
    line); `str(e)` is one line naming the file, and the line when there is one."""
