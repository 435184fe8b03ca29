"""Cheap self-checks on entities, applied without another model call.

Small models label whatever looks important: "2014", "Wednesday" or "July" come back as PER when
the schema has no DATE type (MasakhaNER is usually scored on PER/ORG/LOC only). These checks keep
the answer consistent with the labels the user chose:

- a mention without a letter ("2014", "50%") is never a name;
- in a script with capitals, a span with no capital anywhere is a phrase, not a name;
- a title in front of a person's name is not part of it when the schema says so (MasakhaNER
  tags "Rais [Samia Suluhu Hassan]", "Alhaji [Aliko Dangote]");
- a generic word in front of a name is part of it when the schema says so ("[jihar Kano]" LOC,
  "[u Rwanda]" LOC in MasakhaNER). The built-in schema's title and generic words were derived
  from the dev splits (benchmarks/derive_conventions.py);
- an English mention that is a date expression is dropped when DATE is not a label, and typed
  DATE when it is. English is the one language whose date words we can list; the English side is
  where the pivot methods take their hints from, so a date kept there would travel into the
  fusion prompt and the projection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tf_prompt.spans.align import Span
from tf_prompt.types import Mention

if TYPE_CHECKING:
    from tf_prompt.data.schema import Schema

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_UNITS = "day|days|week|weeks|month|months|year|years|century|decade|weekend"
_WORD = (rf"(?:{_MONTHS}|{_DAYS}|{_UNITS}|today|yesterday|tomorrow|tonight|last|next|this|the|of|on|in|"
         r"early|late|mid|end|beginning|ago|since|from|to|and|\d+(?:st|nd|rd|th|s)?)")
_ENGLISH_DATE = re.compile(rf"^(?:{_WORD}[\s,./'-]*)+$", re.IGNORECASE)
_CALENDAR_WORD = re.compile(rf"\b(?:{_MONTHS}|{_DAYS}|{_UNITS}|today|yesterday|tomorrow|\d+(?:st|nd|rd|th|s)?)\b",
                            re.IGNORECASE)


def has_letter(text: str) -> bool:
    """Names have letters; a mention of digits and punctuation is a number or an amount."""
    return any(c.isalpha() for c in text)


def is_english_date(text: str) -> bool:
    """Whether an English mention is only a date expression ("July 2014", "last Wednesday")."""
    text = text.strip()
    return bool(text) and bool(_ENGLISH_DATE.match(text)) and bool(_CALENDAR_WORD.search(text))


def _has_capital(word: str) -> bool:
    return any(c.isupper() for c in word)


def name_shaped(span: Span, prefixes: frozenset[str] = frozenset()) -> bool:
    """Whether a span can be a name in a script with capitals: some word of it carries a capital
    ("Benki ya Dunia", "eMzantsi Afrika", "Imo state"), not counting the generic words its type
    may start with ("jihar", "u"). Small models tag whole phrases ("ṣùgbọ́n mo fẹ̀yìntì"); MasakhaNER
    names nearly always have a capital. Spans in scripts without case pass."""
    words = span.text.split()
    while len(words) > 1 and words[0] in prefixes:
        words = words[1:]
    if not any(c.isupper() or c.islower() for c in span.text):
        return True               # no letter with case: nothing to judge
    return any(_has_capital(w) for w in words)


def names_only(spans: Sequence[Span]) -> list[Span]:
    """Spans without a letter dropped, except DATE ones ("2014" is a date, never a name)."""
    return [s for s in spans if s.label == "DATE" or has_letter(s.text)]


def strip_titles(spans: Sequence[Span], titles: frozenset[str]) -> list[Span]:
    """PER spans without the title words they start with ("Rais Samia" -> "Samia")."""
    if not titles:
        return list(spans)
    out = []
    for s in spans:
        while s.label == "PER":
            first, sep, rest = s.text.partition(" ")
            if not sep or first.rstrip(".").casefold() not in titles or not rest.strip():
                break
            cut = len(s.text) - len(rest.lstrip())
            s = Span(s.start + cut, s.end, s.label, s.text[cut:], s.match)
        out.append(s)
    return out


def add_prefixes(spans: Sequence[Span], source: str, prefixes: Mapping[str, frozenset[str]]) -> list[Span]:
    """Spans widened over the generic words their type takes in front ("Kano" -> "jihar Kano")."""
    if not prefixes:
        return list(spans)
    out = sorted(spans, key=lambda s: s.start)
    for k, s in enumerate(out):
        words = prefixes.get(s.label)
        floor = out[k - 1].end if k else 0
        while words:
            head = source[floor:s.start]
            stripped = head.rstrip()
            if stripped == head and head:          # glued to the previous word: not a separate word
                break
            word = stripped.split()[-1] if stripped.split() else ""
            if not word or word.casefold() not in words:
                break
            start = floor + len(stripped) - len(word)
            s = Span(start, s.end, s.label, source[start:s.end], s.match)
        out[k] = s
    return out


def check_spans(spans: Sequence[Span], source: str, schema: Schema) -> list[Span]:
    """Every check on source spans, in order: no numbers as names, name shape, titles out,
    generic words in. Applied to every method's answer (and to each view before combining)."""
    prefixes = schema.prefix_sets
    kept = [s for s in names_only(spans) if s.label == "DATE" or name_shaped(s, prefixes.get(s.label, frozenset()))]
    return add_prefixes(strip_titles(kept, schema.title_set), source, prefixes)


def check_english(mentions: Sequence[Mention], labels: Sequence[str]) -> list[Mention]:
    """The English annotation made consistent with `labels` (see the module docstring)."""
    out = []
    for m in mentions:
        if m.label == "DATE" or is_english_date(m.text):
            if "DATE" in labels:
                out.append(Mention(m.text, "DATE"))
        elif has_letter(m.text):
            out.append(m)
    return out
