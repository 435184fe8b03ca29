"""parse_entities: read the entities out of a reply, whatever format the model chose.

Tries the readers in a fixed order (JSON, fenced JSON, code, JSON in prose, lines, an explicit
"no entities") and raises :class:`ParseFailure` for anything else, so the pipeline can count an
unreadable reply instead of crashing a run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from tf_prompt.parsing.code import read_code
from tf_prompt.parsing.echo import echoed
from tf_prompt.parsing.items import Item, ParseResult, build_result, is_none_marker
from tf_prompt.parsing.json_entities import interpret
from tf_prompt.parsing.jsonish import FAIL, load_jsonish
from tf_prompt.parsing.labels import LabelResolver, label_resolver
from tf_prompt.parsing.lines import read_lines
from tf_prompt.parsing.scan import FENCE_LINE, STARTS_LIKE_JSON, fenced_blocks, looks_truncated_json, scan_segments
from tf_prompt.types import ParseFailure

_NO_ENTITIES = re.compile(
    r"\b(?:no|zero|not\s+any|n't\s+any|without\s+any|none\s+of\s+the)\s+"
    r"(?:(?!other\b|more\b|additional\b|further\b)\w+\s+){0,3}?entit(?:y|ies)\b"
    r"|\bcontains?\s+no\b"
    r"|\b(?:does\s+not|doesn't|do\s+not|don't)\s+contain\s+any\b"
    r"|\bno\s+(?:named\s+)?entit",
    re.I,
)


def _says_no_entities(text: str) -> bool:
    """'None', 'No entities found.', 'Entities: N/A', 'There are no named entities ...'."""
    body = FENCE_LINE.sub("", text).strip()
    if is_none_marker(body):
        return True
    if ":" in body and "\n" not in body.strip() and is_none_marker(body.rsplit(":", 1)[1]):
        return True
    return bool(_NO_ENTITIES.search(body))


def parse_entities(reply: str, labels: Sequence[str], aliases: Mapping[str, str] | None = None, *,
                   prompt: Sequence[str] | Callable[[], Sequence[str]] = (),
                   source: str | None = None) -> ParseResult:
    """Read the entities out of a model reply, whatever shape the model chose.

    Readers, first success wins: whole-reply JSON, fenced JSON, GoLLIE code,
    JSON embedded in prose, line formats, then an explicit "no entities" answer.
    Code is tried before embedded JSON because `result = []` inside code would
    otherwise be read as an empty JSON list. Raises ParseFailure, never anything else.

    `prompt` (the texts of the messages that asked, or a function returning them, called only
    when needed) and `source` (the sentence they asked about) catch a reply that only repeats an
    example answer the prompt shows: see `echoed`.
    """
    if not isinstance(reply, str):
        raise ParseFailure(f"reply is {type(reply).__name__}, not text")
    resolve = label_resolver(labels, aliases)
    items, fmt = _read_entities(reply.strip(), resolve)
    if items and prompt:
        shown = echoed(items, prompt, source, resolve)
        if shown is not None:
            raise ParseFailure(f"the reply only repeats an example answer shown in the prompt: {shown[:60]!r}")
    return build_result(items, fmt, resolve)


def _read_entities(text: str, resolve: LabelResolver) -> tuple[list[Item], str]:
    """(items, format name) of a stripped reply; see parse_entities."""
    if not text:
        return [], "empty"

    for candidate in (text, *fenced_blocks(text)):
        loaded = load_jsonish(candidate)
        if loaded is not FAIL:
            got = interpret(loaded, resolve)
            if got is not None:
                return got

    code = read_code(text)
    if code is not None:
        return code, "code"

    # Embedded JSON: prefer a non-empty answer; "PER: []" lines must not stop at the "[]".
    saw_empty_json = False
    segments, _ = scan_segments(text)
    for segment in segments:
        loaded = load_jsonish(segment)
        got = None if loaded is FAIL else interpret(loaded, resolve)
        if got is not None:
            if got[0]:
                return got
            saw_empty_json = True

    if looks_truncated_json(text):
        raise ParseFailure("reply ends inside unfinished JSON (truncated?)")
    if not STARTS_LIKE_JSON.match(FENCE_LINE.sub("", text).strip()):
        lines = read_lines(text, resolve)
        if lines is not None:
            return lines, "lines"
    if saw_empty_json or _says_no_entities(text):
        return [], "empty"
    preview = " ".join(text.split())[:60]
    raise ParseFailure(f"no entity list found in reply: {preview!r}")
