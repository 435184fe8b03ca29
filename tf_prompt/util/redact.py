"""Removing secrets from URLs before they reach a person or a file.

A base URL may carry credentials (`https://user:pw@host/v1`) or a key in its query string or
path parameters (`?api-key=...`, `;key=...`). The URL itself must still reach its endpoint
unchanged, but every copy that is shown or stored (error messages, traces, metrics.json,
reports, sweep tables and state files, the cache key) goes through `redact_url` / `redact_text`
first. Stdlib only, so any module may use it.

The rules work on the text, not on a URL parser's reading of it: a password with an unencoded
'#', '/' or '?' (`http://user:pa#ss@host/v1`) makes a parser see a fragment and no userinfo at
all, and the password would be shown in clear. So everything between `scheme://` and the last
'@' that is followed by a host is userinfo, whatever it holds.
"""

from __future__ import annotations

import re

MASK = "***"
#: A key shorter than this is not masked in quoted text: no provider issues one (theirs are 20+
#: characters), and masking "k" or "sk" would garble every word holding those letters.
MIN_SECRET_LENGTH = 8


def mask_secret(text: str, key: str | None) -> str:
    """`text` with every copy of `key` masked (a server or proxy quoting the key it was sent)."""
    if not key or len(key) < MIN_SECRET_LENGTH:
        return text
    return text.replace(key, MASK)

#: Parameter names whose value is a secret (compared lower-cased, '-' and '_' alike).
SECRET_PARAMS = frozenset({"key", "apikey", "api_key", "token", "access_token", "auth", "secret",
                           "password", "pass", "pwd", "sig", "signature", "client_secret", "code"})

# A host (name, IPv4 or [IPv6]) with an optional port (even a malformed one), then the end of
# the authority.
_HOST = r"(?:\[[0-9a-z:.%]*\]|[a-z0-9._~%-]*)(?::[^/?#\s'\",;)@]*)?(?=[/?#\s'\",;)]|$)"
# `scheme://userinfo@host`: greedy, so up to the last '@' before a host (a password may hold
# '@', '#', '/' or '?'); never across whitespace.
_USERINFO = re.compile(rf"(?i)\b([a-z][a-z0-9+.-]*://)\S*@(?={_HOST})")
# `?name=value`, `&name=value` or `;name=value` with a secret name. In a URL the value runs to
# the next separator; in a text also to whitespace or a quote.
_URL_PARAM = re.compile(r"(?i)([?&;]([a-z0-9_-]+)=)([^&;]+)")
_TEXT_PARAM = re.compile(r"(?i)([?&;]([a-z0-9_-]+)=)([^&;#\s'\"]+)")


def _is_secret_param(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_PARAMS


def _mask(text: str, param: re.Pattern[str]) -> str:
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return param.sub(lambda m: m.group(1) + MASK if _is_secret_param(m.group(2)) else m.group(0), text)


def redact_url(url: str | None) -> str | None:
    """`url` with userinfo replaced by `***` and secret query or path parameter values masked;
    None stays None.

    Only the secrets change: a URL without secrets comes back unchanged (so cache keys and
    resume hashes of ordinary endpoints do not change), and other parameters keep their form.
    """
    if not url:
        return url
    return _mask(url, _URL_PARAM)


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it masked (for messages that embed URLs)."""
    return _mask(text, _TEXT_PARAM)
