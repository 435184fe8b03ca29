"""What the parsing tests share: the schema, a shorthand for parse_entities, and a tripwire payload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf_prompt.parsing import ParseResult, parse_entities
from tf_prompt.types import Mention

LABELS = ["PER", "ORG", "LOC", "DATE"]
OYO = "Ọ̀yọ́"


def M(text: str, label: str) -> Mention:
    return Mention(text, label)


def parse(reply: str, **kw) -> ParseResult:
    return parse_entities(reply, kw.pop("labels", LABELS), **kw)


def tripwire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A file path and a Python expression that, if ever evaluated or executed, creates the file
    and sets `tf_prompt_evaluated` in builtins: a payload that leaves a trace."""
    trace = tmp_path / "evaluated"
    monkeypatch.delattr("builtins.tf_prompt_evaluated", raising=False)
    expr = (f"[__import__('pathlib').Path({str(trace)!r}).write_text('x'), "
            f"setattr(__import__('builtins'), 'tf_prompt_evaluated', True)][0]")
    return trace, expr


def no_trace_left(trace: Path) -> None:
    import builtins

    assert not trace.exists() and not hasattr(builtins, "tf_prompt_evaluated"), "the reply was evaluated"
