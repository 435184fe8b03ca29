"""A scriptable server on 127.0.0.1 speaking Anthropic's Messages API, for tests and demos.

The real `anthropic` SDK talks to it over real HTTP (`base_url=server.base_url`, no `/v1`: the
SDK adds it). It answers POST /v1/messages with the reply a `responder` gives (the same
responders as the OpenAI loopback, e.g. `oracle_responder`: they are handed the request in chat
form, system first), checks what the real API would refuse (no max_tokens, empty text blocks,
more than 4 cache breakpoints, a missing or wrong key), and fails any attempt a `fault`
function asks for with Anthropic's error shapes (`error_body`).

Its usage behaves like Anthropic's prompt cache: the prefix up to the last `cache_control`
breakpoint is written on its first sight (`cache_creation_input_tokens`) and read on every
later request with the same prefix (`cache_read_input_tokens`), if it has at least
`cache_min_tokens` tokens; `input_tokens` counts only the rest, as Anthropic does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tf_prompt.testing import Fault, Responder, approx_tokens
from tf_prompt.testing.http import JsonHTTPServer, Reply

#: Anthropic's error type for each status it uses.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}

FaultFn = Callable[[dict[str, Any], int], "Fault | None"]


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape: {"type": "error", "error": {"type": ..., "message": ...}}."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or f"injected {kind}"}}


def overloaded(retry_after: float | None = None) -> Fault:
    """HTTP 529 overloaded_error, as Anthropic answers when its models are saturated."""
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return Fault(529, error_body(529, "Overloaded"), headers)


def rate_limited(retry_after: float = 0.0) -> Fault:
    """HTTP 429 rate_limit_error with a retry-after header (seconds)."""
    return Fault(429, error_body(429, "Number of request tokens has exceeded your per-minute rate limit"),
                 {"retry-after": str(retry_after)})


def no_credit() -> Fault:
    """HTTP 400 invalid_request_error about the credit balance, as Anthropic words it."""
    return Fault(400, error_body(400, "Your credit balance is too low to access the Anthropic API. Please go "
                                      "to Plans & Billing to upgrade or purchase credits."))


def _texts(content: Any) -> list[dict[str, Any]]:
    """A message's content as text blocks (a plain string is one block without cache_control)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


class AnthropicLoopback(JsonHTTPServer):
    """`with AnthropicLoopback(responder) as srv: AsyncAnthropic(base_url=srv.base_url, api_key="k")`."""

    def __init__(self, responder: Responder | None = None, *, fault: FaultFn | None = None,
                 api_key: str | None = None, cache_min_tokens: int = 0,
                 count_tokens: Callable[[str], int] = approx_tokens):
        super().__init__()
        self.responder = responder or (lambda body: '{"entities": []}')
        self.fault = fault
        self.api_key = api_key                 # when set, any other x-api-key gets 401
        self.cache_min_tokens = cache_min_tokens
        self.count_tokens = count_tokens
        self.requests: list[dict[str, Any]] = []     # every /v1/messages body received (incl. failed)
        self.headers: list[dict[str, str]] = []      # their headers
        self.served = 0
        self.faulted = 0
        self.cache_read_tokens = 0                   # over successful replies
        self.cache_write_tokens = 0
        self.input_tokens = 0
        self._prefixes: set[str] = set()             # digests of the prefixes written to the "cache"
        self._lock = threading.Lock()

    def answer_post(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        if urlsplit(path).path.rstrip("/") != "/v1/messages":
            return 404, error_body(404, f"no route {path}"), {}
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, error_body(400, "invalid JSON"), {}
        return self._answer(body, headers)

    # -- one request -----------------------------------------------------------------------
    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            attempt = len(self.requests)
            self.requests.append(body)
            self.headers.append(headers)
        # the key as `x-api-key`, or as `Authorization: Bearer` (how anthropic SDK 2.x sends it)
        bearer = headers.get("authorization", "")
        sent = headers.get("x-api-key") or (bearer[len("Bearer "):] if bearer.startswith("Bearer ") else None)
        if self.api_key is not None and sent != self.api_key:
            return 401, error_body(401, "invalid x-api-key"), {}
        if "anthropic-version" not in headers:
            return 400, error_body(400, "anthropic-version: header is required"), {}
        problem = self._invalid(body)
        if problem:
            return 400, error_body(400, problem), {}
        fault = self.fault(body, attempt) if self.fault else None
        if fault is not None:
            with self._lock:
                self.faulted += 1
            if fault.delay:
                time.sleep(fault.delay)
            return fault.status, fault.body or error_body(fault.status), fault.headers
        chat = [{"role": "system", "content": "".join(b.get("text", "") for b in _texts(body.get("system")))}]
        chat = [m for m in chat if m["content"]] + [
            {"role": m["role"], "content": "".join(b.get("text", "") for b in _texts(m.get("content")))}
            for m in body["messages"]]
        try:
            text = self.responder({"model": body.get("model"), "messages": chat})
        except Exception as e:
            return 500, error_body(500, f"responder failed: {e!r}"), {}
        read, write, rest = self._cache_usage(body)
        out = self.count_tokens(text)
        with self._lock:
            self.served += 1
            self.cache_read_tokens += read
            self.cache_write_tokens += write
            self.input_tokens += rest
        return 200, {
            "id": f"msg_loopback_{attempt}", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": rest, "output_tokens": out, "cache_creation_input_tokens": write,
                      "cache_read_input_tokens": read},
        }, {}

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        """What the real API would reject in `body` (a 400), or None."""
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        if any(m.get("role") not in ("user", "assistant") for m in messages):
            return "messages: roles must be user or assistant (the system prompt goes in `system`)"
        blocks = _texts(body.get("system")) + [b for m in messages for b in _texts(m.get("content"))]
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return "messages: text content blocks must be non-empty"
        if sum(1 for b in blocks if "cache_control" in b) > 4:
            return "A maximum of 4 blocks with cache_control may be provided"
        return None

    def _cache_usage(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(cache read, cache write, other input tokens) of a request: the prefix up to the last
        block with cache_control is read if an earlier request wrote it, else written."""
        pieces: list[tuple[str, bool]] = []   # (text with its role, marked)
        pieces += [("system:" + b.get("text", ""), "cache_control" in b) for b in _texts(body.get("system"))]
        for m in body["messages"]:
            pieces += [(f"{m['role']}:" + b.get("text", ""), "cache_control" in b) for b in _texts(m.get("content"))]
        last = max((i for i, (_, marked) in enumerate(pieces) if marked), default=-1)
        prefix = [p for p, _ in pieces[:last + 1]]
        rest = [p for p, _ in pieces[last + 1:]]
        prefix_tokens = sum(self.count_tokens(p) for p in prefix)
        rest_tokens = sum(self.count_tokens(p) for p in rest)
        if last < 0 or prefix_tokens < self.cache_min_tokens:
            return 0, 0, prefix_tokens + rest_tokens
        digest = hashlib.sha256(json.dumps([body.get("model"), prefix]).encode("utf-8")).hexdigest()
        with self._lock:
            if digest in self._prefixes:
                return prefix_tokens, 0, rest_tokens
            self._prefixes.add(digest)
        return 0, prefix_tokens, rest_tokens
