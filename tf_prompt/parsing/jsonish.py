"""JSON-ish values: strict JSON, JSON with trailing commas, or plain Python literals.

Models write all three when asked for JSON. Python-looking text is read with :func:`ast.parse`
and a walker that only accepts literal nodes, so model output is never executed.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from tf_prompt.parsing.scan import fenced_blocks, safe_ast, scan_segments

FAIL = object()
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class _NotLiteral(Exception):
    """Raised inside the AST walk when a node is anything but plain data."""


def _literal(node: ast.AST, depth: int = 0) -> Any:
    """Rebuild plain data from literal AST nodes only; calls, names, operators are refused."""
    if depth > 60:
        raise _NotLiteral
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (str, int, float, bool)) or node.value is None:
            return node.value
        raise _NotLiteral
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(el, depth + 1) for el in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise _NotLiteral
            k = _literal(key, depth + 1)
            if isinstance(k, (list, dict)):
                raise _NotLiteral
            out[k] = _literal(value, depth + 1)
        return out
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise _NotLiteral


def _drop_trailing_commas(text: str) -> str:
    """Remove commas right before a closing bracket, outside double-quoted strings."""
    out: list[str] = []
    in_str = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < len(text) and text[j].isspace():
                j += 1
            if j >= len(text) or text[j] not in "]}":
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def load_jsonish(text: str) -> Any:
    """JSON, then JSON minus trailing commas, then a Python literal (single quotes, True/None).

    Returns FAIL rather than raising so callers can simply try the next candidate.
    """
    text = text.strip()
    if not text or text[0] not in "{[":
        return FAIL
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:  # the comma repair is only paid for when plain JSON failed
        return json.loads(_drop_trailing_commas(text))
    except (ValueError, RecursionError):
        pass
    tree = safe_ast(text, "eval")
    if not isinstance(tree, ast.Expression):
        return FAIL
    try:
        return _literal(tree.body)
    except (_NotLiteral, RecursionError):
        return FAIL


def parse_json_value(reply: str) -> Any:
    """The first JSON object or list in a reply (whole text, then fences, then embedded in prose),
    tolerant of trailing commas and Python-style literals; None when there is none.

    Used for structured replies that are not entity lists: the one-call TransFusion answer
    (`{"translation": ..., "english_entities": [...], "entities": [...]}`) and numbered answers of
    several sentences in one prompt.
    """
    if not isinstance(reply, str):
        return None
    text = reply.strip()
    for candidate in (text, *fenced_blocks(text)):
        loaded = load_jsonish(candidate)
        if loaded is not FAIL:
            return loaded
    segments, _ = scan_segments(text)
    best = None
    for segment in segments:
        loaded = load_jsonish(segment)
        if loaded is not FAIL and (best is None or len(segment) > best[0]):
            best = (len(segment), loaded)   # the largest embedded value is the answer, not an example
    return best[1] if best else None
