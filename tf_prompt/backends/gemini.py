"""Google Gemini through the `google-genai` SDK (`--model gemini:MODEL`).

Why the SDK and not Google's OpenAI-compatible endpoint (which OpenAIBackend could reach with a
base URL): the native API is the one whose failures and accounting we must read. Its errors carry
`status` (RESOURCE_EXHAUSTED, INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND) and a RetryInfo
`retryDelay` that says how long a 429 wants us to wait; its usageMetadata reports cached prompt
tokens (cachedContentTokenCount) and thinking tokens (thoughtsTokenCount, billed as output) that
the compatibility layer folds away; a blocked prompt is `promptFeedback.blockReason` and a blocked
answer `finishReason: SAFETY`, not a guess from an empty message; system instructions and JSON
schemas are first-class fields. The SDK is an optional extra (`pip install 'tf-prompt[gemini]'`),
imported only when a Gemini model runs, and its own retries are off (HttpOptions with
retry_options of one attempt, which also turns off its aiohttp path's implicit retry) so
tf-prompt's policy is the only one.

Keys: the variable named by `--api-key-env`, else GEMINI_API_KEY, else GOOGLE_API_KEY; never
OPENAI_API_KEY or any other provider's. The key goes in the `x-goog-api-key` header (never the
URL) and the SDK is never left to read the environment itself (nor GOOGLE_GENAI_USE_VERTEXAI).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.blocked import blocked_finish
from tf_prompt.backends.endpoints import GEMINI_URL, gemini_endpoint
from tf_prompt.backends.openai_compat import (
    DEFAULT_KEY_ENV,
    UNREACHABLE,
    _connection_cause,
    _url_problem,
    check_api_key,
)
from tf_prompt.llm.retry import MAX_RETRY_AFTER
from tf_prompt.util.redact import mask_secret, redact_text, redact_url

#: The REST API version requests use (`/v1beta/models/MODEL:generateContent`): the one
#: Google's documentation and the SDK default to, with JSON-schema answers and thinking counts.
API_VERSION = "v1beta"
#: The variables read, in order, when the user names none.
GEMINI_KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
#: What to install when the SDK is missing.
INSTALL_HINT = "pip install 'tf-prompt[gemini]' (the google-genai SDK)"


def sdk_missing() -> bool:
    """Whether google-genai cannot be imported, told without importing it (a cached rerun never
    imports the SDK): checked when the backend is chosen, before the run folder is made."""
    import importlib.util
    try:
        return importlib.util.find_spec("google.genai") is None
    except (ImportError, ValueError):
        return True


def read_gemini_key(env: str | None) -> str:
    """The Gemini key: from `env` when the user named one (it must be set: no fall back to
    another variable), else GEMINI_API_KEY, else GOOGLE_API_KEY. OPENAI_API_KEY, the default
    of --api-key-env, counts as no name: an OpenAI key is never sent to Google."""
    if env and env != DEFAULT_KEY_ENV:
        key = os.environ.get(env)
        if not key:
            raise BackendError(f"--api-key-env {env}: the environment variable {env} is not set or is empty; "
                               f"export it, or leave out --api-key-env to use {' or '.join(GEMINI_KEY_ENVS)}")
        check_api_key(key, f"the key in ${env}")
        return key
    for name in GEMINI_KEY_ENVS:
        key = os.environ.get(name)
        if key:
            check_api_key(key, f"the key in ${name}")
            return key
    raise BackendError(f"no Gemini API key: set {' or '.join(GEMINI_KEY_ENVS)}, or name the variable with "
                       f"--api-key-env")


def _retry_delay(details: Any, headers: Any) -> float | None:
    """Seconds a 429 asks us to wait: RetryInfo's retryDelay ("37s", "1.5s") in the error's
    details, else a Retry-After header."""
    error = details.get("error") if isinstance(details, dict) else None
    items = (error or details or {}).get("details") if isinstance(error or details, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(item.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    try:
        value = headers.get("retry-after") if headers is not None else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _error_reason(details: Any) -> str | None:
    """The ErrorInfo `reason` of an error body (API_KEY_INVALID...), if it has one."""
    error = details.get("error") if isinstance(details, dict) else None
    items = (error if isinstance(error, dict) else details if isinstance(details, dict) else {}).get("details")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"])
    return None


def translate_gemini_error(e: Exception, model: str, base_url: str | None, key_source: str,
                           *, schema_sent: bool = False, key: str | None = None) -> BackendError:
    """An SDK or HTTP-client exception as a one-line BackendError: retryable or not, saying what
    to fix. Text from the server is shortened, its URLs masked, and `key` masked should the
    server quote it (a proxy echoing the header it got); header errors are named by type only."""
    err = _translate(e, model, gemini_endpoint(base_url), key_source, schema_sent)
    safe = redact_text(str(err))
    err.args = (mask_secret(safe, key),)
    return err


def _translate(e: Exception, model: str, where: str, key_source: str, schema_sent: bool) -> BackendError:
    from google.genai import errors

    from tf_prompt.backends.openai_compat import LOCAL

    if isinstance(e, errors.APIError):
        code = int(e.code or 0)
        status = e.status or ""
        msg = " ".join(str(e.message or "").split())[:300]
        headers = getattr(e.response, "headers", None)
        label = f"HTTP {code} {status}".strip()
        if code == 429:
            delay = _retry_delay(e.details, headers)
            if delay is not None and delay > MAX_RETRY_AFTER:   # a daily quota used up: no retry can pass
                return BackendError(f"{where}: out of quota ({label}): the server asks to wait {delay:.0f} s, "
                                    f"longer than tf-prompt waits ({MAX_RETRY_AFTER:.0f} s); rerun once the "
                                    f"quota is renewed (received replies are cached), or raise it. {msg}",
                                    status=code)
            return BackendError(f"{where}: rate limited or out of quota ({label}); retried after the delay the "
                                f"server asked for. {msg}", retryable=True, retry_after=delay, status=code)
        if code in (408, 409) or code >= 500:
            return BackendError(f"{where}: server error ({label})", retryable=True,
                                retry_after=_retry_delay(e.details, headers), status=code)
        reason = _error_reason(e.details) or ""
        if code in (400, 401) and ("API_KEY" in reason or "api key" in msg.lower() or code == 401):
            return BackendError(f"{where}: the API key was refused ({label}{' ' + reason if reason else ''}): "
                                f"check {key_source}. {msg}", status=code)
        if code == 403:
            return BackendError(f"{where}: {label}: the key may not use model {model!r} or this API (is the "
                                f"Generative Language API enabled for its project?). {msg}", status=code)
        if code == 404:
            return BackendError(f"{where}: {label}: no model {model!r} here; check --model gemini:NAME "
                                f"(e.g. gemini-2.5-flash) and --base-url. {msg}", status=code)
        if code == 400 and schema_sent and "schema" in msg.lower():
            return BackendError(f"{where}: {label}: the model does not accept the answer's JSON schema "
                                f"(sent for --constrain): run with --constrain none. {msg}", status=code)
        return BackendError(f"{where}: {label}: the request was rejected; check the model's parameters. {msg}",
                            status=code)
    timeouts, transports = _http_errors()
    if isinstance(e, timeouts):
        return BackendError(f"request to {where} timed out", retryable=True, timed_out=True)
    if isinstance(e, (*transports, OSError)):
        cause, kind = _connection_cause(e)
        if kind == LOCAL:
            return BackendError(f"{where}: {cause}; check the settings (API key, decoding parameters)")
        return BackendError(f"cannot connect to {where}: {cause}", retryable=True, unreachable=kind == UNREACHABLE)
    # anything else was raised while building or reading the request: its text may quote headers
    return BackendError(f"{where}: the request could not be built, sent or read ({type(e).__name__}); "
                        f"check the settings (API key, decoding parameters)")


def _http_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The timeout and transport exception classes of httpx, httpx2 and aiohttp, whichever are
    installed: google-genai sends with aiohttp when it is installed, else httpx or httpx2 (its
    default, what is installed, $GOOGLE_GENAI_HTTP_CLIENT), not necessarily the library the
    openai SDK uses (openai_compat.httpx). aiohttp's timeout is asyncio's (the builtin
    TimeoutError); a connection it lost is a ClientConnectionError or a ClientPayloadError."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    transports: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            lib = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(lib.TimeoutException)
        transports.append(lib.TransportError)
    try:
        aiohttp = importlib.import_module("aiohttp")
    except ImportError:
        pass
    else:
        # (a ClientResponseError: a reply that is not HTTP, as httpx's RemoteProtocolError)
        transports += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError]
    return tuple(timeouts), tuple(transports)


def to_gemini(messages: list[dict[str, str]], params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Chat messages and decoding parameters as Gemini's `contents` and GenerateContentConfig
    fields: system messages become the system instruction, assistant turns the `model` role,
    max_tokens max_output_tokens, and a response_format json_schema the response JSON schema.

    A parameter with no Gemini equivalent is refused rather than dropped: it is part of the
    cache key, and a reply recorded as obeying it must have been asked for with it."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    contents = [{"role": "model" if m.get("role") == "assistant" else "user", "parts": [{"text": m["content"]}]}
                for m in messages if m.get("role") != "system"]
    config: dict[str, Any] = {}
    if system:
        config["system_instruction"] = "\n\n".join(system)
    for name, value in params.items():
        if name == "temperature":
            config["temperature"] = value
        elif name == "max_tokens":
            config["max_output_tokens"] = value
        elif name == "seed":
            config["seed"] = value
        elif name == "response_format" and isinstance(value, dict) and value.get("type") == "json_schema":
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = (value.get("json_schema") or {}).get("schema")
        else:
            raise BackendError(f"parameter {name!r} has no Gemini equivalent (nothing was sent)")
    return contents, config


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class GeminiBackend(Backend):
    """generateContent through `google.genai.Client(...).aio`."""

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: Where the key is read when `api_key` is not given (see read_gemini_key).
    api_key_env: str | None = None
    timeout: float = 60.0
    kind: str = field(default="gemini", init=False)

    def __post_init__(self) -> None:
        problem = _url_problem(self.base_url) if self.base_url else None
        if problem is not None:
            raise BackendError(f"base URL {redact_url(self.base_url)} (--base-url) is not usable: {problem}")
        if self.api_key:
            check_api_key(self.api_key, "the API key given to GeminiBackend")
            self._key_source = "the API key given"
        else:
            self._key_source = (f"${self.api_key_env}" if self.api_key_env and self.api_key_env != DEFAULT_KEY_ENV
                                else " or ".join(f"${n}" for n in GEMINI_KEY_ENVS))
        self._key = self.api_key or read_gemini_key(self.api_key_env)
        self._sdk: Any = None

    def __repr__(self) -> str:
        return f"GeminiBackend(model={self.model!r}, base_url={self.endpoint!r}, timeout={self.timeout!r})"

    @property
    def endpoint(self) -> str:
        return gemini_endpoint(self.base_url)

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.endpoint}

    def tokenizer(self) -> Any:
        """An approximate counter (cl100k, else ~4 characters a token), said to be one: Gemini's
        tokenizer is not available offline. It sizes estimates and --max-cost reservations; the
        token counts of real calls are Gemini's own (usageMetadata)."""
        from tf_prompt.llm.cost import Tokenizer, tokenizer_for

        base = tokenizer_for(self.model)
        return Tokenizer(base.name, False, f"Gemini's tokenizer is not available offline: token counts of "
                         f"{self.model} are approximate (counted with {base.name}); calls made report "
                         f"Gemini's own counts", base._encoding)

    def _client(self) -> Any:
        """The SDK's async client, made on the first request (a cached rerun never imports it)."""
        if self._sdk is None:
            try:
                from google import genai
                from google.genai import types
            except ImportError:
                raise BackendError(f"--model gemini:{self.model} needs the Gemini SDK: {INSTALL_HINT}") from None
            # the API version pinned: $GOOGLE_GENAI_API_VERSION must not change what a run sends
            # retry_options of one attempt, not None: with aiohttp installed the SDK sends with it,
            # and retries a failed connection by itself after a 1-10 s sleep unless retry_options
            # are given (tenacity then makes exactly the attempts they say: one)
            options = types.HttpOptions(base_url=(self.base_url or GEMINI_URL).rstrip("/") + "/",
                                        api_version=API_VERSION, timeout=max(1, int(self.timeout * 1000)),
                                        retry_options=types.HttpRetryOptions(attempts=1))
            # vertexai=False: GOOGLE_GENAI_USE_VERTEXAI in the environment must not re-route the key;
            # a DebugConfig of its own: $GOOGLE_GENAI_CLIENT_MODE (record/replay, an SDK testing
            # switch) must not answer from replay files nor write prompts and replies to disk
            debug = genai.client.DebugConfig(client_mode=None, replays_directory=None, replay_id=None)
            self._sdk = genai.Client(api_key=self._key, vertexai=False, http_options=options,
                                     debug_config=debug).aio
        return self._sdk

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        contents, config = to_gemini(messages, params)
        client = self._client()
        try:
            response = await client.models.generate_content(model=self.model, contents=contents, config=config)
        except Exception as e:
            raise translate_gemini_error(e, self.model, self.base_url, self._key_source,
                                         schema_sent="response_format" in params, key=self._key) from None
        return self._completion(response)

    def _completion(self, response: Any) -> Completion:
        """The reply's text (thought parts left out), usage and finish reason; a blocked prompt or
        answer is an empty reply whose finish reason says so (blocked.py)."""
        usage = response.usage_metadata
        prompt = _count(getattr(usage, "prompt_token_count", None))
        answer = _count(getattr(usage, "candidates_token_count", None))
        thoughts = _count(getattr(usage, "thoughts_token_count", None))
        # served from Gemini's (implicit) context cache: part of the prompt tokens, priced as cached
        # input where the price table has a cached-input price for the model
        cached = _count(getattr(usage, "cached_content_token_count", None))
        # thinking tokens are billed as output: they count as completion tokens
        completion = None if answer is None and thoughts is None else (answer or 0) + (thoughts or 0)
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = getattr(feedback.block_reason, "value", feedback.block_reason)
            return Completion("", prompt, completion or 0, blocked_finish(f"promptFeedback.blockReason {reason}"),
                              response.model_version, cache_read_tokens=cached)
        candidates = response.candidates or []
        if not candidates:
            where = gemini_endpoint(self.base_url)
            raise BackendError(f"{where}: reply had no candidates", retryable=True, status=200, not_an_api=True)
        first = candidates[0]
        finish = first.finish_reason
        finish = getattr(finish, "value", finish)
        parts = first.content.parts if first.content is not None and first.content.parts else []
        text = "".join(p.text for p in parts if p.text and not p.thought)
        if finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"):
            return Completion("", prompt, completion, blocked_finish(f"finishReason {finish}"), response.model_version,
                              cache_read_tokens=cached)
        return Completion(text, prompt, completion, finish, response.model_version, cache_read_tokens=cached)

    async def aclose(self) -> None:
        if self._sdk is not None:
            with contextlib.suppress(Exception):   # closing must not mask the run's own outcome
                await self._sdk.aclose()

