"""A Gemini REST API on 127.0.0.1 for tests: the real `google-genai` SDK talks to it over HTTP.

It serves `POST /v1beta/models/{model}:generateContent` as the SDK sends it (`x-goog-api-key`
header, `contents`, `systemInstruction`, `generationConfig`) and answers with a
GenerateContentResponse (`candidates`, `usageMetadata` with prompt, candidate, thinking and cached
token counts, `modelVersion`). The reply text comes from the same `responder` the OpenAI loopback
uses (e.g. `oracle_responder`), given the request as chat messages. Errors take Google's shape,
`{"error": {"code", "status", "message", "details"}}`, from a `fault` function, the helpers below
build the usual ones (429 with RetryInfo, an invalid key, an unknown model); `block` makes a
prompt come back blocked (`promptFeedback.blockReason`) or an answer stopped (`finishReason`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tf_prompt.testing import Fault, Responder, approx_tokens
from tf_prompt.testing.http import JsonHTTPServer, Reply

#: (chat body, attempt number) -> a Fault to answer with instead, or None
GeminiFault = Callable[[dict[str, Any], int], "Fault | None"]
#: chat body -> None (answer), ("prompt", REASON) (promptFeedback.blockReason) or ("finish", REASON)
Block = Callable[[dict[str, Any]], "tuple[str, str] | None"]

_ROUTE = re.compile(r"^/(v1beta|v1)/models/([^/:]+):generateContent$")


def gemini_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> Fault:
    """A Fault answering with Google's error body."""
    return Fault(code, {"error": {"code": code, "status": status, "message": message, "details": details or []}},
                 headers or {})


def quota_error(retry_delay: str = "0.05s") -> Fault:
    """429 RESOURCE_EXHAUSTED with a RetryInfo asking to wait `retry_delay`."""
    return gemini_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan.",
                        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}])


def bad_key_error() -> Fault:
    """What the API answers for a key it does not know (400 INVALID_ARGUMENT, API_KEY_INVALID)."""
    return gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                          "domain": "googleapis.com"}])


class GeminiServer(JsonHTTPServer):
    """`with GeminiServer(responder, key="k") as srv:` then
    `genai.Client(api_key="k", http_options={"base_url": srv.base_url})`.

    `key`: the only key accepted (others get bad_key_error); None accepts any. `models`: the
    model names served (others get 404 NOT_FOUND); None serves any. `cached_tokens`: the
    cachedContentTokenCount reported per reply; `thoughts_tokens`: its thoughtsTokenCount.
    """

    def __init__(self, responder: Responder | None = None, *, key: str | None = None,
                 models: set[str] | None = None, fault: GeminiFault | None = None, block: Block | None = None,
                 cached_tokens: int = 0, thoughts_tokens: int = 0,
                 count_tokens: Callable[[str], int] = approx_tokens):
        super().__init__()
        self.responder = responder or (lambda body: '{"entities": []}')
        self.key = key
        self.models = models
        self.fault = fault
        self.block = block
        self.cached_tokens = cached_tokens
        self.thoughts_tokens = thoughts_tokens
        self.count_tokens = count_tokens
        self.requests: list[dict[str, Any]] = []      # every generateContent body received, as sent
        self.keys: list[str | None] = []              # the x-goog-api-key of each request
        self.paths: list[str] = []                    # the path (and query) of each request
        self.served = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._lock = threading.Lock()

    def answer_post(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        return self._handle(path, headers.get("x-goog-api-key"), raw)

    def _handle(self, path: str, key: str | None, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.keys.append(key)
            self.paths.append(path)
        m = _ROUTE.match(urlsplit(path).path)
        if m is None:
            return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"no route {path}"}}, {}
        model = m.group(2)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "invalid JSON"}}, {}
        with self._lock:
            attempt = len(self.requests)
            self.requests.append(body)
        chat = self.as_chat(model, body)
        fault = self.fault(chat, attempt) if self.fault else None
        if fault is None and self.key is not None and key != self.key:
            fault = bad_key_error()
        if fault is None and self.models is not None and model not in self.models:
            fault = gemini_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is "
                                 "not supported for generateContent.")
        if fault is not None:
            if fault.delay:   # a slow server: the client's timeout fires first
                time.sleep(fault.delay)
            return fault.status, fault.body or {}, fault.headers
        p_tok = self.count_tokens("".join(m["content"] for m in chat["messages"]))
        usage = {"promptTokenCount": p_tok, "totalTokenCount": p_tok}
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        blocked = self.block(chat) if self.block else None
        if blocked is not None and blocked[0] == "prompt":
            return 200, {"promptFeedback": {"blockReason": blocked[1]}, "usageMetadata": usage,
                         "modelVersion": model}, {}
        text = "" if blocked is not None else self.responder(chat)
        c_tok = self.count_tokens(text) if text else 0
        usage.update(candidatesTokenCount=c_tok, totalTokenCount=p_tok + c_tok + self.thoughts_tokens)
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        parts = [{"text": "thinking about it", "thought": True}] if self.thoughts_tokens else []
        if text:
            parts.append({"text": text})
        with self._lock:
            self.served += 1
            self.prompt_tokens += p_tok
            self.completion_tokens += c_tok + self.thoughts_tokens
        return 200, {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0,
                                     "finishReason": blocked[1] if blocked else "STOP"}],
                     "usageMetadata": usage, "modelVersion": model, "responseId": f"loopback-{attempt}"}, {}

    @staticmethod
    def as_chat(model: str, body: dict[str, Any]) -> dict[str, Any]:
        """A generateContent body as the OpenAI chat body a responder reads: systemInstruction as a
        system message, `model` turns as assistant ones, generationConfig alongside."""
        messages: list[dict[str, str]] = []
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, dict):
            messages.append({"role": "system", "content": "".join(p.get("text", "") for p in system.get("parts", []))})
        for content in body.get("contents", []):
            role = "assistant" if content.get("role") == "model" else "user"
            messages.append({"role": role, "content": "".join(p.get("text", "") for p in content.get("parts", []))})
        return {"model": model, "messages": messages, "generationConfig": body.get("generationConfig") or {}}
