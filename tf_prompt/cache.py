"""The reply cache: a paid reply is written to disk before anything else touches it.

Keyed by everything that determines a reply — backend kind, endpoint, model, the full messages,
every decoding parameter and the template identity — so two endpoints serving the same model name
never share entries and an edited template never reuses old replies. API keys are not part of the
key and are never stored. diskcache (SQLite) commits each write, so a reply survives Ctrl-C or
kill -9 of the process one instruction later.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import diskcache

KEY_VERSION = 1
_LAST_RUN = "__tf_prompt_last_run__"


def default_cache_dir() -> Path:
    """`$TF_PROMPT_CACHE`, else `~/.cache/tf-prompt` (replies live under `replies/`)."""
    return Path(os.environ.get("TF_PROMPT_CACHE") or Path.home() / ".cache" / "tf-prompt")


def cache_key(identity: dict[str, Any], messages: list[dict[str, str]], params: dict[str, Any],
              template: str) -> str:
    """A stable hash of what determines a reply (never secrets)."""
    payload = {"v": KEY_VERSION, "backend": identity, "messages": messages, "params": params,
               "template": template}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """A directory of cached replies (one diskcache.Cache)."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self._cache = diskcache.Cache(str(self.directory / "replies"), size_limit=2**40,
                                      eviction_policy="none")

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cache.get(key)

    def set(self, key: str, record: dict[str, Any]) -> None:
        self._cache.set(key, {**record, "stored_at": time.time()})

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def record_run(self, stats: dict[str, Any]) -> None:
        """Remember the last run's hits and misses for `tf-prompt cache stats`."""
        self._cache.set(_LAST_RUN, {**stats, "at": time.time()})

    def stats(self) -> dict[str, Any]:
        last = self._cache.get(_LAST_RUN)
        entries = len(self._cache) - (1 if last is not None else 0)
        return {"directory": str(self.directory / "replies"), "entries": entries,
                "size_bytes": int(self._cache.volume()), "last_run": last}

    def clear(self) -> int:
        return int(self._cache.clear())

    def close(self) -> None:
        self._cache.close()
