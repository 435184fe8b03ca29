"""The types every stage shares: what a sentence's answer is made of, what went wrong, and what a
translator or annotator component must provide.

This module imports nothing else of the package (the one name it needs from `data`, Sentence, is
imported for type checkers only), so any layer may import it without pulling in another: the
parser, the aligner, the backends and the methods all meet here instead of importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tf_prompt.data.conll import Sentence


@dataclass(frozen=True)
class Mention:
    """One entity mention as the model reported it (text is not aligned to tokens here)."""

    text: str
    label: str


class ParseFailure(ValueError):
    """The reply could not be read as a list of entities.

    The pipeline counts it as a parse failure for that sentence.
    """


@dataclass(frozen=True)
class Span:
    """A labelled character span; ``text`` is always ``source[start:end]``."""

    start: int
    end: int
    label: str
    text: str
    match: str  # "exact" | "case" | "normalized" | "fuzzy"


class BackendError(RuntimeError):
    """A call failed. `retryable` says whether trying again can help (rate limit, 5xx, timeout).

    `str()` is one line meant for the user, saying what to fix when it cannot be retried.
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
                 status: int | None = None, timed_out: bool = False, unreachable: bool = False,
                 not_an_api: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        #: no answer within the timeout: a weaker sign of a dead endpoint than a refused connection
        #: (a slow first reply, a loaded machine), so the breaker wants it repeated on one call
        self.timed_out = timed_out
        #: nobody there for certain (connection refused, host name not found); a dropped or reset
        #: connection is not that (a server restarting, a proxy hiccup) and is treated like a timeout
        self.unreachable = unreachable
        #: something answered, but not with an API reply (a web page, text that is not JSON):
        #: before any request of the run succeeded, the sign of a wrong --base-url
        self.not_an_api = not_an_api


class DataError(ValueError):
    """Bad input data.

    ``str(e)`` is always ``'PATH:LINE: what is wrong'`` (or ``'PATH: ...'``
    when no line applies) so the CLI can print it as a single line.
    """


class TemplateError(ValueError):
    """A template is missing, malformed or uses an undefined variable; str() names the file."""


@dataclass
class Trace:
    """Everything that happened to one sentence, written as one line of trace.jsonl."""

    index: int
    source: str
    translation: str | None = None
    english_entities: list[dict[str, str]] | None = None
    replies: dict[str, str] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)
    parse_failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    parsed: list[dict[str, str]] = field(default_factory=list)
    unknown_labels: list[dict[str, str]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    hallucinated: list[dict[str, str]] = field(default_factory=list)
    unaligned: list[dict[str, str]] = field(default_factory=list)
    gold: list[str] | None = None
    predicted: list[str] = field(default_factory=list)
    failed: bool = False
    missing: list[str] = field(default_factory=list)   # parts a structured reply lacked
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> {size, item, fallback}
    views: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # --combine: each view's spans
    combine: str | None = None
    constraints: dict[str, str] = field(default_factory=dict)  # --constrain: step -> json | spans | json (why)
    pivot_skipped: str | None = None   # --pivot-check: why the translation was not pivoted through

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Result:
    """The outcome of one sentence: predicted tags and spans, plus the trace."""

    sentence: Sentence
    tags: list[str]
    spans: list[Span]
    trace: Trace


class SentenceFailed(Exception):
    """A model call for this sentence failed after all retries (recorded in its trace)."""


class Translator(Protocol):
    async def translate(self, sentence: Sentence, trace: Trace) -> str | None: ...


class Annotator(Protocol):
    async def annotate(self, english: str, sentence: Sentence, trace: Trace) -> list[Mention] | None: ...
