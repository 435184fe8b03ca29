"""Catch a reply that only repeats an example answer its prompt shows.

Small models sometimes answer with the prompt's format example or a worked example; read as
entities, that is a silent "no entities" or wrong names. The examples are taken from the
prompt as rendered, so every template's wording counts without being listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from tf_prompt.parsing.items import Item
from tf_prompt.parsing.json_entities import interpret
from tf_prompt.parsing.jsonish import FAIL, load_jsonish
from tf_prompt.parsing.labels import LabelResolver
from tf_prompt.parsing.scan import scan_segments


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _answer_key(items: Sequence[Item]) -> tuple[tuple[str, str], ...]:
    """Items compared as a model's copy of them reads: order, case and spacing ignored."""
    return tuple(sorted((_fold(text), _fold(label)) for text, label in items))


def _shown_answers(prompt: Sequence[str], resolve: LabelResolver) -> Iterator[tuple[str, list[Item]]]:
    """(JSON text, items) of every non-empty entity answer written in the prompt: the format
    example ({"entities": [{"text": "...", "type": "..."}]}), worked and few-shot examples, and
    the per-item answers of a numbered example ({"1": {"entities": [...]}, ...})."""
    for text in prompt:
        for segment in scan_segments(text)[0]:
            value = load_jsonish(segment)
            if value is FAIL:
                continue
            values = [value, *(v for v in value.values() if isinstance(v, dict))] if isinstance(value, dict) \
                else [value]
            for each in values:
                got = interpret(each, resolve)
                if got is not None and got[0]:
                    yield segment, got[0]


def echoed(items: Sequence[Item], prompt: Sequence[str] | Callable[[], Sequence[str]], source: str | None,
           resolve: LabelResolver) -> str | None:
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
