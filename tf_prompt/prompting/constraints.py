"""The JSON schema a constrained answer must match (`--constrain json|spans`).

A constrained call carries, in its request parameters, OpenAI's structured-outputs field:
`{"response_format": {"type": "json_schema", "json_schema": {"name", "strict": True, "schema"}}}`.
The openai_compat backend sends it as it is; the local backends translate it for their engine.
This module only builds it (standard library only), from the step's reply format and the texts of
the sentence(s) the call is about:

- `json`: the answer's shape. `entities` -> {"entities": [{"text": str, "type": one of the
  labels}]}; `fused` (transfusion-1call) -> {"translation", "english_entities", "entities"};
  a numbered batch prompt -> one property per item ("1", "2", ...), each with its own schema.
- `spans`: as json, but each `text` of the answer's `entities` must be one of the word n-grams
  of the text the step annotates (the source sentence for direct and fuse, the English
  translation for annotate), written as the text has them: a span can only be copied from the
  sentence, never invented or cut inside a word.

Translations (free text) and GoLLIE code are never constrained: a grammar for code is out of scope.

Strict structured outputs have provider limits (LIMITS). A call whose n-grams would break them is
sent with the `json` schema instead, and the fallback is noted (`Constraint.note`, recorded in
the trace under `constraints`); in a numbered call each item falls back on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: The --constrain choices.
Mode = Literal["none", "json", "spans"]
MODES: tuple[Mode, ...] = ("none", "json", "spans")

#: Reply formats (methods/base.py ReplyFormat) that a schema can describe. "translation" is free
#: text and "code"/"code_fused" are GoLLIE code: those calls are sent unconstrained.
CONSTRAINABLE = ("entities", "fused")

#: The longest entity the spans enum offers, in tokens. In MasakhaNER 2.0 (train + dev of its
#: 15 languages, 143k entities) 98.8% of the entities have at most 6 tokens and 99.5% at most 8;
#: each extra length adds about one n-gram per token of the sentence to the enum, and the enum
#: budget (LIMITS) is what decides which sentences still get spans. 8 keeps a sentence of 63
#: tokens (the 99th percentile) within the 1,000 values.
MAX_NGRAM = 8

#: The most entities an answer may list (`maxItems`, which OpenAI, llama.cpp and llguidance
#: enforce). A small model under a spans enum can repeat one n-gram until max_tokens (4 of 80
#: calls on hau dev, 1.5B): the cap ends such a loop with a well-formed answer. In MasakhaNER 2.0
#: (train + dev, 15 languages) 99.99% of sentences have at most 20 entities; a sentence cannot
#: have more entities than words, so a shorter text gets a lower cap.
MAX_ITEMS = 20


@dataclass(frozen=True)
class Limits:
    """A provider's documented limits on a strict structured-outputs schema."""

    provider: str
    enum_values: int          # enum values in the whole schema
    enum_chars: int           # characters of one string enum's values, when it has more than...
    enum_chars_above: int     # ...this many values
    total_chars: int          # property names + enum values + const values, whole schema
    properties: int           # object properties in the whole schema
    depth: int                # levels of nested objects
    source: str


#: One row per provider with documented limits; the first is applied to every backend, so the
#: schema (and the answers a run can give) do not depend on the backend it ran on. llama.cpp
#: (json_schema -> GBNF grammar) and vLLM (guided decoding) document no count limit; a long enum
#: only makes their grammar bigger.
LIMITS: tuple[Limits, ...] = (
    Limits("openai", enum_values=1000, enum_chars=15_000, enum_chars_above=250, total_chars=120_000,
           properties=5000, depth=10,
           source="platform.openai.com/docs/guides/structured-outputs, 'Supported schemas' (up to 500 "
                  "enum values in late 2024)"),
)
APPLIED = LIMITS[0]


@dataclass(frozen=True)
class Constraint:
    """What one call is sent with: the request parameters to merge (empty: none), and for the
    trace what it was constrained to per item ("json", "spans" or "json (spans: why not)")."""

    params: dict[str, Any]
    notes: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        return self.notes[0] if self.notes else "none"


NONE = Constraint({})

# Words are the text's whitespace-separated pieces (a CoNLL sentence is its tokens joined by
# spaces, so its n-grams are exactly its token sequences). A model's translation glues
# punctuation to words ("Nigeria," "(Lagos)"), so an n-gram whose edges carry punctuation is also
# offered without it; the form with it stays, for names that end with a point ("Ltd.", "U.S.").
_PIECE = re.compile(r"\S+")
_EDGE = "\"'“”‘’«»()[]{}<>,;:!?….-"


def _has_word(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)


def ngrams(text: str, max_n: int = MAX_NGRAM) -> list[str]:
    """The distinct word n-grams of `text` (n <= max_n whitespace-separated pieces), as written
    in it, in order of first occurrence; each also without the punctuation at its two ends. An
    n-gram starts and ends with a piece that holds a letter or digit."""
    pieces = [m.span() for m in _PIECE.finditer(text)]
    seen: dict[str, None] = {}
    for i, (start, _) in enumerate(pieces):
        if not _has_word(text[start:pieces[i][1]]):
            continue
        for j in range(i, min(i + max_n, len(pieces))):
            end = pieces[j][1]
            if not _has_word(text[pieces[j][0]:end]):
                continue
            gram = text[start:end]
            seen.setdefault(gram, None)
            bare = gram.lstrip(_EDGE).rstrip(_EDGE)
            if bare:
                seen.setdefault(bare, None)
    return list(seen)


def max_items(text: str | None) -> int:
    """The `maxItems` of the entities of an answer about `text` (MAX_ITEMS when it is unknown)."""
    if text is None:
        return MAX_ITEMS
    return max(1, min(MAX_ITEMS, sum(1 for m in _PIECE.finditer(text) if _has_word(m.group()))))


def _entity_list(labels: Sequence[str], spans: Sequence[str] | None = None,
                 most: int = MAX_ITEMS) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string"}
    if spans is not None:
        text["enum"] = list(spans)
    item = {"type": "object", "properties": {"text": text, "type": {"type": "string", "enum": list(labels)}},
            "required": ["text", "type"], "additionalProperties": False}
    return {"type": "array", "items": item, "maxItems": most}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def answer_schema(reply: str, labels: Sequence[str], spans: Sequence[str] | None = None,
                  text: str | None = None) -> dict[str, Any]:
    """The schema of one answer in reply format `reply` ("entities" or "fused"); `spans`, when
    given, are the only strings an entity of the answer may be (the source's entities in a
    fused answer; its English entities stay free, the translation does not exist yet). `text`
    (the text annotated) bounds the number of its entities (max_items)."""
    most = max_items(text)
    if reply == "fused":
        return _object({"translation": {"type": "string"}, "english_entities": _entity_list(labels),
                        "entities": _entity_list(labels, spans, most)})
    if reply == "entities":
        return _object({"entities": _entity_list(labels, spans, most)})
    raise ValueError(f"reply format {reply!r} has no JSON schema")


def schema_chars(schema: Any) -> int:
    """What a schema spends of the `total_chars` limit: its property names and string enum and
    const values."""
    if isinstance(schema, list):
        return sum(schema_chars(v) for v in schema)
    if not isinstance(schema, dict):
        return 0
    n = 0
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            n += sum(len(name) for name in value)
        elif key == "enum" and isinstance(value, list):
            n += sum(len(v) for v in value if isinstance(v, str))
        elif key == "const" and isinstance(value, str):
            n += len(value)
        n += schema_chars(value)
    return n


def _why_not(spans: Sequence[str], budget: int, limits: Limits, chars_left: int | None = None) -> str | None:
    """Why `spans` cannot be an enum of a schema with `budget` enum values and `chars_left`
    characters (of `total_chars`) left (None: it can)."""
    if not spans:
        return "the text has no words"
    if len(spans) > budget:
        return f"{len(spans)} n-grams > {budget} enum values left of {limits.enum_values}"
    chars = sum(len(s) for s in spans)
    if len(spans) > limits.enum_chars_above and chars > limits.enum_chars:
        return f"{chars} characters in {len(spans)} n-grams > {limits.enum_chars}"
    if chars_left is not None and chars > chars_left:
        return f"{chars} characters in {len(spans)} n-grams > {chars_left} characters left of {limits.total_chars}"
    return None


def _item(mode: str, reply: str, labels: Sequence[str], text: str | None, budget: int,
          limits: Limits, chars_left: int | None = None) -> tuple[dict[str, Any], str, int, int]:
    """One answer's schema, its note, the enum values it uses and the characters its n-grams
    add to the json schema."""
    used = len(labels) * (2 if reply == "fused" else 1)
    if mode != "spans":
        return answer_schema(reply, labels, text=text), "json", used, 0
    spans = ngrams(text or "")
    why = _why_not(spans, budget - used, limits, chars_left)
    if why is not None:
        return answer_schema(reply, labels, text=text), f"json (spans: {why})", used, 0
    return answer_schema(reply, labels, spans, text), "spans", used + len(spans), sum(len(s) for s in spans)


def _params(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": name, "strict": True, "schema": schema}}}


def constraint(mode: str, step: str, reply: str, labels: Sequence[str], text: str | None = None,
               limits: Limits = APPLIED) -> Constraint:
    """The constraint of one single-sentence call of `step` (NONE for mode "none" and for a
    reply format no schema describes). `text` is what the step annotates (its spans)."""
    if mode == "none" or reply not in CONSTRAINABLE:
        return NONE
    chars_left = limits.total_chars - schema_chars(answer_schema(reply, labels))
    schema, note, _, _ = _item(mode, reply, labels, text, limits.enum_values, limits, chars_left)
    return Constraint(_params(f"{step}_{reply}", schema), (note,))


def numbered_constraint(mode: str, step: str, reply: str, labels: Sequence[str], texts: Sequence[str | None],
                        limits: Limits = APPLIED) -> Constraint:
    """The constraint of a numbered call (--batch-sentences): one property per item, "1".."n",
    each with its own schema. The enum budget is shared: items get their spans in order while
    they fit, an item that does not fit gets the json schema (and its note says why)."""
    if mode == "none" or reply not in CONSTRAINABLE:
        return NONE
    left = limits.enum_values
    properties: dict[str, Any] = {}
    notes: list[str] = []
    # the labels' enums of every item are reserved first: no item's spans may starve a later
    # item of its json schema
    reserve = len(labels) * (2 if reply == "fused" else 1)
    # and so are the characters of every item's json schema (property names, labels), of the
    # total_chars limit: the items' n-grams share what is left
    chars_left = limits.total_chars - schema_chars(
        _object({str(n): answer_schema(reply, labels) for n in range(1, len(texts) + 1)}))
    for n, text in enumerate(texts, start=1):
        budget = left - reserve * (len(texts) - n)
        schema, note, used, chars = _item(mode, reply, labels, text, budget, limits, chars_left)
        properties[str(n)] = schema
        notes.append(note)
        left -= used
        chars_left -= chars
    return Constraint(_params(f"{step}_{reply}_batch", _object(properties)), tuple(notes))


def schema_of(params: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema in request parameters (None when the call is unconstrained)."""
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            return spec["schema"]
    return None
