"""CoNLL reading/writing and tokenization.

Everything the rest of tf-prompt knows about input files goes through here, so
errors are reported once, precisely, as ``PATH:LINE: what is wrong`` -- a
user staring at a 50k-line file needs the line number, not a traceback.

Named datasets (``sample``, ``masakhaner2:LANG[:SPLIT]``) are found by
:mod:`tf_prompt.data.datasets`.

This module imports nothing of tf_prompt but its shared types: it sits at the bottom of
the dependency graph.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tf_prompt.types import DataError

__all__ = [
    "DataError",
    "Sentence",
    "conll_columns",
    "conll_token_problem",
    "iob2",
    "iter_conll",
    "physical_lines",
    "read_conll",
    "tokenize",
    "write_conll",
]


#: An entity type in a tag: a name of letters, digits and `_`, in parts joined by single `-`, `.`
#: or `/` (PER, WORK_OF_ART, creative-work, PER.NOM, person-artist/author). `B-PERSON-X-`,
#: `B--PER` or `B-PER.` is a typo, not a type: read as one, it would be scored as a type of its own.
_TYPE = r"\w+(?:[-./]\w+)*"
_TAG_RE = re.compile(rf"(?:O|[BIESLU]-{_TYPE})\Z")
_PREFIXED = re.compile(r"[BIESLU]-")


@dataclass(frozen=True)
class Sentence:
    """One sentence: tokens plus the exact text the model sees.

    Offsets tie each token to a span of ``text`` so that entity spans the
    model returns as text can be mapped back to tokens. Every token is one
    CoNLL column (:func:`conll_token_problem`), so any sentence can be
    written by :func:`write_conll`.
    """

    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    text: str
    tags: tuple[str, ...] | None = None
    index: int = 0
    path: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        # Misaligned tokens/offsets/tags silently corrupt scores; fail early.
        if len(self.offsets) != len(self.tokens):
            raise ValueError(
                f"{len(self.tokens)} tokens but {len(self.offsets)} offsets"
            )
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.tags)} tags")
        # Every token must be writable as one CoNLL column: caught here, before any model
        # call, a bad token cannot break write_conll at the end of a paid run.
        for i, tok in enumerate(self.tokens):
            if not isinstance(tok, str):
                raise ValueError(f"token {i}: expected a string, got {type(tok).__name__}")
            problem = conll_token_problem(tok)
            if problem:
                raise ValueError(f"token {i} {tok!r} {problem}")

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[str],
        tags: Sequence[str] | None = None,
        *,
        index: int = 0,
        path: str | None = None,
        line: int | None = None,
    ) -> Sentence:
        """Build a sentence from pre-tokenized input; text is tokens joined by spaces.

        Raises ValueError for a token that cannot be one CoNLL column (see
        :func:`conll_token_problem`).
        """
        offsets = []
        pos = 0
        for tok in tokens:
            if not isinstance(tok, str):
                raise ValueError(f"token {tok!r}: expected a string, got {type(tok).__name__}")
            offsets.append((pos, pos + len(tok)))
            pos += len(tok) + 1
        return cls(
            tokens=tuple(tokens),
            offsets=tuple(offsets),
            text=" ".join(tokens),
            tags=None if tags is None else tuple(tags),
            index=index,
            path=path,
            line=line,
        )

    @classmethod
    def from_text(cls, text: str, *, index: int = 0) -> Sentence:
        """Tokenize raw text; offsets point into the unchanged original text."""
        found = tokenize(text)
        return cls(
            tokens=tuple(t for t, _, _ in found),
            offsets=tuple((s, e) for _, s, e in found),
            text=text,
            index=index,
        )


@functools.cache
def _token_re() -> re.Pattern[str]:
    """Compile the tokenizer regex on first use.

    Python's ``\\w`` excludes combining marks (Unicode category M), which would
    split Yoruba "Ọ̀yọ́" after every tone mark, so the marks are added
    explicitly. Scanning the code points costs ~30 ms, hence done lazily.
    """
    marks: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] == "M":
            if marks and marks[-1][1] == cp - 1:
                marks[-1] = (marks[-1][0], cp)
            else:
                marks.append((cp, cp))
    cls = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in marks
    )
    word = rf"[\w{cls}]+"
    # An apostrophe joins two word runs ("Ng'ombe", "n'a"); at a word edge it
    # is a quote and becomes its own token.
    return re.compile(rf"{word}(?:['\u2019]{word})*|\S")


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split text into (token, start, end): word runs and single punctuation chars."""
    return [(m.group(), m.start(), m.end()) for m in _token_re().finditer(text)]


def _tag_problem(tag: str) -> str:
    """What is wrong with a tag `_TAG_RE` refuses, for the error message."""
    if _PREFIXED.match(tag) and tag[2:]:
        return f"its type {tag[2:]!r} is not a name: letters, digits and _, in parts joined by single - . or /"
    return "expected O or B-/I- followed by a type"


def iob2(tags: Sequence[str]) -> list[str]:
    """Normalise IOB1/BIOES/BILOU (or a mix) to IOB2.

    Scoring with seqeval and rendering prompts both assume every entity starts
    with ``B-``; corpora disagree, so everything is normalised on read.
    S-/U- become B-, E-/L- become I-, and an I-X that does not continue an
    X entity becomes B-X. Raises ValueError on a tag that is not O or X-TYPE.
    """
    out: list[str] = []
    prev_type: str | None = None  # entity type of the previous output tag
    for tag in tags:
        if tag == "O":
            out.append(tag)
            prev_type = None
            continue
        if not _TAG_RE.match(tag):
            raise ValueError(f"invalid tag {tag!r}")
        prefix, typ = tag[0], tag[2:]
        if prefix in "SU":
            prefix = "B"
        elif prefix in "EL":
            prefix = "I"
        if prefix == "I" and prev_type != typ:
            prefix = "B"
        out.append(f"{prefix}-{typ}")
        prev_type = typ
    return out


# --- the CoNLL format as tf-prompt reads and writes it ----------------------
#
# Reader and writer share these rules, so any file read_conll accepts can be
# written back by write_conll and reads back to the same sentences:
#
# * Lines end at "\n", "\r\n" or a lone "\r" (Python's universal newlines).
#   Other characters str.splitlines() breaks on (U+2028, U+2029, U+0085,
#   "\v", "\f", "\x1c"-"\x1e") are ordinary characters inside a token.
# * Columns are separated by runs of ASCII spaces and tabs only. Every other
#   Unicode space (NBSP, U+202F, U+3000, ...) is part of the token, so
#   "10\u00a0000" is one token and is written back byte for byte.
# * A line that is empty or only whitespace (any Unicode space) ends a
#   sentence, as does a line starting with -DOCSTART-.

#: Characters that separate CoNLL columns.
COLUMN_SEPARATORS = " \t"
_NOT_IN_TOKEN = frozenset(COLUMN_SEPARATORS + "\r\n")
_DOCSTART = "-DOCSTART-"
_BOM = "\ufeff"


def physical_lines(text: str) -> list[str]:
    """Lines as a text editor (and :func:`read_conll`) sees them: split at "\\n", "\\r\\n" or "\\r" only.

    ``str.splitlines()`` also splits at U+2028, U+2029, U+0085, "\\v", "\\f" and "\\x1c"-"\\x1e",
    which may sit inside a token, a translation or a model's reply -- raw even inside a JSON
    string written with ``ensure_ascii=False`` -- so every reader of a file tf-prompt or a model
    wrote uses this instead. Like ``splitlines()``, a final line break adds no empty last line.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def conll_columns(line: str) -> list[str]:
    """The columns of one CoNLL line: split at runs of ASCII spaces and tabs only (see above)."""
    return [c for c in line.replace("\t", " ").split(" ") if c]


def conll_token_problem(token: str) -> str | None:
    """Why ``token`` cannot be one CoNLL column (None if it can).

    The single definition of a token shared by :func:`read_conll` (which
    never produces a token with a problem), :class:`Sentence` (which refuses
    one when built) and :func:`write_conll`.
    """
    if not token:
        return "is empty"
    if not _NOT_IN_TOKEN.isdisjoint(token):
        return "contains a space, tab or line break (CoNLL column separators)"
    if token.startswith(_DOCSTART):
        return f"starts with {_DOCSTART} (a document boundary in CoNLL)"
    return None


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its line break) lazily, decoding UTF-8 line by line.

    Decoding per line gives the exact line of an encoding error, and reading
    lazily lets ``--limit`` stop early on a large file. A UTF-8 BOM at the
    start of the file is dropped.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed by the `with f:` below, after the open errors are told apart
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a CoNLL file") from None
    except OSError as e:
        if path.is_dir():  # Windows raises PermissionError for directories
            raise DataError(f"{path}: is a directory, expected a CoNLL file") from None
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    lineno = 0
    with f:
        first = True
        while True:
            try:
                data = f.readline()
            except OSError as e:
                raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
            if not data:
                return
            if first and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                # The bad byte is on the first line of this chunk unless
                # lone "\r"s came before it.
                bad = data[: e.start].count(b"\r") - data[: e.start].count(b"\r\n")
                raise DataError(f"{path}:{lineno + 1 + bad}: not valid UTF-8") from None
            if text.endswith("\n"):
                text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
            for line in text.split("\r") if "\r" in text else (text,):
                lineno += 1
                yield lineno, line


def iter_conll(path: str | Path, *, labeled: bool | None = None) -> Generator[Sentence, None, None]:
    """Yield the sentences of a CoNLL file one by one, reading only as far as needed.

    Token first column, tag last column, blank line (or ``-DOCSTART-``)
    between sentences. ``labeled=None`` decides from the first token line:
    with a single column the file is unlabeled (tags None), and a later line
    with a tag column is an error. ``labeled=False`` ignores any tag columns.
    Tags are validated and converted to IOB2. Errors are DataError
    ``PATH:LINE: ...``, raised when the reader reaches the line, so a caller
    that stops early never sees errors further down the file.
    """
    path = Path(path)
    spath = str(path)
    valid: set[str] = set()  # tags already checked; files reuse a handful
    first_token_line = 0
    group: list[tuple[int, list[str]]] = []
    index = 0

    def build() -> Sentence:
        tokens = [cols[0] for _, cols in group]
        tags: list[str] | None = None
        if labeled:
            tags = []
            for lineno, cols in group:
                if len(cols) == 1:
                    raise DataError(f"{path}:{lineno}: expected 'token TAG', got 1 column")
                tag = cols[-1]
                if tag not in valid:
                    if not _TAG_RE.match(tag):
                        raise DataError(f"{path}:{lineno}: invalid tag {tag!r} ({_tag_problem(tag)})")
                    valid.add(tag)
                tags.append(tag)
            tags = iob2(tags)
        return Sentence.from_tokens(tokens, tags, index=index, path=spath, line=group[0][0])

    for lineno, raw in _iter_lines(path):
        cols = conll_columns(raw)
        if not cols or raw.isspace() or cols[0].startswith(_DOCSTART):
            if group:
                yield build()
                index += 1
                group = []
            continue
        if labeled is None:
            labeled = len(cols) > 1
            first_token_line = lineno
        elif first_token_line and not labeled and len(cols) > 1:
            raise DataError(
                f"{path}:{lineno}: {len(cols)} columns, but the first token line "
                f"(line {first_token_line}) has no tag: give every token a tag, or none"
            )
        group.append((lineno, cols))
    if group:
        yield build()
        index += 1
    if index == 0:
        raise DataError(f"{path}: no sentences found")


def read_conll(
    path: str | Path, *, labeled: bool | None = None, limit: int | None = None
) -> list[Sentence]:
    """Read a CoNLL file (see :func:`iter_conll`); with ``limit``, only its first ``limit`` sentences.

    The file is read no further than the end of the last sentence returned,
    so a limit costs time and memory for those sentences only.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    out: list[Sentence] = []
    if limit == 0:
        return out
    sentences = iter_conll(path, labeled=labeled)
    try:
        for sentence in sentences:
            out.append(sentence)
            if len(out) == limit:
                break
    finally:
        sentences.close()
    return out


def write_conll(
    path: str | Path,
    sentences: Sequence[Sentence],
    predicted: Sequence[Sequence[str]],
) -> None:
    """Write ``token GOLD PRED`` lines (GOLD is ``-`` when unlabeled) for inspection and re-scoring.

    Tokens are written exactly as read, so the file reads back to the same
    tokens. Raises ValueError if predictions do not line up with the
    sentences or a token cannot be a CoNLL column -- neither happens for
    sentences from :func:`read_conll` or :meth:`Sentence.from_tokens`, which
    check tokens on the way in.
    """
    if len(predicted) != len(sentences):
        raise ValueError(
            f"{len(sentences)} sentences but {len(predicted)} prediction lists"
        )
    lines: list[str] = []
    for sent, pred in zip(sentences, predicted, strict=True):
        if len(pred) != len(sent.tokens):
            raise ValueError(
                f"sentence {sent.index}: {len(sent.tokens)} tokens but {len(pred)} predicted tags"
            )
        gold = sent.tags if sent.tags is not None else ("-",) * len(sent.tokens)
        for tok, g, p in zip(sent.tokens, gold, pred, strict=True):
            problem = conll_token_problem(tok)
            if problem:
                raise ValueError(f"sentence {sent.index}: token {tok!r} {problem}")
            lines.append(f"{tok} {g} {p}\n")
        lines.append("\n")
    # The reader drops one BOM at the start of a file: protect a token that starts with one.
    if lines and lines[0].startswith(_BOM):
        lines.insert(0, _BOM)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8", newline="\n")
