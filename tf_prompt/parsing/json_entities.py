"""Entity answers as JSON values: item lists, {"entities": [...]} objects, label -> list mappings.

Works on decoded values (see :mod:`tf_prompt.parsing.jsonish`); a string element inside a list
is read as a line answer ("Kano (LOC)").
"""

from __future__ import annotations

from typing import Any

from tf_prompt.parsing.items import TEXT_KEYS, Item, entity_texts, is_none_marker, lower_keys
from tf_prompt.parsing.labels import LabelResolver
from tf_prompt.parsing.lines import read_lines

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


def _label_text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _item_from_dict(d: dict[Any, Any]) -> list[Item] | None:
    """{"text": ..., "type": ...} under any of the key spellings models use; None if not item-shaped."""
    low = lower_keys(d)
    text_keys = [k for k in TEXT_KEYS if k in low]
    type_key = next((k for k in _TYPE_KEYS if k in low), None)
    if type_key is None and "entity" in text_keys and len(text_keys) > 1:
        # {"text": "Kano", "entity": "LOC"}: "entity" names the type here.
        type_key = "entity"
        text_keys.remove("entity")
    if not text_keys:
        return None
    label = _label_text(low.get(type_key)) if type_key else ""
    return [(t, label) for t in entity_texts(low[text_keys[0]])]


def _mapping_items(d: dict[Any, Any], resolve: LabelResolver) -> list[Item] | None:
    """{"PER": ["Shehu Gusau"], "LOC": "Kano", "ORG": []}; None if the dict is not label-keyed."""
    if not all(isinstance(v, (str, list, int, float)) or v is None for v in d.values()):
        return None
    keyed_by_label = any(resolve(str(k)) for k in d)
    if not keyed_by_label and not all(isinstance(v, list) for v in d.values()):
        return None
    items: list[Item] = []
    for key, value in d.items():
        for text in entity_texts(value):
            if not is_none_marker(text):
                items.append((text, str(key).strip()))
    return items


def interpret(value: Any, resolve: LabelResolver, depth: int = 0) -> tuple[list[Item], str] | None:
    """Entity items and format name for a decoded JSON value, or None if it is not an entity answer."""
    if depth > 8:
        return None
    if isinstance(value, dict):
        return _interpret_dict(value, resolve, depth)
    if isinstance(value, list):
        items = _list_items(value, resolve, depth)
        return None if items is None else (items, "json-list")
    return None


def _interpret_dict(d: dict[Any, Any], resolve: LabelResolver, depth: int) -> tuple[list[Item], str] | None:
    if depth > 8:
        return None
    low = lower_keys(d)
    for key in _LIST_KEYS:
        if key not in low:
            continue
        inner = low[key]
        if inner is None or (isinstance(inner, str) and is_none_marker(inner)):
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
            got_lines = read_lines(inner, resolve)
            if got_lines is not None:
                return got_lines, "json-object"
    single = _item_from_dict(d)
    if single is not None:
        return single, "json-object"
    mapped = _mapping_items(d, resolve)
    if mapped is not None:
        return mapped, "json-mapping"
    return None


def _list_items(values: list[Any], resolve: LabelResolver, depth: int) -> list[Item] | None:
    """Items from a list of item dicts, [text, type] pairs or 'Kano (LOC)' strings.

    Elements that are not entity-shaped are skipped, but a non-empty list where
    none is entity-shaped is rejected (e.g. [1, 2] or a bare list of names with no types).
    """
    if not values:
        return []
    items: list[Item] = []
    understood = False
    for el in values:
        got: list[Item] | None = None
        if isinstance(el, dict):
            inner = _interpret_dict(el, resolve, depth + 1)
            got = None if inner is None else inner[0]
        elif isinstance(el, list) and len(el) >= 2 and isinstance(el[1], str) and not isinstance(el[0], (list, dict)):
            text, label = el[0], el[1]
            if resolve(label) is None and isinstance(text, str) and resolve(text) is not None:
                text, label = label, text  # ["PER", "Shehu Gusau"]
            got = [(t, label.strip()) for t in entity_texts(text)]
        elif isinstance(el, str):
            got = read_lines(el, resolve)
        if got is not None:
            understood = True
            items.extend(got)
    return items if understood else None
