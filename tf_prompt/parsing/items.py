"""Raw (text, type) items every reader produces, and the ParseResult they become.

Also the value helpers more than one reader needs: "nothing" markers ('None', 'N/A', '-'),
entity strings inside a decoded value, and case-insensitive keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tf_prompt.parsing.labels import LabelResolver
from tf_prompt.types import Mention


@dataclass
class ParseResult:
    """What a reply said, plus which reader understood it (kept in the trace for debugging prompts)."""

    mentions: list[Mention]
    unknown: list[Mention]
    format: str


# Raw item: (entity text, type name as the model wrote it). Types are resolved in build_result.
Item = tuple[str, str]

TEXT_KEYS = ("text", "entity", "span", "name", "mention", "value", "word", "entity_text", "entity_name", "surface")

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


def is_none_marker(value: str) -> bool:
    """'None', 'N/A', '-', '[]' ... used by models to say 'nothing of this type'."""
    return value.strip().strip(" .!\"'`“”()[]{}").strip().lower() in _NONE_MARKERS


def entity_texts(value: Any, depth: int = 0) -> list[str]:
    """Entity strings inside a JSON value: strings, numbers (str()), lists of them, item dicts."""
    if depth > 20 or value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, (bool, int, float)):
        return [str(value)]
    if isinstance(value, list):
        return [t for el in value for t in entity_texts(el, depth + 1)]
    if isinstance(value, dict):
        low = lower_keys(value)
        for key in TEXT_KEYS:
            if key in low:
                return entity_texts(low[key], depth + 1)
    return []


def lower_keys(d: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).strip().lower(): v for k, v in d.items()}


def build_result(items: list[Item], fmt: str, resolve: LabelResolver) -> ParseResult:
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
