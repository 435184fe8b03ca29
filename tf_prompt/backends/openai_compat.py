"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LiteLLM...).

A thin layer over the official `openai` SDK: the SDK's own retries are off (`max_retries=0`) so
that the caller's retry policy is the only one and attempts never multiply. SDK exceptions are
turned into BackendError with a one-line message that says what to fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import openai

from .base import Backend, BackendError, Completion

#: Used when a local server needs no key but the SDK insists on one.
PLACEHOLDER_KEY = "sk-no-key-required"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait as the server asked (`retry-after-ms` or `retry-after`), if it said."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        s = headers.get("retry-after")
        if s is not None:
            return max(0.0, float(s))
    except (TypeError, ValueError):
        return None
    return None


def translate_error(e: Exception, base_url: str | None) -> BackendError:
    """Map an SDK exception to a BackendError: retryable or not, with an actionable message."""
    where = base_url or "the OpenAI API"
    if isinstance(e, openai.APITimeoutError):
        return BackendError(f"request to {where} timed out", retryable=True)
    if isinstance(e, openai.APIConnectionError):
        return BackendError(f"cannot connect to {where}: {e.__cause__ or e}", retryable=True)
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        body = e.body if isinstance(e.body, dict) else {}
        code = body.get("code") or (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        msg = (body.get("message") if isinstance(body, dict) else None) or str(e)
        msg = " ".join(str(msg).split())[:300]
        if status == 429 and code == "insufficient_quota":
            return BackendError(f"{where}: insufficient quota (HTTP 429): add credit or use another key. {msg}",
                                status=status)
        if status == 429:
            return BackendError(f"{where}: rate limited (HTTP 429)", retryable=True,
                                retry_after=_retry_after(e.response.headers), status=status)
        if status in (408, 409) or status >= 500:
            return BackendError(f"{where}: server error (HTTP {status})", retryable=True,
                                retry_after=_retry_after(e.response.headers), status=status)
        hints = {
            401: "check OPENAI_API_KEY (or --api-key-env)",
            403: "the key is not allowed to use this model or endpoint",
            404: "check --model and --base-url",
            400: "the request was rejected; check the model's parameters",
        }
        hint = hints.get(status, "the request was rejected")
        return BackendError(f"{where}: HTTP {status}: {hint}. {msg}", status=status)
    return BackendError(f"{where}: {type(e).__name__}: {e}")


def parse_chat_reply(raw: bytes | str, base_url: str | None) -> Completion:
    """A chat.completion JSON reply as a Completion; a reply that is not one is a one-line,
    retryable BackendError (a proxy or an overloaded server can cut a reply short)."""
    where = base_url or "the OpenAI API"
    try:
        data = json.loads(raw)
    except ValueError:
        head = " ".join(bytes(raw[:80]).decode("utf-8", "replace").split()) if isinstance(raw, bytes) else raw[:80]
        raise BackendError(f"{where}: reply is not valid JSON: {head!r}", retryable=True) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise BackendError(f"{where}: reply had no choices", retryable=True)
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise BackendError(f"{where}: reply content is {type(content).__name__}, not text", retryable=True)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(
        text=content or "",
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
    )


def _count(value: Any) -> int | None:
    """A token count from the reply's usage, None when absent or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class OpenAIBackend(Backend):
    """Chat completions through the `openai` SDK."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    kind: str = field(default="openai", init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise BackendError(
                    "no API key: set OPENAI_API_KEY, or give --base-url for a local OpenAI-compatible server"
                )
            key = PLACEHOLDER_KEY
        self._client_options = {"api_key": key, "base_url": self.base_url, "max_retries": 0, "timeout": self.timeout}
        self._sdk: openai.AsyncOpenAI | None = None

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The SDK client, made on the first request: creating it loads the CA bundle (about
        30 ms, the largest fixed cost of a fully cached rerun, which never sends a request)."""
        if self._sdk is None:
            self._sdk = openai.AsyncOpenAI(**self._client_options)
        return self._sdk

    @_client.setter
    def _client(self, client: openai.AsyncOpenAI) -> None:
        self._sdk = client

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model,
                "base_url": (self.base_url or "https://api.openai.com/v1").rstrip("/")}

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        """One chat completion, sent as a plain JSON body through the SDK's low-level `post`.

        `chat.completions.create` walks every argument through the SDK's typed transform and
        builds a pydantic ChatCompletion from the reply: 0.6-1.2 ms of CPU per call, about what
        all of tf-prompt's own work for a call costs. Our messages and parameters
        are already plain JSON, so they go as they are; `post` is the same client (same auth
        header, timeout, retries off) and raises the same openai exception types for HTTP
        errors, timeouts and connection failures, which translate_error maps as before.
        """
        body = {"model": self.model, "messages": messages, **params}
        try:
            raw = await self._client.post("/chat/completions", body=body, cast_to=bytes,
                                          options={"security": {"bearer_auth": True}})
        except openai.OpenAIError as e:
            raise translate_error(e, self.base_url) from None
        return parse_chat_reply(raw, self.base_url)

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
