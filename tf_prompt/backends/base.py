"""The one interface every model backend implements: chat messages in, reply text out.

Backends know nothing of NER, templates or caching; they only talk to a model. What the rest of
the system needs from them is `complete()` and an `identity()` that says which model at which
endpoint answered, so cached replies of two endpoints serving the same model name never mix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Completion:
    """A model reply with the token usage the backend reported (None where it reports nothing)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    cached: bool = False


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


@dataclass
class Backend(ABC):
    """Base class: subclasses set `kind` and implement `complete`."""

    model: str
    kind: str = field(default="base", init=False)

    def identity(self) -> dict[str, Any]:
        """What distinguishes this backend's replies (never secrets such as API keys)."""
        return {"kind": self.kind, "model": self.model}

    def tokenizer(self) -> Any | None:
        """The model's own token counter (a tf_prompt.cost.Tokenizer), if the backend has one.

        Local backends know their tokenizer exactly; remote ones return None and the client
        falls back to tiktoken by model name.
        """
        return None

    @abstractmethod
    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        """Send one chat request; raise BackendError on failure."""

    async def aclose(self) -> None:
        """Release connections; the default has nothing to release."""
