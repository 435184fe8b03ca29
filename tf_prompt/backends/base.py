"""The one interface every model backend implements: chat messages in, reply text out.

Backends know nothing of NER, templates or caching; they only talk to a model. What the rest of
the system needs from them is `complete()` and an `identity()` that says which model at which
endpoint answered, so cached replies of two endpoints serving the same model name never mix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from tf_prompt.types import BackendError

# BackendError is defined with the shared types and re-exported here: backends raise it.
__all__ = ["Backend", "BackendError", "Completion"]


@dataclass(frozen=True)
class Completion:
    """A model reply with the token usage the backend reported (None where it reports nothing).

    `prompt_tokens` counts every input token, those the provider's prompt cache served or
    stored included: `cache_read_tokens` of them were read from the provider's cache (billed at
    its cached-input price), `cache_write_tokens` were written to it (Anthropic bills writes
    above the input price; OpenAI caches automatically and reports no writes).
    """

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    cached: bool = False
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass
class Backend(ABC):
    """Base class: subclasses set `kind` and implement `complete`."""

    model: str
    kind: str = field(default="base", init=False)

    def identity(self) -> dict[str, Any]:
        """What distinguishes this backend's replies (never secrets such as API keys)."""
        return {"kind": self.kind, "model": self.model}

    def tokenizer(self) -> Any | None:
        """The model's own token counter (a tf_prompt.llm.cost.Tokenizer), if the backend has one.

        Local backends know their tokenizer exactly; remote ones return None and the client
        falls back to tiktoken by model name.
        """
        return None

    @abstractmethod
    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        """Send one chat request; raise BackendError on failure."""

    async def complete_prompt(self, messages: list[dict[str, str]], params: dict[str, Any],
                              fixed: int = 0) -> Completion:
        """`complete`, told that the first `fixed` characters of the last message's content are
        the same for every sentence of the run (guidelines, examples: prompting/templates.py);
        negative: nothing is (an earlier message already holds the sentence's data).

        A provider whose prompt cache must be told where the shared prefix ends (Anthropic's
        `cache_control`) marks it there; the default ignores the hint: OpenAI caches prefixes
        on its own, local engines do not bill. The messages are sent unchanged either way.
        """
        return await self.complete(messages, params)

    async def aclose(self) -> None:  # noqa: B027 -- optional hook, not abstract: most backends hold nothing
        """Release connections; the default has nothing to release."""
