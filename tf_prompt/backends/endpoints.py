"""Where the hosted backends other than OpenAI's send requests, as shown and stored.

Kept apart from the backends (and free of SDK imports) so that openai_compat.effective_base_url,
which names the endpoint in a run's identity and a sweep cell's fingerprint, can say where a
Gemini or Azure model goes without importing those backends (they import openai_compat).
"""

from __future__ import annotations

import os

from tf_prompt.util.redact import redact_url

#: Gemini: where requests go without --base-url (the SDK adds /v1beta/models/...).
GEMINI_URL = "https://generativelanguage.googleapis.com"
#: Azure: the API version used when neither --api-version nor $OPENAI_API_VERSION says: the
#: latest generally available data-plane version known here (it has structured outputs).
DEFAULT_API_VERSION = "2024-10-21"
#: Azure: the variable holding the resource endpoint when --base-url is not given.
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"


def gemini_endpoint(base_url: str | None) -> str:
    """The endpoint as it may be shown or stored: --base-url (credentials masked) or Google's.
    $OPENAI_BASE_URL is never read: it would send a Gemini key to an OpenAI-compatible server."""
    return redact_url((base_url or GEMINI_URL).rstrip("/")) or GEMINI_URL


def azure_api_version(api_version: str | None) -> str:
    """--api-version, else $OPENAI_API_VERSION (the SDK's variable), else DEFAULT_API_VERSION."""
    return api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_API_VERSION


def azure_base(base_url: str | None) -> str | None:
    """The resource endpoint: --base-url, else $AZURE_OPENAI_ENDPOINT (None: neither)."""
    url = base_url or os.environ.get(ENDPOINT_ENV) or None
    return url.rstrip("/") if url else None


def azure_endpoint(base_url: str | None, api_version: str | None) -> str:
    """The endpoint as shown and stored: the resource URL (masked) with its api-version, which
    changes what a deployment accepts and answers."""
    url = azure_base(base_url)
    shown = (redact_url(url) or url) if url else f"${ENDPOINT_ENV} (unset)"
    return f"{shown}?api-version={azure_api_version(api_version)}"
