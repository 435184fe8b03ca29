"""Anthropic's Messages API through the official `anthropic` SDK (`--model anthropic:NAME`).

Like the OpenAI backend (openai_compat.py), a thin layer: the SDK's own retries are off
(`max_retries=0`) so tf-prompt's retry policy (llm/retry.py) is the only one, and every SDK
exception becomes a BackendError with one line that says what to fix: 429 and 529 (overloaded)
are retried after the time the server asks for; a bad key (401), a refused permission (403), an
unknown model (404) and an empty credit balance (400) stop the run at once.

Keys: read from the variable the user named (`--api-key-env`) or ANTHROPIC_API_KEY, and from
nowhere else (never OPENAI_API_KEY: CLI's default --api-key-env names that variable, and it is
read here as "not named"). A named variable that is unset is an error before any call. The key is
given to the SDK explicitly, so the SDK never looks for credentials of its own (profiles,
credential files), and it is sent only to the base URL (`--base-url`, else $ANTHROPIC_BASE_URL,
else Anthropic's).

Prompt caching: the chat messages tf-prompt renders (a system message and one user message) are
sent as they are, with one `cache_control: {"type": "ephemeral"}` breakpoint where the part that
is the same for every sentence ends (Prompt.fixed: the guidelines and examples before the
sentence), so the provider reads that prefix from its cache after the first call instead of
billing it in full. The usage of the reply says how many input tokens were read from and written
to the cache; they are carried in the Completion and priced as such (llm/cost.py).

Structured output (`--constrain json|spans`, OpenAI's `response_format`) is refused in one line:
the Messages API has no such parameter, and a silent fallback to free answers would record
unconstrained replies as constrained ones (the rule openai_compat.schema_rejected follows).
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from typing import Any

import anthropic

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.blocked import blocked_finish
from tf_prompt.backends.openai_compat import (
    ANTHROPIC_URL,
    LOCAL,
    PLACEHOLDER_KEY,
    UNREACHABLE,
    _connection_cause,
    _retry_after,
    _url_problem,
    check_api_key,
    mask_key,
)
from tf_prompt.util.redact import mask_secret, redact_text, redact_url

#: The variable read when the user names none.
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"
# ANTHROPIC_URL (openai_compat): where requests go without a base URL. The SDK adds the API
# version to the path (`/v1/messages`), so a base URL has no `/v1`.
#: The Messages API requires `max_tokens`; used when the run sets none (`--max-tokens`).
DEFAULT_MAX_TOKENS = 1024
#: The mark that ends the cached prefix.
CACHE_CONTROL = {"type": "ephemeral"}
#: Parameters tf-prompt sends that the Messages API takes under the same name.
_SAME_NAME = ("temperature", "top_p", "top_k", "max_tokens")
#: Stop reasons in OpenAI's words, so traces read the same whichever provider answered.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def read_api_key(env: str | None, base_url: str | None) -> str:
    """The key in variable `env` (None: ANTHROPIC_API_KEY), for an endpoint at `base_url` (None:
    Anthropic itself). A variable the user named must be set: falling back to another would send
    that key to an endpoint it was never meant for. A base URL without any key gets a placeholder
    (a local proxy or test server that needs none)."""
    env = env or ANTHROPIC_KEY_ENV
    key = os.environ.get(env)
    if key:
        check_api_key(key, f"the key in ${env}")
        return key
    if env != ANTHROPIC_KEY_ENV:
        raise BackendError(f"--api-key-env {env}: the environment variable {env} is not set or is empty; "
                           f"export it, or leave out --api-key-env to use {ANTHROPIC_KEY_ENV}")
    if base_url is None:
        raise BackendError(f"no API key for anthropic: set {ANTHROPIC_KEY_ENV} (or name another variable "
                           f"with --api-key-env)")
    return PLACEHOLDER_KEY


def key_env_for(named: str | None) -> str:
    """The variable an `anthropic:` model reads its key from, given `--api-key-env`: the CLI's
    default (OPENAI_API_KEY) counts as not named, so an OpenAI key is never sent to Anthropic."""
    return named if named and named != "OPENAI_API_KEY" else ANTHROPIC_KEY_ENV


def check_params(params: dict[str, Any], where: str = "anthropic") -> None:
    """Refuse, in one line before any call, a parameter the Messages API cannot take."""
    if "response_format" in params:
        raise BackendError(f"{where}: --constrain json|spans (structured output) is not supported with "
                           f"anthropic: models: run with --constrain none")
    if "seed" in params:
        raise BackendError(f"{where}: the Messages API has no seed parameter: leave out --seed")
    temperature = params.get("temperature")
    if isinstance(temperature, (int, float)) and not 0 <= temperature <= 1:
        raise BackendError(f"{where}: --temperature {temperature}: Anthropic models take 0 to 1")
    unknown = sorted(k for k in params if k not in (*_SAME_NAME, "stop"))
    if unknown:
        raise BackendError(f"{where}: parameter(s) {', '.join(unknown)} have no Messages API equivalent")


def request_body(model: str, messages: list[dict[str, str]], params: dict[str, Any], fixed: int) -> dict[str, Any]:
    """The Messages API body for chat `messages`: system messages as `system`, the rest as
    `messages`, the cache breakpoint after the first `fixed` characters of the last message (or,
    with none, on the system prompt; with a negative `fixed`, nothing shared, no breakpoint).
    The text sent is exactly the messages' text."""
    check_params(params)
    system: list[dict[str, Any]] = [{"type": "text", "text": m["content"]} for m in messages
                                    if m["role"] == "system"]
    turns: list[dict[str, Any]] = [{"role": m["role"], "content": m["content"]}
                                   for m in messages if m["role"] != "system"]
    marked = fixed < 0   # nothing is the same for every sentence (Prompt.fixed): no mark would be read
    if turns and fixed > 0:
        content = turns[-1]["content"]
        head, tail = content[:fixed], content[fixed:]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": head, "cache_control": CACHE_CONTROL}]
        if tail:
            blocks.append({"type": "text", "text": tail})
        turns[-1]["content"] = blocks
        marked = True
    if system and not marked:
        system[-1]["cache_control"] = CACHE_CONTROL
    body: dict[str, Any] = {"model": model, "messages": turns,
                            "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    for name in _SAME_NAME:
        if name in params and name != "max_tokens":
            body[name] = params[name]
    if params.get("stop"):
        stop = params["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return body


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_reply(raw: bytes | str, where: str) -> Completion:
    """A Messages API reply as a Completion. `prompt_tokens` is every input token: the reply's
    `input_tokens` counts only those after the last cache breakpoint, so the cache's reads and
    writes are added. A reply that is not one is a retryable one-line error (as in
    openai_compat.parse_chat_reply)."""
    try:
        data = json.loads(raw)
    except ValueError:
        head = " ".join(bytes(raw[:80]).decode("utf-8", "replace").split()) if isinstance(raw, bytes) else raw[:80]
        raise BackendError(f"{where}: reply is not valid JSON: {head!r}", retryable=True, status=200,
                           not_an_api=True) from None
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list):
        raise BackendError(f"{where}: reply had no content", retryable=True, status=200, not_an_api=True)
    text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    read = _count(usage.get("cache_read_input_tokens")) or 0
    write = _count(usage.get("cache_creation_input_tokens")) or 0
    fresh = _count(usage.get("input_tokens"))
    stop = data.get("stop_reason")
    if stop == "refusal":   # a safety classifier stopped the reply: no answer (blocked.py), still billed
        text, stop = "", blocked_finish("stop_reason refusal")
    return Completion(
        text=text,
        prompt_tokens=None if fresh is None else fresh + read + write,
        completion_tokens=_count(usage.get("output_tokens")),
        finish_reason=_FINISH.get(stop, stop) if isinstance(stop, str) else None,
        model=data.get("model"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def translate_error(e: Exception, where: str, key: str | None = None) -> BackendError:
    """An SDK exception as a BackendError: retryable or not, one line saying what to fix; URLs in
    it masked, and the key, should any text quote it, too."""
    err = _translate(e, where)
    safe = redact_text(str(err))
    if key and key != PLACEHOLDER_KEY:
        safe = mask_secret(safe, key)
    if safe != str(err):
        err.args = (safe,)
    return err


def _translate(e: Exception, where: str) -> BackendError:
    if isinstance(e, anthropic.APITimeoutError):
        return BackendError(f"request to {where} timed out", retryable=True, timed_out=True)
    if isinstance(e, anthropic.APIConnectionError):
        cause, kind = _connection_cause(e)
        if kind == LOCAL:
            return BackendError(f"{where}: {cause}; check the settings (API key, decoding parameters)")
        return BackendError(f"cannot connect to {where}: {cause}", retryable=True, unreachable=kind == UNREACHABLE)
    if not isinstance(e, anthropic.APIStatusError):
        return BackendError(f"{where}: {type(e).__name__}")
    status = e.status_code
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error")
    inner: dict[str, Any] = error if isinstance(error, dict) else {}
    kind = str(inner.get("type") or "")
    msg = " ".join(str(inner.get("message") or body.get("message") or "").split())[:300]
    wait = _retry_after(e.response.headers)
    if status == 429:
        return BackendError(f"{where}: rate limited (HTTP 429)", retryable=True, retry_after=wait, status=status)
    if status == 529 or kind == "overloaded_error":
        return BackendError(f"{where}: overloaded (HTTP {status})", retryable=True, retry_after=wait, status=status)
    if status in (408, 409) or status >= 500:
        return BackendError(f"{where}: server error (HTTP {status})", retryable=True, retry_after=wait,
                            status=status)
    if status == 400 and "credit balance" in msg.lower():
        return BackendError(f"{where}: HTTP 400: the account's credit balance is too low: add credit (Plans & "
                            f"Billing) or use another key. {msg}", status=status)
    hints = {
        401: f"authentication failed: check {ANTHROPIC_KEY_ENV} (or --api-key-env)",
        403: "the key is not allowed to use this model or endpoint",
        404: "model or endpoint not found: check --model (e.g. anthropic:claude-sonnet-4-5) and --base-url",
        413: "the request is too large",
        400: "the request was rejected; check the model's parameters",
    }
    return BackendError(f"{where}: HTTP {status}: {hints.get(status, 'the request was rejected')}. {msg}".rstrip(),
                        status=status)


@dataclass
class AnthropicBackend(Backend):
    """Messages through the `anthropic` SDK."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: Where the key is read when `api_key` is not given (see read_api_key).
    api_key_env: str | None = ANTHROPIC_KEY_ENV
    timeout: float = 60.0
    kind: str = field(default="anthropic", init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        problem = _url_problem(self.base_url) if self.base_url else None
        if problem is not None:
            raise BackendError(f"base URL {redact_url(self.base_url)} (--base-url or $ANTHROPIC_BASE_URL) is not "
                               f"usable: {problem}")
        if self.api_key:
            check_api_key(self.api_key, "the API key given to AnthropicBackend")
        self._key = self.api_key or read_api_key(self.api_key_env, self.base_url)
        options: dict[str, Any] = {"api_key": self._key, "base_url": (self.base_url or ANTHROPIC_URL).rstrip("/"),
                                   "max_retries": 0, "timeout": self.timeout}
        if "open_telemetry" in inspect.signature(anthropic.AsyncAnthropic).parameters:
            options["open_telemetry"] = False   # prompts and replies go to the endpoint only
        self._client_options = options
        self._sdk: anthropic.AsyncAnthropic | None = None

    @property
    def _client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, made on the first request (a fully cached rerun never makes one)."""
        if self._sdk is None:
            self._sdk = anthropic.AsyncAnthropic(**self._client_options)
        return self._sdk

    def __repr__(self) -> str:
        return f"AnthropicBackend(model={self.model!r}, base_url={self.endpoint!r}, timeout={self.timeout!r})"

    @property
    def endpoint(self) -> str:
        """The base URL as it may be shown or stored: credentials masked."""
        return redact_url((self.base_url or ANTHROPIC_URL).rstrip("/")) or ANTHROPIC_URL

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.endpoint}

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        return await self.complete_prompt(messages, params, 0)

    async def complete_prompt(self, messages: list[dict[str, str]], params: dict[str, Any],
                              fixed: int = 0) -> Completion:
        """One Messages API call, the shared prefix marked for the provider's prompt cache.

        Sent as a plain JSON body through the SDK's low-level `post` (as the OpenAI backend
        does): same client, auth header, timeout and exception types as `messages.create`,
        without its typed transforms, and without its refusal of a non-streaming call whose
        `max_tokens` could take long.
        """
        body = request_body(self.model, messages, params, fixed)
        try:
            raw = await self._client.post("/v1/messages", body=body, cast_to=bytes)
        except anthropic.AnthropicError as e:
            raise translate_error(e, self.endpoint, self._key) from None
        except Exception as e:   # raised while building or sending: its text may quote the headers
            raise BackendError(f"{self.endpoint}: the request could not be built or sent ({type(e).__name__}); "
                               f"check the settings (API key, decoding parameters)") from None
        try:
            return parse_reply(raw, self.endpoint)
        except BackendError as e:   # it quotes the start of a reply that is not JSON
            raise mask_key(e, self._key) from None

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
