"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LiteLLM...).

A thin layer over the official `openai` SDK: the SDK's own retries are off (`max_retries=0`) so
that the caller's retry policy is the only one and attempts never multiply. SDK exceptions are
turned into BackendError with a one-line message that says what to fix.

Keys: the key is read from the variable the user named (`--api-key-env`, default OPENAI_API_KEY)
and from nowhere else; a named variable that is unset is an error before any call, never a
silent fall back to OPENAI_API_KEY (which would send that key to whatever `--base-url` says).
Credentials written in the base URL (`https://user:pw@host/v1`) go to that host as HTTP Basic
auth (httpx does this), and every message or identity shows the URL redacted (redact.py).
"""

from __future__ import annotations

import importlib
import json
import os
import socket
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import openai

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.endpoints import azure_endpoint, gemini_endpoint
from tf_prompt.util.redact import mask_secret, redact_text, redact_url


def _sdk_http_library() -> ModuleType:
    """The HTTP library the openai SDK sends with: httpx, or httpx2 from openai 3 on, which no
    longer installs httpx (so `import httpx` failed on a fresh install). URLs are checked and
    connection errors read with that same library."""
    for cls in openai.DefaultHttpxClient.__mro__:
        top = cls.__module__.split(".")[0]
        if top not in ("openai", "builtins"):
            return importlib.import_module(top)
    return importlib.import_module("httpx")


httpx = _sdk_http_library()

#: Used when a local server needs no key but the SDK insists on one.
PLACEHOLDER_KEY = "sk-no-key-required"
#: The variable read when the user names none.
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: Where requests go without a base URL (shown in messages, part of the cache identity).
OPENAI_URL = "https://api.openai.com/v1"


def read_api_key(env: str | None, base_url: str | None) -> str:
    """The key in variable `env`, for an endpoint at `base_url` (None: OpenAI itself).

    A variable the user named (anything but OPENAI_API_KEY) must be set: falling back to another
    variable would send that key to an endpoint it was never meant for. With no key in the
    default variable, a base URL gets the placeholder a keyless local server accepts.
    """
    key = os.environ.get(env) if env else None
    if key:
        check_api_key(key, f"the key in ${env}")
        return key
    if env and env != DEFAULT_KEY_ENV:
        raise BackendError(f"--api-key-env {env}: the environment variable {env} is not set or is empty; "
                           f"export it, or leave out --api-key-env to use {DEFAULT_KEY_ENV}")
    if base_url is None:
        raise BackendError(
            "no API key: set OPENAI_API_KEY, or give --base-url for a local OpenAI-compatible server")
    return PLACEHOLDER_KEY


#: Where an `anthropic:` model's requests go without a base URL (backends/anthropic.py, which
#: imports the SDK; kept here so the endpoint can be told without importing it).
ANTHROPIC_URL = "https://api.anthropic.com"


def effective_base_url(model: str, base_url: str | None, api_version: str | None = None) -> str | None:
    """Where requests for `model` go, as it may be shown or stored (credentials masked): the
    base URL given, else the provider's variable ($OPENAI_BASE_URL, $ANTHROPIC_BASE_URL for an
    `anthropic:` model), else the provider's own; None for a local model (gguf:, hf:).
    A Gemini model's is --base-url or Google's, an Azure deployment's its resource endpoint
    with the api-version (neither reads $OPENAI_BASE_URL).

    Part of a run's identity and record: the same settings against another server are another run.
    What the backends record as their `endpoint` (OpenAIBackend, AnthropicBackend), computed
    without building one.
    """
    kind, sep, rest = model.partition(":")
    if sep and rest and kind in ("gguf", "hf"):
        return None
    if sep and rest and kind == "gemini":
        return gemini_endpoint(base_url)
    if sep and rest and kind == "azure":
        return azure_endpoint(base_url, api_version)
    if sep and rest and kind == "anthropic":
        url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL).rstrip("/")
        return redact_url(url) or ANTHROPIC_URL
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
    return redact_url(url) or OPENAI_URL


def check_api_key(key: str, source: str) -> None:
    """Refuse a key that cannot be sent as an HTTP header value, before any call.

    HTTP clients reject such a header with an error that quotes it (`Illegal header value
    b'Bearer sk-...\\n'`) or raise UnicodeEncodeError, and that text would reach the terminal and
    metrics.json. The key is refused rather than stripped: a secret is never silently altered.
    The message names where the key came from and what is wrong with it, never the key.
    """
    for i, ch in enumerate(key, 1):
        if "\x21" <= ch <= "\x7e":
            continue
        if ch in "\r\n":
            what = "a line break (often a trailing newline from a file or a paste)"
        elif ch in " \t":
            what = "a space or tab"
        elif ord(ch) > 0x7e:
            what = f"a non-ASCII character (U+{ord(ch):04X})"
        else:
            what = f"a control character (U+{ord(ch):04X})"
        raise BackendError(f"{source} contains {what} at character {i} of {len(key)}, so it is not a valid "
                           f"HTTP header value: remove it and export the variable again (nothing was sent)")


#: Said of a URL that cannot be parsed: the usual cause, without quoting any part of the URL.
_ENCODE_HINT = "a '#', '/', '?' or '@' in a user name or password must be percent-encoded (%23, %2F, %3F, %40)"


def _url_problem(url: str) -> str | None:
    """What is wrong with a base URL that no request could be sent to (None if nothing is).

    Never quotes the URL or a parser's message (which may quote a piece of a password).
    """
    try:
        parts = urlsplit(url)
        _ = parts.port   # raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        return f"it cannot be parsed (is the port a number in 0-65535?); {_ENCODE_HINT}"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if "@" in parts.fragment or "@" in parts.query:
        # `http://user:pa#ss@host/v1` reads as host "user" with a fragment: the request would go
        # to the wrong host, without the credentials.
        return f"an '@' follows a '#' or '?', so the host cannot be told; {_ENCODE_HINT}"
    try:   # what the SDK's HTTP client will parse, without building it (see _client)
        httpx.URL(url)
    except Exception as e:   # its text may quote the URL
        return f"the HTTP client cannot parse it ({type(e).__name__}); {_ENCODE_HINT}"
    return None


#: Kinds of connection failure: nobody there for certain (refused, no such host), the request
#: could not be written here (the endpoint is not to blame), anything else (dropped, reset, TLS).
UNREACHABLE, LOCAL, OTHER = "unreachable", "local", "other"


def _connection_cause(e: BaseException) -> tuple[str, str]:
    """Why a connection failed, in a few plain words (the SDK only says "Connection error."),
    and its kind (UNREACHABLE, LOCAL or OTHER).

    The OS error sits a few levels down: SDK error <- httpx error <- httpcore error, whose first
    argument is the OSError itself. An error raised while the request was being written (an
    invalid header value, a character the header encoding cannot hold) may quote the headers,
    the API key among them, so its text is never used.
    """
    seen: set[int] = set()
    cur: BaseException | None = e
    last = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused", UNREACHABLE
        if isinstance(cur, socket.gaierror):
            return "host name not found", UNREACHABLE
        if isinstance(cur, ConnectionResetError):
            return "connection reset by the server", OTHER
        if isinstance(cur, (httpx.LocalProtocolError, UnicodeError)):
            return f"the request could not be written ({type(cur).__name__})", LOCAL
        last = cur
        wrapped = cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None
        cur = cur.__cause__ or cur.__context__ or wrapped
    text = " ".join(str(last).split()) or type(last).__name__
    return ("server closed the connection without answering" if "disconnected" in text.lower() else text), OTHER


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
    """Map an SDK exception to a BackendError: retryable or not, with an actionable message.

    The message names the endpoint with its credentials masked, and any URL the SDK's own text
    carries is masked too: messages end up in traces, metrics.json and on the terminal.
    """
    err = _translate(e, redact_url(base_url) or "the OpenAI API")
    safe = redact_text(str(err))
    if safe != str(err):
        err.args = (safe,)   # the same error (flags kept), its text masked
    return err


def mask_key(err: BackendError, key: str | None) -> BackendError:
    """`err` (the same error, its flags kept) with `key` masked, should the server have quoted it
    in the text the error carries (a proxy echoing the token it was sent): that text reaches the
    terminal, the trace and metrics.json."""
    if key and key != PLACEHOLDER_KEY and mask_secret(str(err), key) != str(err):
        err.args = (mask_secret(str(err), key),)
    return err


def _translate(e: Exception, where: str) -> BackendError:
    if isinstance(e, openai.APITimeoutError):
        return BackendError(f"request to {where} timed out", retryable=True, timed_out=True)
    if isinstance(e, openai.APIConnectionError):
        cause, kind = _connection_cause(e)
        if kind == LOCAL:   # not the endpoint's fault, and the same on every try
            return BackendError(f"{where}: {cause}; check the settings (API key, decoding parameters)")
        return BackendError(f"cannot connect to {where}: {cause}", retryable=True, unreachable=kind == UNREACHABLE)
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        body = e.body if isinstance(e.body, dict) else {}
        inner = body.get("error")   # {"error": {...}} as OpenAI nests it; proxies send a bare string
        code = body.get("code") or (inner.get("code") if isinstance(inner, dict) else None)
        msg = body.get("message") or str(e)
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


#: Words by which a rejection names the structured-output field (OpenAI, vLLM, llama.cpp, LiteLLM).
_SCHEMA_WORDS = ("response_format", "json_schema", "structured output")


def schema_rejected(e: Exception, base_url: str | None) -> BackendError | None:
    """A request sent with a JSON schema (`--constrain json|spans`) that the model or server
    refused because of it (HTTP 400/422 whose error names response_format or json_schema): one
    line naming the option to change; None for any other error.

    Decided: no automatic fallback to free answers. A run asked for constrained answers, its
    identity and cache keys say so, and a silent switch would record unconstrained replies as
    constrained ones; the run stops at once (the error is not retryable) and says what to change.
    """
    if not isinstance(e, openai.APIStatusError):
        return None
    return schema_rejection(e.status_code, e.body, base_url, str(e))


def schema_rejection(status: int | None, body: Any, base_url: str | None, fallback: str = "") -> BackendError | None:
    """`schema_rejected` for an error given as its HTTP status and JSON body (also a Batch API
    output line's, `--via batch`): the one line, or None when it is not a schema rejection."""
    if status not in (400, 422):
        return None
    text = json.dumps(body, ensure_ascii=False) if body is not None else fallback
    if not any(word in text.lower() for word in _SCHEMA_WORDS):
        return None
    where = redact_url(base_url) or "the OpenAI API"
    body = body if isinstance(body, dict) else {}
    inner = body.get("error")
    msg = (inner.get("message") if isinstance(inner, dict) else None) or body.get("message") or fallback
    msg = " ".join(str(msg).split())[:300]
    return BackendError(redact_text(
        f"{where}: HTTP {status}: the model or server does not accept the answer's JSON schema "
        f"(response_format json_schema, sent for --constrain): run with --constrain none. {msg}"),
        status=status)


def unsendable(e: BaseException, base_url: str | None) -> BackendError:
    """A request that failed before any answer for a reason that is not the endpoint's (a
    parameter that cannot be encoded, a header the HTTP client refuses): one line, not retried.
    Only the exception's type is named: its text may quote the request's headers, key included."""
    where = redact_url(base_url) or "the OpenAI API"
    return BackendError(f"{where}: the request could not be built or sent ({type(e).__name__}); "
                        f"check the settings (API key, decoding parameters)")


def parse_chat_reply(raw: bytes | str, base_url: str | None) -> Completion:
    """A chat.completion JSON reply as a Completion; a reply that is not one is a one-line,
    retryable BackendError (a proxy or an overloaded server can cut a reply short). The error
    carries status 200 and `not_an_api`: the server did answer, but maybe not as an API (a web
    page at a base URL that is not the API's); the dead-endpoint breaker counts it only while no
    request of the run has succeeded."""
    where = redact_url(base_url) or "the OpenAI API"
    try:
        data = json.loads(raw)
    except ValueError:
        head = " ".join(bytes(raw[:80]).decode("utf-8", "replace").split()) if isinstance(raw, bytes) else raw[:80]
        raise BackendError(f"{where}: reply is not valid JSON: {head!r}", retryable=True, status=200,
                           not_an_api=True) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise BackendError(f"{where}: reply had no choices", retryable=True, status=200, not_an_api=True)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise BackendError(f"{where}: reply content is {type(content).__name__}, not text", retryable=True,
                           status=200, not_an_api=True)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    # OpenAI's automatic prompt caching: how many of the prompt tokens it served from its cache
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return Completion(
        text=content or "",
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
        cache_read_tokens=cached,
    )


def _count(value: Any) -> int | None:
    """A token count from the reply's usage, None when absent or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class OpenAIBackend(Backend):
    """Chat completions through the `openai` SDK."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: Where the key is read when `api_key` is not given (see read_api_key).
    api_key_env: str | None = DEFAULT_KEY_ENV
    timeout: float = 60.0
    kind: str = field(default="openai", init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        # Checked before the key is read, so a typo in the URL is reported as such.
        problem = _url_problem(self.base_url) if self.base_url else None
        if problem is not None:
            raise BackendError(f"base URL {redact_url(self.base_url)} (--base-url or $OPENAI_BASE_URL) is not "
                               f"usable: {problem}")
        # Always an explicit key: given None, the SDK would read OPENAI_API_KEY on its own.
        if self.api_key:
            check_api_key(self.api_key, "the API key given to OpenAIBackend")
        key = self.api_key or read_api_key(self.api_key_env, self.base_url)
        self._client_options: dict[str, Any] = {"api_key": key, "base_url": self.base_url, "max_retries": 0,
                                                "timeout": self.timeout}
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

    def __repr__(self) -> str:   # the dataclass repr would show the URL's credentials
        return f"OpenAIBackend(model={self.model!r}, base_url={self.endpoint!r}, timeout={self.timeout!r})"

    @property
    def endpoint(self) -> str:
        """The base URL as it may be shown or stored: credentials masked."""
        return redact_url((self.base_url or OPENAI_URL).rstrip("/")) or OPENAI_URL

    def identity(self) -> dict[str, Any]:
        # Redacted: the identity is hashed into every cache key, and a hash of a short password
        # can be brute-forced. The same host and path with other credentials serve the same model.
        return {"kind": self.kind, "model": self.model, "base_url": self.endpoint}

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
            rejected = schema_rejected(e, self.base_url) if "response_format" in params else None
            raise mask_key(rejected or translate_error(e, self.base_url), self._client_options["api_key"]) from None
        except Exception as e:   # raised while building or sending (e.g. a float JSON cannot hold)
            raise unsendable(e, self.base_url) from None
        try:
            return parse_chat_reply(raw, self.base_url)
        except BackendError as e:   # it quotes the start of a reply that is not JSON
            raise mask_key(e, self._client_options["api_key"]) from None

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
