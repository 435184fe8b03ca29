"""Map entity strings returned by an LLM back onto the tokens of a sentence.

LLMs answer NER prompts with entity *strings*, not token indices, and those
strings drift from the source: different casing, dropped Yoruba tone marks,
NFC vs NFD encodings, curly apostrophes, collapsed or extra spaces, or (in the
translate-test baseline) an English surface form of a source-language name.
This module finds each string in the sentence as a character span, at
increasingly forgiving matching levels, and converts spans to/from BIO tags so
the result can be scored against the gold tokens.

Deliberately stdlib-only and independent of the rest of ``tf_prompt`` so it can
be tested (and reused) in isolation.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from tf_prompt.types import Span

__all__ = [
    "Alignment",
    "MentionLike",
    "Span",
    "bio_to_spans",
    "locate",
    "normalize",
    "spans_to_bio",
]


class MentionLike(Protocol):
    """Anything with ``.text`` and ``.label`` (e.g. ``tf_prompt.types.Mention``).

    A protocol rather than an import keeps this module free of dependencies on
    the parser, which is developed separately.
    """

    @property
    def text(self) -> str: ...

    @property
    def label(self) -> str: ...


@dataclass
class Alignment:
    """Result of :func:`locate`.

    ``hallucinated`` and ``unaligned`` keep the mentions in reply order, so
    callers can report model errors in the order the model made them.
    """

    spans: list[Span] = field(default_factory=list)
    hallucinated: list = field(default_factory=list)
    unaligned: list = field(default_factory=list)


# Typographic variants models (and keyboards) substitute for ASCII. Applied
# before NFKD because e.g. "´" would otherwise decompose to " " + U+0301.
_PUNCT = str.maketrans(
    {
        **dict.fromkeys("’ʼ‘´`‛′", "'"),
        **dict.fromkeys("–—‐‑‒―−", "-"),
        **dict.fromkeys("“”„‟", '"'),
    }
)


def _is_mark(c: str) -> bool:
    """Combining marks carry tone/diacritics that we must never split off a base."""
    return unicodedata.category(c)[0] == "M"


_APOSTROPHES = frozenset("'’ʼ")


def _is_word(c: str) -> bool:
    """Word characters for boundary checks; marks count so "Ọ̀" is one word char."""
    return c == "_" or unicodedata.category(c)[0] in "LNM"


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """Case-fold one character (may grow, e.g. "ß" -> "ss")."""
    return ch.casefold()


@lru_cache(maxsize=8192)
def _norm_char(ch: str) -> str:
    """Level-3 form of one character; may be empty (spaces, marks) or longer.

    Per-character NFKD is equivalent to whole-string NFKD once marks are
    removed (only mark *order* depends on context), which is what lets us keep
    an exact index map. NFKD is applied again after casefold because folding
    can introduce marks ("İ" -> "i" + U+0307).
    """
    s = unicodedata.normalize("NFKD", ch.translate(_PUNCT))
    s = unicodedata.normalize("NFKD", s.casefold())
    return "".join(
        c
        for c in s.translate(_PUNCT)
        if not (_is_mark(c) or c.isspace() or unicodedata.category(c) == "Cf")
    )


def _mapped(s: str, per_char: Callable[[str], str]) -> tuple[str, list[int]]:
    """Apply a per-character transform, recording each output char's source index."""
    out: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(s):
        t = per_char(ch)
        out.append(t)
        idx.extend([i] * len(t))
    return "".join(out), idx


def normalize(s: str) -> tuple[str, list[int]]:
    """Return the matching form of ``s`` and, per output char, its index in ``s``.

    NFKC/NFD + diacritic removal, casefold, ASCII apostrophes and hyphens, and
    *all* whitespace (plus invisible format chars such as ZWJ/soft hyphen)
    removed, so token-separation differences between the model's answer and
    the dataset cannot prevent a match.
    """
    return _mapped(s, _norm_char)


def _normalized_length(s: str) -> int:
    """len(normalize(s)[0]) without building the string and its index map (locate sorts every
    mention by it, and most are then found exactly without ever normalising)."""
    return sum(len(_norm_char(ch)) for ch in s)


def _find_all(hay: str, needle: str) -> Iterator[int]:
    """All (possibly overlapping) start positions of ``needle`` in ``hay``."""
    i = hay.find(needle)
    while i != -1:
        yield i
        i = hay.find(needle, i + 1)


class _Text:
    """A sentence with lazily built matching views (shared by all mentions)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: tuple[str, list[int]] | None = None
        self._normed: tuple[str, list[int]] | None = None
        self._words: list[tuple[int, int]] | None = None
        self._runs: dict[tuple[int, int], tuple[int, int, str] | None] = {}

    @property
    def folded(self) -> tuple[str, list[int]]:
        if self._folded is None:
            self._folded = _mapped(self.text, _fold_char)
        return self._folded

    @property
    def normed(self) -> tuple[str, list[int]]:
        if self._normed is None:
            self._normed = normalize(self.text)
        return self._normed

    def at_boundary(self, start: int, end: int) -> bool:
        """Whether [start, end) is a whole word run. An apostrophe between letters is inside a
        word (Kinyarwanda "rw'u", Swahili "Ng'ombe"), so "u Rwanda" is not found in "rw'u Rwanda"
        when a standalone "u Rwanda" exists."""
        t = self.text

        def word_at(i: int) -> bool:
            if _is_word(t[i]):
                return True
            return (t[i] in _APOSTROPHES and 0 < i < len(t) - 1
                    and _is_word(t[i - 1]) and _is_word(t[i + 1]))

        return (start == 0 or not word_at(start - 1)) and (end == len(t) or not word_at(end))

    def _splits_grapheme(self, start: int, end: int) -> bool:
        """True if [start, end) begins on a mark or leaves a base's marks behind.

        Such a match (e.g. exact "Oyo" inside NFD "Oyó") is not really exact;
        rejecting it lets the normalised level claim it with the right label.
        """
        t = self.text
        return _is_mark(t[start]) or (end < len(t) and _is_mark(t[end]))

    def _back(self, idx: list[int], a: int, b: int) -> tuple[int, int] | None:
        """Map a match [a, b) in a transformed view to original offsets.

        Returns None if the match covers only part of an original character's
        expansion (e.g. one "s" of "ß").
        """
        if (a > 0 and idx[a - 1] == idx[a]) or (b < len(idx) and idx[b] == idx[b - 1]):
            return None
        return idx[a], idx[b - 1] + 1

    def level_matches(self, level: int, needle: str) -> list[tuple[int, int]]:
        """Original-offset matches of ``needle`` at one level (0 exact, 1 case, 2 norm)."""
        out: list[tuple[int, int]] = []
        if level == 0:
            for s in _find_all(self.text, needle):
                if not self._splits_grapheme(s, s + len(needle)):
                    out.append((s, s + len(needle)))
        elif level == 1:
            hay, idx = self.folded
            n = "".join(map(_fold_char, needle))
            for a in _find_all(hay, n):
                se = self._back(idx, a, a + len(n))
                if se and not self._splits_grapheme(*se):
                    out.append(se)
        else:
            hay, idx = self.normed
            n = normalize(needle)[0]
            if not n:
                return out
            for a in _find_all(hay, n):
                se = self._back(idx, a, a + len(n))
                if se:
                    s, e = se
                    # Marks were dropped from the view; give them back to the
                    # last base char so the span is a whole grapheme.
                    while e < len(self.text) and _is_mark(self.text[e]):
                        e += 1
                    out.append((s, e))
        return out

    def candidates(self, needle: str) -> Iterator[tuple[int, int, str]]:
        """Occurrences in preference order: token-boundary matches (by level)
        before inside-word ones, each position reported once at its best level.
        Lazy so the common exact case never builds the normalised view."""
        names = ("exact", "case", "normalized")
        cache: dict[int, list[tuple[int, int]]] = {}
        # A position's boundary status does not depend on the level, so one
        # seen-set suffices to report each position once, at its best level.
        seen: set[tuple[int, int]] = set()
        for boundary in (True, False):
            for level in range(3):
                if level not in cache:
                    cache[level] = self.level_matches(level, needle)
                for se in cache[level]:
                    if se not in seen and self.at_boundary(*se) == boundary:
                        seen.add(se)
                        yield se[0], se[1], names[level]

    # --- fuzzy projection ---------------------------------------------------

    @property
    def words(self) -> list[tuple[int, int]]:
        if self._words is None:
            self._words = [m.span() for m in re.finditer(r"\S+", self.text)]
        return self._words

    def run(self, i: int, j: int) -> tuple[int, int, str] | None:
        """Words i..j (inclusive) with edge punctuation trimmed, and its normal
        form (cached: every mention scores the same runs).

        None when trimming would eat into a neighbouring word: such a run is
        equivalent to a shorter one, which is scored separately.
        """
        key = (i, j)
        if key not in self._runs:
            t, words = self.text, self.words
            s, e = words[i][0], words[j][1]
            while s < words[i][1] and not _is_word(t[s]):
                s += 1
            while e > words[j][0] and not _is_word(t[e - 1]):
                e -= 1
            if s < words[i][1] and e > words[j][0]:
                # Normalisation is per character, so slicing the sentence's
                # normal form equals normalising the substring, only cheaper.
                normed, idx = self.normed
                n = normed[bisect_left(idx, s) : bisect_left(idx, e)]
                self._runs[key] = (s, e, n)
            else:
                self._runs[key] = None
        return self._runs[key]

    def fuzzy_candidates(self, needle: str, threshold: float) -> list[tuple[int, int, str]]:
        """Runs of 1..(words+2) words whose ratio to ``needle`` is >= threshold,
        best first (ties: earlier, then shorter)."""
        n = normalize(needle)[0]
        if not n:
            return []
        max_len = len(needle.split()) + 2
        sm = difflib.SequenceMatcher(None, autojunk=False)
        sm.set_seq2(n)  # seq2 is the side difflib caches; reuse it for every run
        scored: list[tuple[float, int, int, int]] = []
        words = self.words
        for i in range(len(words)):
            for j in range(i, min(i + max_len, len(words))):
                r = self.run(i, j)
                if r is None or not r[2]:
                    continue
                total = len(r[2]) + len(n)
                if 2 * len(n) < threshold * total:
                    break  # already too long to reach threshold; longer runs are worse
                sm.set_seq1(r[2])
                if sm.quick_ratio() < threshold:
                    continue
                ratio = sm.ratio()
                if ratio >= threshold:
                    scored.append((-ratio, r[0], r[1] - r[0], r[1]))
        scored.sort()
        return [(s, e, "fuzzy") for _, s, _, e in scored]


def _overlaps(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in taken)


def locate(
    text: str, mentions: Sequence[MentionLike], *, fuzzy: float | None = None
) -> Alignment:
    """Place each mention string in ``text`` as a non-overlapping labelled span.

    Levels per mention: exact, case-insensitive, normalised (see
    :func:`normalize`), then -- only if ``fuzzy`` is a threshold -- the best
    SequenceMatcher-similar run of words (for projecting English entities onto
    the source sentence). Token-boundary occurrences beat inside-word ones at
    any level, so "Ali" avoids "Alibaba" and "ALI" beats an inner "Ali".

    Mentions claim occurrences longest first (stable, so repeated strings
    claim successive occurrences in reply order); that lets "Kano Pillars"
    take its words before "Kano" is placed. A mention whose every occurrence
    is taken is ``unaligned``; one found nowhere is ``hallucinated``; blank
    mentions are ignored. Fuzzy runs in a second pass, after all string matches
    are placed, and only for mentions not found at all (a surplus duplicate is
    ``unaligned`` rather than wandering onto a look-alike word). Inside-word
    string matches still beat fuzzy ones ("Mombasa" in "Mombasani" is found
    exactly; BIO tagging widens it to the token anyway).
    """
    view = _Text(text)
    items = [
        (k, m, m.text.strip()) for k, m in enumerate(mentions) if (m.text or "").strip()
    ]
    items.sort(key=lambda it: -_normalized_length(it[2]))

    taken: list[tuple[int, int]] = []
    spans: list[Span] = []
    halluc: list[tuple[int, MentionLike]] = []
    unaligned: list[tuple[int, MentionLike]] = []

    def claim(k: int, m: MentionLike, cands: Iterator[tuple[int, int, str]]) -> bool:
        """Take the first free candidate; return whether any candidate existed."""
        found = False
        for s, e, how in cands:
            found = True
            if not _overlaps(s, e, taken):
                taken.append((s, e))
                spans.append(Span(s, e, m.label, text[s:e], how))
                return True
        if found:
            unaligned.append((k, m))
        return found

    # Fuzzy runs only after every string match is placed: a loose guess for
    # one mention must not steal the exact occurrence of another.
    missing = [(k, m, n) for k, m, n in items if not claim(k, m, view.candidates(n))]
    for k, m, needle in missing:
        if fuzzy is None or not claim(k, m, iter(view.fuzzy_candidates(needle, fuzzy))):
            halluc.append((k, m))

    spans.sort(key=lambda sp: sp.start)
    return Alignment(
        spans=spans,
        hallucinated=[m for _, m in sorted(halluc, key=lambda x: x[0])],
        unaligned=[m for _, m in sorted(unaligned, key=lambda x: x[0])],
    )


def spans_to_bio(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str]:
    """IOB2 tags for tokens at ``offsets`` (char ranges) from character spans.

    Any overlap tags the whole token, because gold labels are per token. Spans
    are applied in the given order and never retag a token; after a skipped
    token the span restarts with B- so the output stays valid IOB2.
    """
    tags = ["O"] * len(offsets)
    for sp in spans:
        prev_ours = False
        for i, (ts, te) in enumerate(offsets):
            if not (ts < sp.end and sp.start < te):
                continue
            if tags[i] != "O":
                prev_ours = False
                continue
            tags[i] = ("I-" if prev_ours else "B-") + sp.label
            prev_ours = True
    return tags


def bio_to_spans(
    text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str]
) -> list[Span]:
    """Gold IOB2 tags -> exact spans (for oracle answers and few-shot examples).

    Lenient like seqeval's default: an I- tag that does not continue an entity
    of the same label starts a new one, and a bare "LOC" is read as "I-LOC".
    """
    if len(offsets) != len(tags):
        raise ValueError(f"{len(offsets)} offsets but {len(tags)} tags")
    spans: list[Span] = []
    cur: list | None = None  # [start, end, label]

    def close() -> None:
        if cur is not None:
            spans.append(Span(cur[0], cur[1], cur[2], text[cur[0]:cur[1]], "exact"))

    for (ts, te), tag in zip(offsets, tags, strict=True):
        if not tag or tag == "O":
            close()
            cur = None
            continue
        prefix, dash, label = tag.partition("-")
        if not dash:
            prefix, label = "I", tag
        if prefix == "I" and cur is not None and cur[2] == label:
            cur[1] = te
        else:
            close()
            cur = [ts, te, label]
    close()
    return spans
