"""What the constrained-decoding tests of the local backends share: the answer schema in the shape
the `--constrain` option sends (OpenAI's structured-outputs `response_format`), and a check of an
answer against it that does not use the engine under test."""

from __future__ import annotations

import json
from typing import Any

LABELS = ["PER", "ORG", "LOC", "DATE"]


def word_ngrams(words: list[str], longest: int | None = None) -> list[str]:
    """Every run of consecutive words, shortest first (the `text` enum of a spans-constrained call)."""
    longest = longest or len(words)
    return [" ".join(words[i:i + n]) for n in range(1, longest + 1) for i in range(len(words) - n + 1)]


def entities_schema(texts: list[str] | None, labels: list[str] = LABELS) -> dict[str, Any]:
    """{"entities": [{"text": ..., "type": ...}]}, closed objects; `text` an enum when given."""
    text: dict[str, Any] = {"type": "string", **({"enum": texts} if texts is not None else {})}
    entity = {"type": "object", "properties": {"text": text, "type": {"type": "string", "enum": labels}},
              "required": ["text", "type"], "additionalProperties": False}
    return {"type": "object", "properties": {"entities": {"type": "array", "items": entity}},
            "required": ["entities"], "additionalProperties": False}


#: Where an entity's `text` sits in `entities_schema`: the path `with_changes` takes.
TEXT = ["properties", "entities", "items", "properties", "text"]


def with_changes(schema: dict[str, Any], path: list[str], **changes: Any) -> dict[str, Any]:
    """A copy of `schema` with `changes` merged into the sub-schema at `path` (a keyword an
    engine may not enforce, to test that it says so)."""
    copy = json.loads(json.dumps(schema))
    node = copy
    for key in path:
        node = node[key]
    node.update(changes)
    return copy


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "entities", "strict": True, "schema": schema}}


def schema_violation(reply: str, texts: list[str] | None, labels: list[str] = LABELS) -> str | None:
    """Why `reply` does not match `entities_schema(texts, labels)`; None when it does."""
    try:
        answer = json.loads(reply)
    except ValueError as e:
        return f"not JSON ({e}): {reply!r}"
    if not isinstance(answer, dict) or set(answer) != {"entities"} or not isinstance(answer["entities"], list):
        return f"not an object with exactly an 'entities' list: {reply!r}"
    for entity in answer["entities"]:
        if not isinstance(entity, dict) or set(entity) != {"text", "type"}:
            return f"an entity without exactly 'text' and 'type': {entity!r}"
        if not isinstance(entity["text"], str) or (texts is not None and entity["text"] not in texts):
            return f"text {entity['text']!r} is not one of the allowed strings"
        if entity["type"] not in labels:
            return f"type {entity['type']!r} is not one of {labels}"
    return None


def batch_schema(texts_per_item: list[list[str]]) -> dict[str, Any]:
    """A sentence batch: one property per numbered item ("1", "2", ...), each its own answer schema."""
    items = {str(i): entities_schema(texts) for i, texts in enumerate(texts_per_item, 1)}
    return {"type": "object", "properties": items, "required": list(items), "additionalProperties": False}


def batch_violation(reply: str, texts_per_item: list[list[str]]) -> str | None:
    """Why `reply` does not match `batch_schema(texts_per_item)`; None when it does."""
    try:
        answer = json.loads(reply)
    except ValueError as e:
        return f"not JSON ({e}): {reply!r}"
    numbers = [str(i) for i in range(1, len(texts_per_item) + 1)]
    if not isinstance(answer, dict) or sorted(answer) != sorted(numbers):
        return f"not an object with exactly the items {numbers}: {reply!r}"
    for number, texts in zip(numbers, texts_per_item, strict=True):
        found = schema_violation(json.dumps(answer[number]), texts)
        if found:
            return f"item {number}: {found}"
    return None
