"""Is a translation worth pivoting through? A check with no model call (--pivot-check).

A small model often "translates" by echoing the source sentence (the local 1.5B does it on many
Hausa sentences), or answers in another language than English. Annotating such a text in English
and fusing it with the source pays two calls for nothing: transfusion then answers with the
direct view of the sentence instead (methods/transfusion.py), and says why in the trace.

Three cheap tests on the words (decomposed, casefolded, without combining marks: `words`):
- **echo**: most of the translation's words are words of the source (ECHO_SHARE). Names are
  kept in a real translation, but its function words are English ones the source lacks; an
  English translation of a sentence in Nigerian Pidgin can share more than half its words with
  the source, and still stays below the threshold unless it is a near copy.
- **copy**: the translation holds most of the source word for word, in one run (COPY_SHARE of
  a source of COPY_MIN_WORDS words or more). The local 1.5B often quotes the source and then
  comments on it in English ('"Ya ce ..." This sentence appears to be...'): an echo with a tail
  the first test does not see. A real translation shares only names and short phrases in a row.
- **not English**: a translation of ENGLISH_MIN_WORDS words or more in which almost none are
  common English function words (ENGLISH_SHARE). English running text has about a third of its
  words in FUNCTION_WORDS; none of the MasakhaNER languages uses them (Nigerian Pidgin does, and
  passes, as it should: an echo of it is caught by the first test).

The thresholds were chosen on dev data, never on test data: taken as a "translation", a
MasakhaNER 2.0 dev sentence of 8 words or more fails the English test in 97.7% (sna) to 100%
(bam, fon) of cases for 14 languages, 9.0% for pcm (whose echo the echo test catches); an
English UNER (EWT dev) sentence of 8 words or more fails it in 3.7% of cases, nearly all lists of
names, URLs and e-mail signatures. On hau dev (first 20 sentences) the local 1.5B's translations are
turned down 10 times: 5 echoes, 5 copies with English comments.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

__all__ = ["COPY_MIN_WORDS", "COPY_SHARE", "ECHO_SHARE", "ENGLISH_MIN_WORDS", "ENGLISH_SHARE", "FUNCTION_WORDS",
           "pivot_problem", "words"]

#: A translation is an echo when at least this share of its words are words of the source.
ECHO_SHARE = 0.8
#: A translation copies the source when one run of its words is this share of the source's words...
COPY_SHARE = 0.75
#: ...for a source of at least this many words (a short one is left to the echo test).
COPY_MIN_WORDS = 8
#: A translation shorter than this is never judged on its English (a title, a list of names).
ENGLISH_MIN_WORDS = 8
#: A translation is not English when fewer than this share of its words are FUNCTION_WORDS.
ENGLISH_SHARE = 0.05

#: Frequent English function words that are not also frequent words of a MasakhaNER language
#: (dropped for that reason: a, i, o, an, in, to, no, so, me, be, do, we, by, us, new, into: "to"
#: alone is 616 of the Yoruba dev words, "no" 654 of the Twi ones).
_FUNCTION_WORDS = """
the of and is was that for on with as at from his her he she it its they them their
our you your are were been being has have had not this these those which who whom
whose will would said but or after also about than more there when what where while
then if because before over under between during against all any some one two can
could should may might must does did such only other up out him my
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The words of `text`, folded like the aligner folds names (spans/align.py): decomposed,
    casefolded, without combining marks, punctuation dropped. MasakhaNER's Yoruba is mostly not
    in NFC and a model may answer in NFC or without tone marks: the same word must compare equal
    in every form, and a mark must not cut a word in two."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return [m.group() for m in _WORD.finditer(bare.casefold())]


def pivot_problem(source: str, translation: str) -> str | None:
    """Why `translation` is no English pivot for `source` (one short phrase for the trace), or
    None when it passes the three tests."""
    said = words(translation)
    if not said:
        return "the translation has no words"
    source_words = words(source)
    own = set(source_words)
    copied = sum(1 for w in said if w in own)
    if copied / len(said) >= ECHO_SHARE:
        return f"echo: {copied} of its {len(said)} words are the source's"
    if len(source_words) >= COPY_MIN_WORDS:
        run = SequenceMatcher(None, source_words, said, autojunk=False).find_longest_match().size
        if run / len(source_words) >= COPY_SHARE:
            return f"copy: it holds {run} of the source's {len(source_words)} words in a row"
    if len(said) >= ENGLISH_MIN_WORDS:
        english = sum(1 for w in said if w in FUNCTION_WORDS)
        if english / len(said) < ENGLISH_SHARE:
            return f"not English: {english} of its {len(said)} words are English function words"
    return None
