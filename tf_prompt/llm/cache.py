"""The reply cache: a paid reply is written to disk before anything else touches it.

Keyed by everything that determines a reply — backend kind, endpoint, model, the full messages,
every decoding parameter and the template identity — so two endpoints serving the same model name
never share entries and an edited template never reuses old replies. API keys are not part of the
key and are never stored. diskcache (SQLite) commits each write, so a reply survives Ctrl-C or
kill -9 of the process one instruction later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
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


class CacheError(RuntimeError):
    """The cache directory cannot be used (not a directory, unwritable, corrupt); one line."""


class ReplyCache:
    """A directory of cached replies (one diskcache.Cache).

    Every SQLite or file-system error is raised as a one-line CacheError naming the directory;
    a corrupt database says how to clear it (`clear_directory` works on one that cannot be opened).
    """

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        for p in (self.directory, *self.directory.parents):
            if p.exists():
                if not p.is_dir():
                    raise CacheError(f"cache directory {self.directory} is not usable: {p} is not a directory "
                                     f"(set --cache-dir or $TF_PROMPT_CACHE to a folder)")
                break
        with self._guard():
            self._cache = diskcache.Cache(str(self.directory / "replies"), size_limit=2**40,
                                          eviction_policy="none")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise CacheError(corrupt_message(self.directory, e)) from None
        except OSError as e:
            raise CacheError(f"cache directory {self.directory} is not usable ({e.strerror or e}); "
                             f"set --cache-dir or $TF_PROMPT_CACHE to a writable folder") from None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._guard():
            return self._cache.get(key)

    def set(self, key: str, record: dict[str, Any]) -> None:
        with self._guard():
            self._cache.set(key, {**record, "stored_at": time.time()})

    def __contains__(self, key: str) -> bool:
        with self._guard():
            return key in self._cache

    def record_run(self, stats: dict[str, Any]) -> None:
        """Remember the last run's hits and misses for `tf-prompt cache stats` (best effort: a
        failure here must not cost the run its outputs)."""
        with contextlib.suppress(CacheError), self._guard():
            self._cache.set(_LAST_RUN, {**stats, "at": time.time()})

    def stats(self) -> dict[str, Any]:
        with self._guard():
            last = self._cache.get(_LAST_RUN)
            entries = len(self._cache) - (1 if last is not None else 0)
            return {"directory": str(self.directory / "replies"), "entries": entries,
                    "size_bytes": int(self._cache.volume()), "last_run": last}

    def clear(self) -> int:
        with self._guard():
            return int(self._cache.clear())

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, OSError):
            self._cache.close()

    @classmethod
    def clear_directory(cls, directory: str | Path | None = None) -> tuple[int | None, Path]:
        """Empty the cache at `directory`: the number of replies removed, or None when the
        database was corrupt and its folder (`replies/`) was deleted instead."""
        try:
            cache = cls(directory)
        except CacheError:
            root = Path(directory) if directory else default_cache_dir()
            replies = root / "replies"
            if not replies.is_dir():
                raise
            try:
                shutil.rmtree(replies)
            except OSError as e:
                raise CacheError(f"cannot remove the cache at {replies} ({e.strerror or e})") from None
            return None, root
        try:
            try:
                return cache.clear(), cache.directory
            except CacheError:   # opened, but corrupt further in
                cache.close()
                shutil.rmtree(cache.directory / "replies", ignore_errors=True)
                return None, cache.directory
        finally:
            cache.close()


def corrupt_message(directory: Path, error: BaseException) -> str:
    """What to tell a user whose cache database is damaged."""
    return (f"cache at {directory / 'replies'} is corrupt ({error}): remove it or run "
            f"`tf-prompt cache clear --cache-dir {directory}`")
