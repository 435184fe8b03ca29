"""Azure OpenAI deployments through the openai SDK's AsyncAzureOpenAI (`--model azure:DEPLOYMENT`).

The request is OpenAIBackend's: the chat body posted as plain JSON through the client's low-level
`post`, read by parse_chat_reply, its errors translated by the same code. What differs is where
it goes and how it is signed: `{endpoint}/openai/deployments/{DEPLOYMENT}/chat/completions
?api-version=V` with an `api-key` header, all done by the Azure client.

Settings: the endpoint is --base-url or $AZURE_OPENAI_ENDPOINT (no default: every resource has
its own); the API version --api-version or $OPENAI_API_VERSION, else DEFAULT_API_VERSION; the key
the variable --api-key-env names (it must be set), else $AZURE_OPENAI_API_KEY -- never
$OPENAI_API_KEY, which is OpenAI's. The endpoint recorded (identity, metrics.json, cache keys)
is the resource endpoint with the api-version, credentials masked.

Price: a deployment's name is the user's choice, so the price table is looked up by the
deployment name (a deployment named after its model, `gpt-4o-mini`, is priced as that model);
any other name needs an entry in a --prices file under that name -- which is also where Azure's
own prices (they differ by region and deployment type from OpenAI's) belong. Without one the cost
is unknown, never guessed, and --max-cost refuses to start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import openai

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.blocked import blocked_finish
from tf_prompt.backends.endpoints import ENDPOINT_ENV, azure_api_version, azure_base, azure_endpoint
from tf_prompt.backends.openai_compat import (
    DEFAULT_KEY_ENV,
    _url_problem,
    check_api_key,
    parse_chat_reply,
    schema_rejected,
    translate_error,
    unsendable,
)
from tf_prompt.util.redact import mask_secret, redact_text, redact_url

KEY_ENV = "AZURE_OPENAI_API_KEY"


def read_azure_key(env: str | None) -> str:
    """The key in the variable the user named (it must be set), else $AZURE_OPENAI_API_KEY."""
    named = env if env and env != DEFAULT_KEY_ENV else None
    name = named or KEY_ENV
    key = os.environ.get(name)
    if not key:
        if named:
            raise BackendError(f"--api-key-env {named}: the environment variable {named} is not set or is empty; "
                               f"export it, or leave out --api-key-env to use {KEY_ENV}")
        raise BackendError(f"no Azure OpenAI key: set {KEY_ENV}, or name the variable with --api-key-env")
    check_api_key(key, f"the key in ${name}")
    return key


def _azure_error(e: openai.APIStatusError, deployment: str, where: str, key_source: str) -> BackendError | None:
    """The Azure-specific failures, in one line each (None: translate_error says it)."""
    body = e.body if isinstance(e.body, dict) else {}
    inner: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
    code = str(inner.get("code") or "")
    code = "" if code == str(e.status_code) else code   # Azure repeats the status as a code
    msg = " ".join(str(inner.get("message") or "").split())[:300]
    if e.status_code == 404 and code == "DeploymentNotFound":
        return BackendError(f"{where}: no deployment {deployment!r} on this resource (HTTP 404 DeploymentNotFound): "
                            f"check --model azure:DEPLOYMENT against the resource's deployments, and the endpoint",
                            status=404)
    if e.status_code == 404:
        return BackendError(f"{where}: HTTP 404 {code}: check the endpoint (--base-url or ${ENDPOINT_ENV}: "
                            f"https://RESOURCE.openai.azure.com), --api-version and the deployment. {msg}", status=404)
    if e.status_code == 401:
        return BackendError(f"{where}: the key was refused (HTTP 401{' ' + code if code else ''}): check "
                            f"{key_source} holds a key of this resource. {msg}", status=401)
    if e.status_code == 403:
        return BackendError(f"{where}: HTTP 403{' ' + code if code else ''}: the key may not use this deployment "
                            f"or the resource's network rules refuse this client. {msg}", status=403)
    return None


def _content_filtered(e: openai.APIStatusError) -> str | None:
    """The content-filter category of a 400 that says the prompt was filtered (None: another 400)."""
    body = e.body if isinstance(e.body, dict) else {}
    inner: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
    if e.status_code != 400 or str(inner.get("code") or "") != "content_filter":
        return None
    innererror = inner.get("innererror")
    result = innererror.get("content_filter_result") if isinstance(innererror, dict) else None
    cats = sorted(k for k, v in (result if isinstance(result, dict) else {}).items()
                  if isinstance(v, dict) and v.get("filtered"))
    return "content_filter" + (f" ({', '.join(cats)})" if cats else "")


@dataclass
class AzureBackend(Backend):
    """Chat completions of one Azure OpenAI deployment (`model` is the deployment name)."""

    base_url: str | None = None
    api_version: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    timeout: float = 60.0
    kind: str = field(default="azure", init=False)

    def __post_init__(self) -> None:
        url = azure_base(self.base_url)
        if url is None:
            raise BackendError(f"--model azure:{self.model} needs the resource endpoint: give --base-url "
                               f"https://RESOURCE.openai.azure.com or set {ENDPOINT_ENV}")
        problem = _url_problem(url)
        if problem is not None:
            raise BackendError(f"Azure endpoint {redact_url(url)} (--base-url or ${ENDPOINT_ENV}) is not usable: "
                               f"{problem}")
        self._url = url
        self._version = azure_api_version(self.api_version)
        if self.api_key:
            check_api_key(self.api_key, "the API key given to AzureBackend")
        named = self.api_key_env if self.api_key_env and self.api_key_env != DEFAULT_KEY_ENV else None
        self._key_source = "the API key given" if self.api_key else f"${named or KEY_ENV}"
        key = self.api_key or read_azure_key(self.api_key_env)
        self._options: dict[str, Any] = {"azure_endpoint": url, "api_version": self._version, "api_key": key,
                                         "max_retries": 0, "timeout": self.timeout}
        self._sdk: openai.AsyncAzureOpenAI | None = None

    def __repr__(self) -> str:
        return f"AzureBackend(model={self.model!r}, endpoint={self.endpoint!r}, timeout={self.timeout!r})"

    @property
    def endpoint(self) -> str:
        return azure_endpoint(self._url, self._version)

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.endpoint}

    def _client(self) -> openai.AsyncAzureOpenAI:
        if self._sdk is None:
            self._sdk = openai.AsyncAzureOpenAI(**self._options)
        return self._sdk

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        """One chat completion: the body posted as it is; AsyncAzureOpenAI puts the deployment
        (the body's `model`) in the path, the api-version in the query and the key in `api-key`."""
        body = {"model": self.model, "messages": messages, **params}
        where = redact_url(self._url) or self._url
        try:
            raw = await self._client().post("/chat/completions", body=body, cast_to=bytes)
        except openai.APIStatusError as e:
            filtered = _content_filtered(e)
            if filtered is not None:   # this prompt, not the run: its sentence fails (blocked.py)
                return Completion("", None, 0, blocked_finish(f"Azure {filtered}"), None)
            rejected = schema_rejected(e, self._url) if "response_format" in params else None
            err = rejected or _azure_error(e, self.model, where, self._key_source) or translate_error(e, self._url)
            raise self._masked(err) from None
        except openai.OpenAIError as e:
            raise self._masked(translate_error(e, self._url)) from None
        except Exception as e:
            raise unsendable(e, self._url) from None
        try:
            return parse_chat_reply(raw, self._url)
        except BackendError as e:   # it quotes the start of a reply that is not JSON
            raise self._masked(e) from None

    def _masked(self, err: BackendError) -> BackendError:
        """`err` with URLs masked and the key too, should the server have quoted it (a gateway
        echoing the api-key header it got): the text reaches the terminal and metrics.json."""
        text = mask_secret(redact_text(str(err)), self._options["api_key"])
        return BackendError(text, retryable=err.retryable, retry_after=err.retry_after, status=err.status,
                            timed_out=err.timed_out, unreachable=err.unreachable, not_an_api=err.not_an_api)

    async def aclose(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()
