"""One readable line from a pydantic ValidationError, for the CLI, sweeps and schema files.

pydantic prefixes a validator's own message with "Value error, " and gives a check across
fields (a model validator) an empty location, so printing `loc: msg` gave
`: Value error, --combine vote applies to ...`. Here the validator's exception is read itself:
its words, and, for a check across fields, the field it names (`SettingError.field`) so a sweep
can point at the TOML key that set it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A validator's error that names the setting it is about (when its location cannot: a
    check across fields, or a key that is no setting at all)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Problem:
    """The first error of a ValidationError."""

    loc: str       # the field path pydantic reports ("" for a check across fields)
    field: str     # the setting to point at: `loc`, else the field the error names ("" if none)
    message: str   # one line, without pydantic's "Value error, " prefix

    def line(self) -> str:
        """`field: message`, or the message alone when it is a check that names its options itself."""
        return f"{self.loc}: {self.message}" if self.loc else self.message


def first_problem(error: Any) -> Problem:
    """The first error of a pydantic ValidationError (anything else: its text, no location)."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return Problem("", "", " ".join(str(error).split()))
    first = errors()[0]
    loc = ".".join(map(str, first["loc"]))
    cause = (first.get("ctx") or {}).get("error")
    message = str(cause) if isinstance(cause, Exception) and str(cause) else str(first["msg"])
    field = loc or getattr(cause, "field", "") or ""
    return Problem(loc, field, " ".join(message.splitlines()))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`; did you mean X?` (or `X or Y`) for a mistyped name, "" when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""
