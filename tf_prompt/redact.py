"""Removing secrets from URLs before they reach a person or a file.

A base URL may carry credentials (`https://user:pw@host/v1`) or a key in its query string
(`?api-key=...`). The URL itself must still reach its endpoint unchanged, but every copy that is
shown or stored (error messages, traces, metrics.json, reports, sweep tables and state files, the
cache key) goes through `redact_url` / `redact_text` first. Stdlib only, so any module may use it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: Query parameters whose value is a secret (compared lower-cased, '-' and '_' alike).
SECRET_PARAMS = frozenset({"key", "apikey", "api_key", "token", "access_token", "auth", "secret",
                           "password", "pass", "pwd", "sig", "signature", "client_secret", "code"})

# `scheme://userinfo@` anywhere in a text, up to the last '@' before the path (a password may
# itself contain '@').
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")
# `?name=value` or `&name=value` with a secret name, anywhere in a text.
_PARAM = re.compile(r"(?i)([?&;]([a-z0-9_-]+)=)([^&;#\s'\"]+)")


def _is_secret_param(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_PARAMS


def redact_url(url: str | None) -> str | None:
    """`url` with userinfo replaced by `***` and secret query values masked; None stays None.

    A URL without secrets comes back unchanged (so cache keys and resume hashes of ordinary
    endpoints do not change).
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:   # malformed (e.g. an unclosed IPv6 bracket): fall back to the text rules
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret_param(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _is_secret_param(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it masked (for messages that embed URLs)."""
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return _PARAM.sub(lambda m: m.group(1) + MASK if _is_secret_param(m.group(2)) else m.group(0), text)
