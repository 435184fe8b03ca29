"""Turn a model's free-form NER reply into entity mentions.

Even when asked for one exact JSON shape, models answer with JSON wrapped in
markdown fences or prose, Python-style literals, label->list mappings, plain
"PER: Shehu Gusau" lines, or GoLLIE-style code (``result = [Person(span=...)]``).
This module reads all of those without ever executing model output: JSON is
read with :mod:`json`, Python-looking text with :func:`ast.parse` and a walker
that only accepts literal nodes (and, for code style, ``Name(span="...")``
calls it never calls).

Every public entry point either returns a result or raises :class:`ParseFailure`
so the pipeline can count an unreadable reply instead of crashing a run.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence
from tf_prompt.types import Mention, ParseFailure

__all__ = [
    "Mention",
    "ParseFailure",
    "ParseResult",
    "normalize_label",
    "parse_entities",
    "parse_code_assignments",
    "parse_translation",
    "parse_json_value",
]


@dataclass
class ParseResult:
    """What a reply said, plus which reader understood it (kept in the trace for debugging prompts)."""

    mentions: list[Mention]
    unknown: list[Mention]
    format: str


# --------------------------------------------------------------------------- labels

# Keys are in `_label_key` form (upper case, spaces/hyphens -> "_").
_BUILTIN_ALIASES: dict[str, str] = {
    "PERSON": "PER",
    "PEOPLE": "PER",
    "PERS": "PER",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "ORGANIZATIONS": "ORG",
    "LOCATION": "LOC",
    "PLACE": "LOC",
    "GPE": "LOC",
    "LOCATIONS": "LOC",
    "TIME": "DATE",
    "DATE_TIME": "DATE",
}

# Decoration models put around a type name: quotes, brackets, markdown emphasis, punctuation.
_LABEL_STRIP = "\"'`“”‘’«»„[]()<>{}*_ \t\r\n:.,;"


def _label_key(raw: str) -> str:
    """Comparable form of a type name, so 'date time', 'Date-Time' and 'DATE_TIME' meet."""
    return re.sub(r"[\s\-]+", "_", raw.strip(_LABEL_STRIP)).upper()


def _singulars(key: str) -> Iterator[str]:
    """Plural-stripped guesses ('ORGS' -> 'ORG', 'DATES' -> 'DATE'); short keys are left alone."""
    if len(key) <= 3:
        return
    if key.endswith("IES"):
        yield key[:-3] + "Y"
    if key.endswith("S"):
        yield key[:-1]
    if key.endswith("ES"):
        yield key[:-2]


def _label_candidates(raw: str) -> list[str]:
    """Keys to try for one raw type name, most literal first."""
    cleaned = raw.strip(_LABEL_STRIP)
    bases = [_label_key(cleaned), _label_key(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cleaned))]
    out: list[str] = []
    for base in bases:
        forms = [base]
        prefixed = re.match(r"^[BI]_(.+)$", base)
        if prefixed:
            forms.append(prefixed.group(1))
        for form in forms:
            for cand in (form, *_singulars(form)):
                if cand and cand not in out:
                    out.append(cand)
    return out


def _resolver(labels: Sequence[str], aliases: Mapping[str, str] | None) -> "_LabelResolver":
    """A resolver shared by every reply of a run (its tables and answers are the same)."""
    try:
        key = (tuple(labels), tuple(sorted((aliases or {}).items())))
        return _resolver_cached(key)
    except TypeError:  # unhashable or unsortable input: build one for this reply
        return _LabelResolver(labels, aliases)


@functools.lru_cache(maxsize=64)
def _resolver_cached(key: tuple[tuple[str, ...], tuple[tuple[str, str], ...]]) -> "_LabelResolver":
    return _LabelResolver(key[0], dict(key[1]))


class _LabelResolver:
    """normalize_label with the schema tables built once per reply, and answers cached."""

    def __init__(self, labels: Sequence[str], aliases: Mapping[str, str] | None) -> None:
        self._by_key: dict[str, str] = {}
        for label in labels:
            if isinstance(label, str) and _label_key(label):
                self._by_key.setdefault(_label_key(label), label)
        self._user: dict[str, str] = {}
        for src, dst in (aliases or {}).items():
            if isinstance(src, str) and isinstance(dst, str) and _label_key(src):
                self._user.setdefault(_label_key(src), dst)
        self._canonical: dict[str, str] = {}
        for key, label in self._by_key.items():
            self._canonical.setdefault(_BUILTIN_ALIASES.get(key, key), label)
        self._cache: dict[str, str | None] = {}

    def __call__(self, raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        if raw not in self._cache:
            self._cache[raw] = self._resolve(raw)
        return self._cache[raw]

    def _resolve(self, raw: str) -> str | None:
        cands = _label_candidates(raw)
        # User aliases win over everything, then the schema's own names, then built-ins.
        for cand in cands:
            target = self._user.get(cand)
            if target is not None and _label_key(target) in self._by_key:
                return self._by_key[_label_key(target)]
        for cand in cands:
            if cand in self._by_key:
                return self._by_key[cand]
        for cand in cands:
            hit = self._canonical.get(_BUILTIN_ALIASES.get(cand, cand))
            if hit is not None:
                return hit
        return None


def normalize_label(raw: str, labels: Sequence[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """Map a model's type name onto one of `labels` (returned as spelled there), or None.

    Models say 'Person', 'B-PER', '"ORGANISATION"' or 'locations' for the same
    schema type; scoring needs the schema's exact name. `aliases` come from a
    user schema and take precedence over the schema names and built-in aliases.
    """
    return _LabelResolver(labels, aliases)(raw)


# --------------------------------------------------------------------------- low-level scanning

_OPEN_TO_CLOSE = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = set(_OPEN_TO_CLOSE.values())


def _close_index(text: str, start: int) -> tuple[str, int]:
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


def _scan_segments(text: str) -> tuple[list[str], str | None]:
    """Top-level balanced {...}/[...] segments in prose, plus the unclosed tail if the text was cut off."""
    segments: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            status, j = _close_index(text, i)
            if status == "ok":
                segments.append(text[i:j])
                i = j
                continue
            if status == "truncated":
                return segments, text[i:]
            i = j  # mismatch: resume after the bad closer (keeps the scan linear)
        i += 1
    return segments, None


_STARTS_LIKE_JSON = re.compile(r"^(?:\{|\[\s*(?:[\[{\]\"'“]|$))")
_JSONISH_TAIL = re.compile(r"^[\[{]\s*(?:[\[{\"'“]|$)")


def _looks_truncated_json(text: str) -> bool:
    """True when the reply ends inside an open JSON-looking object/list (a cut-off answer)."""
    _, tail = _scan_segments(text)
    return tail is not None and bool(_JSONISH_TAIL.match(tail))


_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_FENCE_LINE = re.compile(r"^[ \t]*```.*$", re.M)


def _fenced_blocks(text: str) -> list[str]:
    """Bodies of markdown code fences (an unclosed final fence runs to the end)."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def _safe_ast(source: str, mode: str) -> ast.AST | None:
    """ast.parse that never raises or warns (invalid escapes in model text emit SyntaxWarning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, OverflowError):
        return None


# --------------------------------------------------------------------------- JSON-ish loading

_FAIL = object()
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
        for key, value in zip(node.keys, node.values):
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


def _load_jsonish(text: str) -> Any:
    """JSON, then JSON minus trailing commas, then a Python literal (single quotes, True/None).

    Returns _FAIL rather than raising so callers can simply try the next candidate.
    """
    text = text.strip()
    if not text or text[0] not in "{[":
        return _FAIL
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:  # the comma repair is only paid for when plain JSON failed
        return json.loads(_drop_trailing_commas(text))
    except (ValueError, RecursionError):
        pass
    tree = _safe_ast(text, "eval")
    if not isinstance(tree, ast.Expression):
        return _FAIL
    try:
        return _literal(tree.body)
    except (_NotLiteral, RecursionError):
        return _FAIL


# --------------------------------------------------------------------------- JSON shapes

# Raw item: (entity text, type name as the model wrote it). Types are resolved in _build.
_Item = tuple[str, str]

_TEXT_KEYS = ("text", "entity", "span", "name", "mention", "value", "word", "entity_text", "entity_name", "surface")
_TYPE_KEYS = ("type", "label", "entity_type", "category", "tag", "class", "entity_label", "ner_type", "ner_tag")
# final_result first: in TransFusion-style answers it is the source-language list.
_LIST_KEYS = (
    "final_result",
    "entities",
    "named_entities",
    "result",
    "results",
    "ner",
    "output",
    "answer",
    "entity_list",
    "mentions",
    "predictions",
    "annotations",
    "response",
)

_NONE_MARKERS = {
    "",
    "none",
    "n/a",
    "na",
    "nil",
    "null",
    "nothing",
    "-",
    "--",
    "—",
    "–",
    "empty",
    "no",
    "no entities",
    "no entity",
    "no entities found",
    "no entity found",
    "none found",
    "not found",
    "not applicable",
    "not mentioned",
    "not available",
    "no mentions",
}


def _is_none_marker(value: str) -> bool:
    """'None', 'N/A', '-', '[]' ... used by models to say 'nothing of this type'."""
    return value.strip().strip(" .!\"'`“”()[]{}").strip().lower() in _NONE_MARKERS


def _texts(value: Any, depth: int = 0) -> list[str]:
    """Entity strings inside a JSON value: strings, numbers (str()), lists of them, item dicts."""
    if depth > 20 or value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, (bool, int, float)):
        return [str(value)]
    if isinstance(value, list):
        return [t for el in value for t in _texts(el, depth + 1)]
    if isinstance(value, dict):
        low = _lower_keys(value)
        for key in _TEXT_KEYS:
            if key in low:
                return _texts(low[key], depth + 1)
    return []


def _lower_keys(d: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).strip().lower(): v for k, v in d.items()}


def _label_text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _item_from_dict(d: dict[Any, Any]) -> list[_Item] | None:
    """{"text": ..., "type": ...} under any of the key spellings models use; None if not item-shaped."""
    low = _lower_keys(d)
    text_keys = [k for k in _TEXT_KEYS if k in low]
    type_key = next((k for k in _TYPE_KEYS if k in low), None)
    if type_key is None and "entity" in text_keys and len(text_keys) > 1:
        # {"text": "Kano", "entity": "LOC"}: "entity" names the type here.
        type_key = "entity"
        text_keys.remove("entity")
    if not text_keys:
        return None
    label = _label_text(low.get(type_key)) if type_key else ""
    return [(t, label) for t in _texts(low[text_keys[0]])]


def _mapping_items(d: dict[Any, Any], resolve: _LabelResolver) -> list[_Item] | None:
    """{"PER": ["Shehu Gusau"], "LOC": "Kano", "ORG": []}; None if the dict is not label-keyed."""
    if not all(isinstance(v, (str, list, int, float)) or v is None for v in d.values()):
        return None
    keyed_by_label = any(resolve(str(k)) for k in d)
    if not keyed_by_label and not all(isinstance(v, list) for v in d.values()):
        return None
    items: list[_Item] = []
    for key, value in d.items():
        for text in _texts(value):
            if not _is_none_marker(text):
                items.append((text, str(key).strip()))
    return items


def _interpret(value: Any, resolve: _LabelResolver, depth: int = 0) -> tuple[list[_Item], str] | None:
    """Entity items and format name for a decoded JSON value, or None if it is not an entity answer."""
    if depth > 8:
        return None
    if isinstance(value, dict):
        return _interpret_dict(value, resolve, depth)
    if isinstance(value, list):
        items = _list_items(value, resolve, depth)
        return None if items is None else (items, "json-list")
    return None


def _interpret_dict(d: dict[Any, Any], resolve: _LabelResolver, depth: int) -> tuple[list[_Item], str] | None:
    if depth > 8:
        return None
    low = _lower_keys(d)
    for key in _LIST_KEYS:
        if key not in low:
            continue
        inner = low[key]
        if inner is None or (isinstance(inner, str) and _is_none_marker(inner)):
            return [], "json-object"
        if isinstance(inner, list):
            items = _list_items(inner, resolve, depth + 1)
            if items is not None:
                return items, "json-object"
        elif isinstance(inner, dict):
            got = _interpret_dict(inner, resolve, depth + 1)
            if got is not None:
                return got[0], ("json-mapping" if got[1] == "json-mapping" else "json-object")
        elif isinstance(inner, str):
            got_lines = _read_lines(inner, resolve)
            if got_lines is not None:
                return got_lines, "json-object"
    single = _item_from_dict(d)
    if single is not None:
        return single, "json-object"
    mapped = _mapping_items(d, resolve)
    if mapped is not None:
        return mapped, "json-mapping"
    return None


def _list_items(values: list[Any], resolve: _LabelResolver, depth: int) -> list[_Item] | None:
    """Items from a list of item dicts, [text, type] pairs or 'Kano (LOC)' strings.

    Elements that are not entity-shaped are skipped, but a non-empty list where
    none is entity-shaped is rejected (e.g. [1, 2] or a bare list of names with no types).
    """
    if not values:
        return []
    items: list[_Item] = []
    understood = False
    for el in values:
        got: list[_Item] | None = None
        if isinstance(el, dict):
            inner = _interpret_dict(el, resolve, depth + 1)
            got = None if inner is None else inner[0]
        elif isinstance(el, list) and len(el) >= 2 and isinstance(el[1], str) and not isinstance(el[0], (list, dict)):
            text, label = el[0], el[1]
            if resolve(label) is None and isinstance(text, str) and resolve(text) is not None:
                text, label = label, text  # ["PER", "Shehu Gusau"]
            got = [(t, label.strip()) for t in _texts(text)]
        elif isinstance(el, str):
            got = _read_lines(el, resolve)
        if got is not None:
            understood = True
            items.extend(got)
    return items if understood else None


# --------------------------------------------------------------------------- line formats

_BULLET = re.compile(r"^\s*(?:[-*•+·]|\d{1,3}[.)]|\(\d{1,3}\))\s+")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}")
_SEPARATOR = re.compile(r"\s*(?:->|→|=>|⇒|\|)\s*|\t+|\s+[-–—]\s+")
_TAGGED = re.compile(r"(.+?)\s*[(\[]([^()\[\]]+)[)\]]\s*[.,;]?")
_LEADING_TAG = re.compile(r"[(\[]([^()\[\]]+)[)\]]\s*(.+)")
_LABELISH = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,23}$")
# Colon keys that introduce prose or a whole answer rather than naming an entity type.
_NOT_TYPE_KEYS = {
    "note",
    "notes",
    "answer",
    "output",
    "result",
    "results",
    "entities",
    "entity",
    "explanation",
    "sentence",
    "translation",
    "text",
    "input",
    "response",
    "here",
    "reasoning",
}


def _strip_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in "\"'“‘`" and text[-1] in "\"'”’`":
        text = text[1:-1].strip()
    return text


def _drop_final_period(text: str) -> str:
    """'Kano.' -> 'Kano' (sentence punctuation on a list line), but keep 'Ltd.', 'U.S.', 'Jr.'."""
    if text.endswith(".") and "." not in text[:-1]:
        last = text[:-1].split()[-1] if text[:-1].split() else ""
        if len(last) >= 4:
            return text[:-1].rstrip()
    return text


def _split_values(raw: str) -> list[str] | None:
    """'Shehu Gusau, Aliyu' -> names; None for an explicit 'nothing' ('None', 'N/A', '-', '[]').

    Splits on commas/semicolons outside double quotes, but re-joins 'June 5, 2020'.
    """
    raw = raw.strip()
    if _is_none_marker(raw):
        return None
    if raw.startswith("["):
        loaded = _load_jsonish(raw.rstrip(",;."))
        if isinstance(loaded, list):
            found = [t for t in _texts(loaded) if not _is_none_marker(t)]
            return found or None
    parts: list[str] = []
    for part in re.split(r"[,;](?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", raw):
        part = _strip_quotes(_drop_final_period(part.strip()))
        if not part or _is_none_marker(part):
            continue
        if parts and re.fullmatch(r"\d{1,4}", part) and re.search(r"[^\W\d_].*\d$", parts[-1]):
            parts[-1] = f"{parts[-1]}, {part}"
        else:
            parts.append(part)
    return parts or None


@dataclass
class _Line:
    """How one reply line was understood."""

    items: list[_Item]
    known: bool = False  # names a schema type (so the reply is clearly a lines answer)
    header: str | None = None  # "PER:" on its own starts a section


def _parse_line(body: str, resolve: _LabelResolver) -> _Line | None:
    """Try each line shape; prefer a reading whose type is in the schema over an unknown one."""
    fallback: _Line | None = None

    head = re.fullmatch(r"(.+?)\s*:", body)
    if head and resolve(head.group(1)):
        return _Line([], known=True, header=head.group(1))

    if ":" in body:
        left, right = body.split(":", 1)
        if resolve(left):
            values = _split_values(right)
            return _Line([(v, left.strip()) for v in values or []], known=True)
        if right.strip() and resolve(right) and left.strip():
            return _Line([(_strip_quotes(left), right.strip())], known=True)
        key = left.strip().strip("*_ ")
        if _LABELISH.match(key) and key.lower() not in _NOT_TYPE_KEYS:
            fallback = _Line([(v, key) for v in _split_values(right) or []])

    lead = _LEADING_TAG.fullmatch(body)
    if lead and resolve(lead.group(1)):
        return _Line([(_strip_quotes(lead.group(2)), lead.group(1).strip())], known=True)

    pieces = re.split(r"(?<=[)\]])\s*[,;]\s*", body)
    tagged = [_TAGGED.fullmatch(p) for p in pieces]
    if all(tagged):
        pairs = [(_strip_quotes(m.group(1)), m.group(2).strip()) for m in tagged if m]
        if any(resolve(label) for _, label in pairs):
            return _Line(pairs, known=True)
        if fallback is None and all(_LABELISH.match(label) for _, label in pairs):
            fallback = _Line(pairs)

    parts = [p.strip() for p in _SEPARATOR.split(body) if p and p.strip()]
    if len(parts) >= 2:
        label_at = [i for i, p in enumerate(parts) if resolve(p)]
        if label_at:
            idx = label_at[-1]
            texts = [p for i, p in enumerate(parts) if i != idx and not p.isdigit()]
            if texts:
                return _Line([(_strip_quotes(texts[0]), parts[idx])], known=True)
        elif fallback is None and len(parts) == 2 and _LABELISH.match(parts[1]):
            if parts[1].lower() not in {"type", "label", "tag", "category", "class"}:
                fallback = _Line([(_strip_quotes(parts[0]), parts[1])])
    return fallback


def _read_lines(text: str, resolve: _LabelResolver) -> list[_Item] | None:
    """'PER: a, b' / '- Kano (LOC)' / 'Kano -> LOC' / 'Kano | LOC' / '* Kano [LOC]' and 'PER:' sections.

    Succeeds if some line names a schema type, or if every line was entity-shaped
    (then unknown types still reach the trace); prose otherwise falls through.
    """
    items: list[_Item] = []
    known = False
    all_shaped = True
    section: str | None = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("```") or _TABLE_RULE.match(line):
            continue
        bullet = bool(_BULLET.match(line))
        body = _BULLET.sub("", line, count=1).replace("**", "").replace("__", "").strip()
        heading = body.startswith("#")
        body = body.lstrip("#").strip()
        if len(body) > 1 and body.startswith("|") and body.endswith("|"):
            body = body[1:-1].strip()
        if not body:
            continue
        if heading and resolve(body):
            section, known = body, True
            continue
        parsed = _parse_line(body, resolve)
        if parsed is not None:
            if parsed.header is not None:
                section = parsed.header
            known = known or parsed.known
            items.extend(parsed.items)
            continue
        short_name = len(body.split()) <= 6 and not re.search(r"[.!?:]$", body)
        if section is not None and (bullet or short_name):
            if not _is_none_marker(body):
                items.append((_strip_quotes(_drop_final_period(body)), section))
            continue
        all_shaped = False
    if known or (items and all_shaped):
        return items
    return None


# --------------------------------------------------------------------------- code style

_ASSIGN = re.compile(r"^[ \t]*([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=[ \t]*(?=[\[(])", re.M)
_CODE_TEXT_KEYWORDS = ("span", "text", "name", "mention", "value", "entity")


def _call_item(call: ast.Call) -> _Item | None:
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
    if isinstance(value, ast.Constant) and isinstance(value.value, (str, int, float)) and not isinstance(value.value, bool):
        text = str(value.value).strip()
        return (text, name) if text else None
    return None


def _calls_in(node: ast.AST) -> list[_Item] | None:
    """Items of a list of Type(span=...) calls; None if the list holds anything but calls."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        return None
    items: list[_Item] = []
    for el in node.elts:
        if not isinstance(el, ast.Call):
            return None
        got = _call_item(el)
        if got is not None:
            items.append(got)
    return items


def _code_items(reply: str) -> dict[str, list[_Item]]:
    """Every `name = [Type(span=...), ...]` in the reply, by variable name (later assignment wins).

    Each assignment is cut out by bracket matching and parsed on its own, so prose,
    fences and a truncated second list do not spoil the first.
    """
    text = _FENCE_LINE.sub("", reply)
    found: dict[str, list[_Item]] = {}
    for match in _ASSIGN.finditer(text):
        status, end = _close_index(text, match.end())
        if status != "ok":
            continue
        tree = _safe_ast(text[match.start(1) : end], "exec")
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


def _read_code(text: str) -> list[_Item] | None:
    """GoLLIE answer: final_result if present (source-language answer), else result, else the last call list."""
    found = _code_items(text)
    for name in ("final_result", "result"):
        if name in found:
            return found[name]
    with_calls = [items for items in found.values() if items]
    if with_calls:
        return with_calls[-1]
    body = _FENCE_LINE.sub("", text).strip()
    if body.startswith("["):
        tree = _safe_ast(body, "eval")
        if isinstance(tree, ast.Expression):
            items = _calls_in(tree.body)
            if items:
                return items
    return None


# --------------------------------------------------------------------------- entry points

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
    body = _FENCE_LINE.sub("", text).strip()
    if _is_none_marker(body):
        return True
    if ":" in body and "\n" not in body.strip() and _is_none_marker(body.rsplit(":", 1)[1]):
        return True
    return bool(_NO_ENTITIES.search(body))


def _build(items: list[_Item], fmt: str, resolve: _LabelResolver) -> ParseResult:
    mentions: list[Mention] = []
    unknown: list[Mention] = []
    for text, raw_label in items:
        text = text.strip()
        if not text:
            continue
        label = resolve(raw_label)
        if label is None:
            unknown.append(Mention(text, raw_label.strip()))
        else:
            mentions.append(Mention(text, label))
    if not mentions and not unknown:
        fmt = "empty"
    return ParseResult(mentions=mentions, unknown=unknown, format=fmt)


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
    example answer the prompt shows: see `_echoed`.
    """
    if not isinstance(reply, str):
        raise ParseFailure(f"reply is {type(reply).__name__}, not text")
    resolve = _resolver(labels, aliases)
    items, fmt = _read_entities(reply.strip(), resolve)
    if items and prompt:
        shown = _echoed(items, prompt, source, resolve)
        if shown is not None:
            raise ParseFailure(f"the reply only repeats an example answer shown in the prompt: {shown[:60]!r}")
    return _build(items, fmt, resolve)


def _read_entities(text: str, resolve: _LabelResolver) -> tuple[list[_Item], str]:
    """(items, format name) of a stripped reply; see parse_entities."""
    if not text:
        return [], "empty"

    for candidate in (text, *_fenced_blocks(text)):
        loaded = _load_jsonish(candidate)
        if loaded is not _FAIL:
            got = _interpret(loaded, resolve)
            if got is not None:
                return got

    code = _read_code(text)
    if code is not None:
        return code, "code"

    # Embedded JSON: prefer a non-empty answer; "PER: []" lines must not stop at the "[]".
    saw_empty_json = False
    segments, _ = _scan_segments(text)
    for segment in segments:
        loaded = _load_jsonish(segment)
        got = None if loaded is _FAIL else _interpret(loaded, resolve)
        if got is not None:
            if got[0]:
                return got
            saw_empty_json = True

    if _looks_truncated_json(text):
        raise ParseFailure("reply ends inside unfinished JSON (truncated?)")
    if not _STARTS_LIKE_JSON.match(_FENCE_LINE.sub("", text).strip()):
        lines = _read_lines(text, resolve)
        if lines is not None:
            return lines, "lines"
    if saw_empty_json or _says_no_entities(text):
        return [], "empty"
    preview = " ".join(text.split())[:60]
    raise ParseFailure(f"no entity list found in reply: {preview!r}")


# --------------------------------------------------------------------------- echoed examples

def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _answer_key(items: Sequence[_Item]) -> tuple[tuple[str, str], ...]:
    """Items compared as a model's copy of them reads: order, case and spacing ignored."""
    return tuple(sorted((_fold(text), _fold(label)) for text, label in items))


def _shown_answers(prompt: Sequence[str], resolve: _LabelResolver) -> Iterator[tuple[str, list[_Item]]]:
    """(JSON text, items) of every non-empty entity answer written in the prompt: the format
    example ({"entities": [{"text": "...", "type": "..."}]}), worked and few-shot examples, and
    the per-item answers of a numbered example ({"1": {"entities": [...]}, ...})."""
    for text in prompt:
        for segment in _scan_segments(text)[0]:
            value = _load_jsonish(segment)
            if value is _FAIL:
                continue
            values = [value, *(v for v in value.values() if isinstance(v, dict))] if isinstance(value, dict) \
                else [value]
            for each in values:
                got = _interpret(each, resolve)
                if got is not None and got[0]:
                    yield segment, got[0]


def _echoed(items: Sequence[_Item], prompt: Sequence[str] | Callable[[], Sequence[str]], source: str | None,
            resolve: _LabelResolver) -> str | None:
    """The example a reply copies, if its items are exactly those of an answer the prompt shows
    and that answer cannot be this sentence's own (one of its entity strings is not in `source`,
    as "..." or a worked example's names are not). None for a reply that is not an echo.

    Derived from the prompt as rendered, so every template's examples count without listing
    their wording here, and a copied few-shot answer is caught the same way.
    """
    key = _answer_key(items)
    where = _fold(source) if source is not None else None
    if where is not None and all(text in where for text, _ in key):
        return None     # every string is in this sentence: possibly right, whatever it copies
    for shown, example in _shown_answers(prompt() if callable(prompt) else prompt, resolve):
        if _answer_key(example) == key:
            return " ".join(shown.split())
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
    resolve = _LabelResolver(labels, aliases)
    return {name: _build(items, "code", resolve).mentions for name, items in _code_items(reply).items()}


# --------------------------------------------------------------------------- translation

_TRANSLATION_KEYS = ("translation", "english_translation", "english", "translated_text", "translated_sentence", "text", "output")
_TRANSLATION_LABEL = re.compile(
    r"^\s*(?:(?:sure|certainly|okay|ok|of course)[,!.]?\s*)?"
    r"(?:here\s+is|here's)\s+the\s+(?:english\s+)?translation\b[^:\n]{0,40}:\s*"
    r"|^\s*(?:\*\*)?(?:the\s+)?(?:english\s+translation|english|translation|translated\s+(?:text|sentence)|answer|output)"
    r"(?:\s*\([^)\n]{0,30}\))?\s*(?:\*\*)?\s*[:：]\s*(?:\*\*(?=\s))?\s*",
    re.I,
)
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|okay|ok|of course|here\s+is|here's|here\s+are|below\s+is|the\s+(?:english\s+)?translation)\b",
    re.I,
)
_QUOTE_PAIRS = {'"': '"', "“": "”", "„": "“", "«": "»", "「": "」", "'": "'", "‘": "’"}


def _unquote(text: str) -> str:
    """Drop one pair of wrapping quotes, unless the quotes are really two separate quotations."""
    if len(text) < 2 or text[0] not in _QUOTE_PAIRS or text[-1] != _QUOTE_PAIRS[text[0]]:
        return text
    inner = text[1:-1]
    if text[0] in "'‘":
        # Apostrophes inside words are fine; a quote next to a space means nested quoting.
        if re.search(r"(?:^|\s)['‘’]|['‘’](?:\s|$)", inner):
            return text
    elif text[0] in inner or text[-1] in inner:
        return text
    return inner.strip()


def _translation_from_json(text: str) -> str | None:
    for candidate in (text, *_scan_segments(text)[0]):
        loaded = _load_jsonish(candidate)
        if isinstance(loaded, dict):
            low = {re.sub(r"[\s\-]+", "_", k): v for k, v in _lower_keys(loaded).items()}
            for key in _TRANSLATION_KEYS:
                if isinstance(low.get(key), str):
                    return low[key]
    return None


def parse_translation(reply: str) -> str:
    """The English sentence from a translate-step reply, without fences, labels, preambles or quotes.

    The translation is fed to the English NER prompt, so chatter around it would
    become spurious entity context. Raises ParseFailure when nothing is left.
    """
    if not isinstance(reply, str):
        raise ParseFailure(f"reply is {type(reply).__name__}, not text")
    text = reply.strip()
    blocks = [b for b in _fenced_blocks(text) if b.strip()]
    text = blocks[0].strip() if blocks else _FENCE_LINE.sub("", text).strip()

    from_json = _translation_from_json(text) if "{" in text else None
    if from_json is not None:
        text = from_json.strip()
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        while len(lines) > 1 and (_PREAMBLE.match(lines[0]) or lines[0].endswith(":")):
            lines.pop(0)
        while len(lines) > 1 and re.match(r"^\(?\s*(?:note|explanation)\b", lines[-1], re.I):
            lines.pop()
        text = " ".join(lines)

    for _ in range(4):
        before = text
        text = _TRANSLATION_LABEL.sub("", text, count=1).strip()
        if len(text) > 4 and text.startswith("**") and text.endswith("**"):
            text = text[2:-2].strip()
        text = _unquote(text)
        if text == before:
            break
    if not text:
        raise ParseFailure("translation reply is empty")
    return text


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
    for candidate in (text, *_fenced_blocks(text)):
        loaded = _load_jsonish(candidate)
        if loaded is not _FAIL:
            return loaded
    segments, _ = _scan_segments(text)
    best = None
    for segment in segments:
        loaded = _load_jsonish(segment)
        if loaded is not _FAIL and (best is None or len(segment) > best[0]):
            best = (len(segment), loaded)   # the largest embedded value is the answer, not an example
    return best[1] if best else None
