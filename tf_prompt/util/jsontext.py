"""JSON text that every output file can hold: always encodable as UTF-8, one line per record.

The run's JSON files are written with `ensure_ascii=False` so that the text of low-resource
languages stays readable. Two kinds of character then pass through `json.dumps` unescaped:

- a lone surrogate (U+D800-U+DFFF), half of a UTF-16 pair. A model reply can hold one (the JSON
  escape "\\ud83d" is half an emoji; an SDK can return one raw), and no UTF-8 writer can encode
  it: writing the trace raised UnicodeEncodeError, and as the reply is cached, on every rerun;
- the line separators U+0085, U+2028 and U+2029, which `str.splitlines()` and many JSON-lines
  readers split a line on (data tokens may hold them).

Outside its strings, `json.dumps` output is ASCII, so these characters only ever occur inside a
JSON string, where the escape `\\uXXXX` stands for the same character: `json.loads` reads back
exactly the value that was written. Standard library only, so every layer may use it.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps", "encodable"]

_UNSAFE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, **kwargs)`, with the characters above escaped."""
    return _UNSAFE.sub(_escape, json.dumps(value, ensure_ascii=False, **kwargs))


def encodable(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD, as a decoder shows an undecodable byte, for text
    that is not JSON (a prompt, a page, a table). Other text is returned as it is (the same object),
    so prompts and cache keys of ordinary text never change."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
