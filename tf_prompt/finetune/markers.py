"""Entity markers (EasyProject style): put `[` `]` around each English entity, and read the
entities back from a translation that kept them.

Why markers: a language without labelled data gets labelled sentences by translating English
labelled sentences. A translation model keeps `[Shehu Gusau]` around the name it translated, so
the brackets in the reply say which target words are the entity, with no word aligner. What the
markers cannot say is checked here: a reply whose markers are missing, extra, unpaired, nested or
empty cannot give trustworthy spans, so it is refused with the reason (`Dropped`) and counted.

Target tokens follow MasakhaNER: the plain text (markers removed) is cut by the project's
tokenizer (`tf_prompt.data.conll.tokenize`: word runs with their combining marks, apostrophes
inside words, every punctuation character on its own), and each entity is the tokens its marked
characters cover. A marker inside a word (`[Nairobi]ni`, Swahili's locative) widens the entity to
the whole word, as MasakhaNER tags whole tokens; two entities that then share a word are refused.

Unicode: the reply is taken to NFC (a model may answer in NFD; Yoruba tone marks then become
separate code points that look the same) and zero-width characters (ZWSP, ZWNJ, ZWJ, word joiner,
BOM, soft hyphen) are removed, so that they neither make tokens of their own nor split a word.
Fullwidth brackets (U+FF3B, U+FF3D), which some models write for `[` `]`, are read as markers.

Pure functions over strings and sentences: no model, no file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from tf_prompt.data.conll import Sentence, tokenize

OPEN, CLOSE = "[", "]"
MARKERS = OPEN + CLOSE

#: Characters removed from a reply before it is read (see the module docstring), and the
#: fullwidth brackets some models write for `[` `]` (read as the markers they stand for).
CLEAN_UP: dict[int, str | None] = {**dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad")),
                                   ord("\uff3b"): OPEN, ord("\uff3d"): CLOSE}
#: A source sentence with one of these would be ambiguous once translated.
_SOURCE_MARKERS = MARKERS + "\uff3b\uff3d"

#: Drop reasons, as summary.json counts them.
SOURCE_HAS_MARKERS = "source contains [ or ]"
NO_TRANSLATION = "empty translation"
UNPAIRED = "unpaired marker"
NESTED = "nested markers"
EMPTY = "empty marker"
FEWER = "fewer markers than entities"
MORE = "more markers than entities"
SHARED_WORD = "two entities in one word"
DUPLICATE = "same translation as another sentence's, from different English"
REASONS = (SOURCE_HAS_MARKERS, NO_TRANSLATION, UNPAIRED, NESTED, EMPTY, FEWER, MORE, SHARED_WORD, DUPLICATE)

#: English tokens written without a space before them, and after them (a plain detokenizer: the
#: marked sentence is read by a translation model, which reads running text better than tokens).
_NO_SPACE_BEFORE = re.compile(r"[,.!?;:%)\]}]+|'(?:s|re|ve|ll|d|m)|n't", re.I)
_NO_SPACE_AFTER = frozenset("([{$")
#: A token with a letter or digit in it (not only punctuation).
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Entity:
    """One English entity: tokens [start, end) of the sentence and its type."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Marked:
    """An English sentence ready to translate: its text with markers, without, and its entities."""

    text: str
    plain: str
    entities: tuple[Entity, ...]
    entity_texts: tuple[str, ...]


@dataclass(frozen=True)
class Projected:
    """A target-language sentence read from a marked translation."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    text: str               # the translation without markers, cleaned (NFC, no zero-width)
    reordered: bool         # entity types were matched by name, not by order
    widened: int            # markers inside a word, widened to the whole word


@dataclass(frozen=True)
class Dropped:
    """Why a sentence gives no target sentence (one of REASONS)."""

    reason: str


def entities_of(sentence: Sentence, labels: Sequence[str] | None = None) -> list[Entity]:
    """The entities of a labelled (IOB2) sentence; with `labels`, only those types (the others
    stay unmarked and become O in the target)."""
    assert sentence.tags is not None
    out: list[Entity] = []
    start: int | None = None
    label = ""
    for i, tag in enumerate([*sentence.tags, "O"]):
        if start is not None and not tag.startswith("I-"):
            if labels is None or label in labels:
                out.append(Entity(start, i, label))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, label = i, tag[2:]
    return out


def mark(sentence: Sentence, labels: Sequence[str] | None = None) -> Marked | Dropped:
    """The English sentence as running text with `[` `]` around each entity.

    A sentence whose own text holds a bracket is refused (SOURCE_HAS_MARKERS): its reply could not
    tell its brackets from the markers. Rare (10 of the 2001 sentences of UNER English-EWT dev,
    6 of 2077 in test), so refusing is cheaper and safer than an exotic marker a model may not keep.
    """
    if any(c in tok for tok in sentence.tokens for c in _SOURCE_MARKERS):
        return Dropped(SOURCE_HAS_MARKERS)
    entities = entities_of(sentence, labels)
    opens = {e.start for e in entities}
    closes = {e.end - 1 for e in entities}
    marked: list[str] = []
    plain: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i, tok in enumerate(sentence.tokens):
        if i and not _NO_SPACE_BEFORE.fullmatch(tok) and sentence.tokens[i - 1] not in _NO_SPACE_AFTER:
            marked.append(" ")
            plain.append(" ")
            pos += 1
        marked.append((OPEN if i in opens else "") + tok + (CLOSE if i in closes else ""))
        plain.append(tok)
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    text = "".join(plain)
    # as written in the running text: "McDonald's", not the tokens "McDonald 's"
    names = tuple(text[offsets[e.start][0]:offsets[e.end - 1][1]] for e in entities)
    return Marked("".join(marked), text, tuple(entities), names)


def clean(text: str) -> str:
    """NFC, without zero-width characters (see the module docstring)."""
    return unicodedata.normalize("NFC", text.translate(CLEAN_UP))


def _key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _types(found: Sequence[str], marked: Marked) -> tuple[list[int], bool]:
    """The English entity of each marked target span (its index), and whether they are out of
    order. A span whose text is exactly one English entity's text (names are often kept as
    written) takes that entity, so a translation that puts two entities in the other order keeps
    their types right; the others follow the remaining English entities in order."""
    english = [_key(t) for t in marked.entity_texts]
    bound: dict[int, int] = {}
    used: set[int] = set()
    for i, text in enumerate(found):
        same = next((j for j, e in enumerate(english) if e == _key(text) and j not in used), None)
        if same is not None:
            bound[i] = same
            used.add(same)
    rest = iter(j for j in range(len(english)) if j not in used)
    order = [bound[i] if i in bound else next(rest) for i in range(len(found))]
    return order, order != sorted(order)


def project(reply: str, marked: Marked) -> Projected | Dropped:
    """The target tokens and IOB2 tags of a marked translation of `marked` (see the module docstring)."""
    text = clean(reply).strip()
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    open_at: int | None = None
    pos = 0
    for c in text:
        if c == OPEN:
            if open_at is not None:
                return Dropped(NESTED)
            open_at = pos
        elif c == CLOSE:
            if open_at is None:
                return Dropped(UNPAIRED)
            spans.append((open_at, pos))
            open_at = None
        else:
            plain.append(c)
            pos += 1
    if open_at is not None:
        return Dropped(UNPAIRED)
    target = "".join(plain)
    if not target.strip():
        return Dropped(NO_TRANSLATION)
    found = [target[a:b] for a, b in spans]
    if any(not any(_WORD.search(tok) for tok, _, _ in tokenize(s)) for s in found):   # "[ ]", "[,]"
        return Dropped(EMPTY)
    if len(spans) < len(marked.entities):
        return Dropped(FEWER)
    if len(spans) > len(marked.entities):
        return Dropped(MORE)
    tokens = tokenize(target)
    tags = ["O"] * len(tokens)
    order, reordered = _types(found, marked)
    widened = 0
    for (a, b), j in zip(spans, order, strict=True):
        label, english = marked.entities[j].label, marked.entity_texts[j]
        covered = [i for i, (_, s, e) in enumerate(tokens) if s < b and e > a]
        # "[Kano.]": the sentence's full stop is no part of the name -- unless the English name
        # ends (or starts) with punctuation too ("U.S.")
        while len(covered) > 1 and not _WORD.search(tokens[covered[-1]][0]) and _WORD.match(english[-1]):
            covered.pop()
        while len(covered) > 1 and not _WORD.search(tokens[covered[0]][0]) and _WORD.match(english[0]):
            covered.pop(0)
        if any(tags[i] != "O" for i in covered):
            return Dropped(SHARED_WORD)
        if tokens[covered[0]][1] < a or tokens[covered[-1]][2] > b:
            widened += 1
        for k, i in enumerate(covered):
            tags[i] = ("B-" if k == 0 else "I-") + label
    return Projected(tuple(t for t, _, _ in tokens), tuple(tags), target, reordered, widened)
