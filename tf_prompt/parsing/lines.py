"""Line answers: 'PER: a, b', '- Kano (LOC)', 'Kano -> LOC', 'Kano | LOC', markdown tables, 'PER:' sections."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tf_prompt.parsing.items import Item, entity_texts, is_none_marker
from tf_prompt.parsing.jsonish import load_jsonish
from tf_prompt.parsing.labels import LabelResolver

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
    if is_none_marker(raw):
        return None
    if raw.startswith("["):
        loaded = load_jsonish(raw.rstrip(",;."))
        if isinstance(loaded, list):
            found = [t for t in entity_texts(loaded) if not is_none_marker(t)]
            return found or None
    parts: list[str] = []
    for part in re.split(r"[,;](?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", raw):
        part = _strip_quotes(_drop_final_period(part.strip()))
        if not part or is_none_marker(part):
            continue
        if parts and re.fullmatch(r"\d{1,4}", part) and re.search(r"[^\W\d_].*\d$", parts[-1]):
            parts[-1] = f"{parts[-1]}, {part}"
        else:
            parts.append(part)
    return parts or None


@dataclass
class _Line:
    """How one reply line was understood."""

    items: list[Item]
    known: bool = False  # names a schema type (so the reply is clearly a lines answer)
    header: str | None = None  # "PER:" on its own starts a section


def _parse_line(body: str, resolve: LabelResolver) -> _Line | None:
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
        elif (fallback is None and len(parts) == 2 and _LABELISH.match(parts[1])
              and parts[1].lower() not in {"type", "label", "tag", "category", "class"}):
            fallback = _Line([(_strip_quotes(parts[0]), parts[1])])
    return fallback


def read_lines(text: str, resolve: LabelResolver) -> list[Item] | None:
    """'PER: a, b' / '- Kano (LOC)' / 'Kano -> LOC' / 'Kano | LOC' / '* Kano [LOC]' and 'PER:' sections.

    Succeeds if some line names a schema type, or if every line was entity-shaped
    (then unknown types still reach the trace); prose otherwise falls through.
    """
    items: list[Item] = []
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
            if not is_none_marker(body):
                items.append((_strip_quotes(_drop_final_period(body)), section))
            continue
        all_shaped = False
    if known or (items and all_shaped):
        return items
    return None
