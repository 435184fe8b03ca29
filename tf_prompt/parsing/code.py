"""GoLLIE-style code answers: ``result = [Person(span="...")]`` assignments.

Each assignment is cut out by bracket matching and parsed with :func:`ast.parse`; the calls are
only inspected, never run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence

from tf_prompt.parsing.items import Item, build_result
from tf_prompt.parsing.labels import LabelResolver
from tf_prompt.parsing.scan import FENCE_LINE, close_index, safe_ast
from tf_prompt.types import Mention

_ASSIGN = re.compile(r"^[ \t]*([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=[ \t]*(?=[\[(])", re.M)
_CODE_TEXT_KEYWORDS = ("span", "text", "name", "mention", "value", "entity")


def _call_item(call: ast.Call) -> Item | None:
    """Person(span="Kano") -> ("Kano", "Person"); the call is only inspected, never run."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name is None:
        return None
    value: ast.AST | None = None
    keywords = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    for key in _CODE_TEXT_KEYWORDS:
        if key in keywords:
            value = keywords[key]
            break
    if value is None and call.args:
        value = call.args[0]
    if (isinstance(value, ast.Constant) and isinstance(value.value, (str, int, float))
            and not isinstance(value.value, bool)):
        text = str(value.value).strip()
        return (text, name) if text else None
    return None


def _calls_in(node: ast.AST) -> list[Item] | None:
    """Items of a list of Type(span=...) calls; None if the list holds anything but calls."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        return None
    items: list[Item] = []
    for el in node.elts:
        if not isinstance(el, ast.Call):
            return None
        got = _call_item(el)
        if got is not None:
            items.append(got)
    return items


def _code_items(reply: str) -> dict[str, list[Item]]:
    """Every `name = [Type(span=...), ...]` in the reply, by variable name (later assignment wins).

    Each assignment is cut out by bracket matching and parsed on its own, so prose,
    fences and a truncated second list do not spoil the first.
    """
    text = FENCE_LINE.sub("", reply)
    found: dict[str, list[Item]] = {}
    for match in _ASSIGN.finditer(text):
        status, end = close_index(text, match.end())
        if status != "ok":
            continue
        tree = safe_ast(text[match.start(1) : end], "exec")
        if not isinstance(tree, ast.Module) or len(tree.body) != 1:
            continue
        stmt = tree.body[0]
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        if value is None:
            continue
        items = _calls_in(value)
        if items is not None:
            found[match.group(1)] = items
    return found


def read_code(text: str) -> list[Item] | None:
    """GoLLIE answer: final_result if present (source-language answer), else result, else the last call list."""
    found = _code_items(text)
    for name in ("final_result", "result"):
        if name in found:
            return found[name]
    with_calls = [items for items in found.values() if items]
    if with_calls:
        return with_calls[-1]
    body = FENCE_LINE.sub("", text).strip()
    if body.startswith("["):
        tree = safe_ast(body, "eval")
        if isinstance(tree, ast.Expression):
            items = _calls_in(tree.body)
            if items:
                return items
    return None


def parse_code_assignments(
    reply: str, labels: Sequence[str], aliases: Mapping[str, str] | None = None
) -> dict[str, list[Mention]]:
    """Each `name = [Type(span=...)]` list in a code-style reply, keyed by variable name.

    GoLLIE-TF replies hold both `result` (English) and `final_result` (source
    language); the fusion step wants both. Unknown types are dropped here. Never raises.
    """
    if not isinstance(reply, str):
        return {}
    resolve = LabelResolver(labels, aliases)
    return {name: build_result(items, "code", resolve).mentions for name, items in _code_items(reply).items()}
