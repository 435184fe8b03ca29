"""Low-level scanning of reply text: balanced brackets, markdown fences and a safe ast.parse.

Every reader cuts candidate pieces out of a reply with these helpers before deciding what they
mean; nothing here interprets entities.
"""

from __future__ import annotations

import ast
import re
import warnings

_OPEN_TO_CLOSE = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = set(_OPEN_TO_CLOSE.values())


def close_index(text: str, start: int) -> tuple[str, int]:
    """Find the bracket closing text[start], skipping quoted strings.

    Returns ("ok", index past the closer), ("mismatch", index of the bad closer)
    or ("truncated", len(text)). A raw newline ends a quoted string: neither JSON
    nor Python allows one there, and it stops an apostrophe ("Ma'aruf") from
    swallowing the rest of the reply.
    """
    stack: list[str] = []
    quote = ""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote or ch == "\n":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in _OPEN_TO_CLOSE:
            stack.append(_OPEN_TO_CLOSE[ch])
        elif ch in _CLOSERS:
            if not stack or stack.pop() != ch:
                return "mismatch", i
            if not stack:
                return "ok", i + 1
        i += 1
    return "truncated", n


def scan_segments(text: str) -> tuple[list[str], str | None]:
    """Top-level balanced {...}/[...] segments in prose, plus the unclosed tail if the text was cut off."""
    segments: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            status, j = close_index(text, i)
            if status == "ok":
                segments.append(text[i:j])
                i = j
                continue
            if status == "truncated":
                return segments, text[i:]
            i = j  # mismatch: resume after the bad closer (keeps the scan linear)
        i += 1
    return segments, None


STARTS_LIKE_JSON = re.compile(r"^(?:\{|\[\s*(?:[\[{\]\"'“]|$))")
_JSONISH_TAIL = re.compile(r"^[\[{]\s*(?:[\[{\"'“]|$)")


def looks_truncated_json(text: str) -> bool:
    """True when the reply ends inside an open JSON-looking object/list (a cut-off answer)."""
    _, tail = scan_segments(text)
    return tail is not None and bool(_JSONISH_TAIL.match(tail))


_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
FENCE_LINE = re.compile(r"^[ \t]*```.*$", re.M)


def fenced_blocks(text: str) -> list[str]:
    """Bodies of markdown code fences (an unclosed final fence runs to the end)."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def safe_ast(source: str, mode: str) -> ast.AST | None:
    """ast.parse that never raises or warns (invalid escapes in model text emit SyntaxWarning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, OverflowError):
        return None
