"""A GGUF model run in process by llama.cpp (through `xllamacpp`), with no server to start.

The model is loaded on the first call, not when the backend is built, so `tf-prompt estimate`
never pays for a load, and at most once per process: loads are shared by every backend with the
same file, context size and thread count. One llama.cpp context answers one request at a time,
so calls run in a worker thread (llama.cpp releases the GIL, the event loop keeps going) under a
lock: concurrency only queues.

xllamacpp's server also listens on a 127.0.0.1 port and runs its own threads. A load is counted
per backend using it and closed when the last one lets go: `aclose()` (the run does it), the
backend being garbage collected, or interpreter exit (an atexit hook), whichever comes first.

Token counts come from the GGUF file's own vocabulary, read without loading the weights (see
`gguf_tokenizer`), so a budget can be estimated in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import mmap
import os
import re
import secrets
import struct
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.structured import requested_schema
from tf_prompt.llm.cost import Tokenizer
from tf_prompt.llm.presets import DEFAULT_PRESET, PRESETS, ModelError, identify_gguf, resolve_gguf

# --- the model: loaded once per process --------------------------------------------------------


class _Loaded:
    """One llama.cpp server object, the lock that serialises its calls, and how many backends use it."""

    def __init__(self, server: Any):
        self.server: Any | None = server
        self.lock = threading.Lock()
        self.users = 0


_Key = tuple[str, str, int, int, int]
_LOADED: dict[_Key, _Loaded] = {}
# Re-entrant: a backend's GC finalizer (`_release`) may run inside `_acquire` in the same thread.
_LOADING = threading.RLock()


def _acquire(path: Path, sha256: str, n_ctx: int, n_threads: int, n_gpu_layers: int) -> tuple[_Key, _Loaded]:
    """The shared load for these settings, loading it if needed; the caller must `_release` it.

    The content hash is part of the key: another file at the same path is another model.
    """
    key = (str(path.resolve()), sha256, n_ctx, n_threads, n_gpu_layers)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = _Loaded(_start_server(path, n_ctx, n_threads, n_gpu_layers))
        _LOADED[key].users += 1
        return key, _LOADED[key]


def _close(loaded: _Loaded) -> None:
    """Drop the server once its current call is done: xllamacpp stops listening and joins its
    threads when the object is freed (it has no close method)."""
    with loaded.lock:
        loaded.server = None


def _release(key: _Key) -> None:
    """One user fewer; the last one closes the server."""
    with _LOADING:
        loaded = _LOADED.get(key)
        if loaded is None:
            return
        loaded.users -= 1
        if loaded.users > 0:
            return
        del _LOADED[key]
    _close(loaded)


@atexit.register
def close_all() -> None:
    """Close every loaded model (at interpreter exit, for users who never call aclose)."""
    with _LOADING:
        loaded = list(_LOADED.values())
        _LOADED.clear()
    for each in loaded:
        _close(each)


def _start_server(path: Path, n_ctx: int, n_threads: int, n_gpu_layers: int) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise ModelError("the gguf backend needs xllamacpp: pip install -e '.[local]'") from None
    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.n_ctx = n_ctx
    p.n_gpu_layers = n_gpu_layers
    p.cpuparams.n_threads = n_threads
    p.cpuparams_batch.n_threads = n_threads
    p.n_parallel = 1
    p.verbosity = -1          # llama.cpp logs hundreds of lines on load; -1 silences them
    # The server also listens on a random 127.0.0.1 port; a random key keeps other local
    # users off it (we never use it: calls go straight through handle_chat_completions).
    p.api_keys = [secrets.token_hex(16)]
    # Metrics are answered by the server's task loop, which the constructor starts only after
    # returning; one metrics request waits for that loop. Freeing a server whose loop has not
    # started yet hangs forever (its stop signal is lost), so no server leaves here before.
    p.endpoint_metrics = True
    try:
        server = xllamacpp.Server(p)
        server.handle_metrics()
    except Exception as e:
        raise ModelError(f"cannot load {path}: {type(e).__name__}: {e}") from None
    return server


# --- the tokenizer, read from the GGUF header --------------------------------------------------

# llama.cpp's pre-tokenizer regexes for the BPE vocabularies we know (key: tokenizer.ggml.pre).
_PRE_TOKENIZERS = {
    "qwen2": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "llama-bpe": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
}
_WANTED = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
           "tokenizer.chat_template"}
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_NORMAL_TOKEN = 1


def _read_tokenizer_metadata(path: Path) -> dict[str, Any]:
    """The tokenizer keys of a GGUF file's metadata (its header), skipping everything else."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file")
        version, _n_tensors, n_kv = struct.unpack_from("<IQQ", m, 4)
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is too old")
        pos = 24

        def string() -> str:
            nonlocal pos
            (n,) = struct.unpack_from("<Q", m, pos)
            pos += 8 + n
            return m[pos - n:pos].decode("utf-8", errors="replace")

        def value(vtype: int, keep: bool) -> Any:
            nonlocal pos
            if vtype == _STRING:
                return string()
            if vtype == _ARRAY:
                etype, n = struct.unpack_from("<IQ", m, pos)
                pos += 12
                if etype in _SCALARS:
                    fmt = f"<{n}{_SCALARS[etype]}"
                    out = struct.unpack_from(fmt, m, pos) if keep else None
                    pos += struct.calcsize(fmt)
                    return out
                if etype == _STRING and not keep:   # e.g. 150k merges: skip without decoding
                    for _ in range(n):
                        (size,) = struct.unpack_from("<Q", m, pos)
                        pos += 8 + size
                    return None
                return [value(etype, keep) for _ in range(n)]
            fmt = "<" + _SCALARS[vtype]
            (out,) = struct.unpack_from(fmt, m, pos)
            pos += struct.calcsize(fmt)
            return out

        found: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            (vtype,) = struct.unpack_from("<I", m, pos)
            pos += 4
            keep = key in _WANTED
            v = value(vtype, keep)
            if keep:
                found[key] = v
        return found


def _byte_level_alphabet() -> dict[str, int]:
    """Printable character -> byte, the reversible byte mapping of GPT-2 style BPE vocabularies
    (bytes that are not printable are shifted to code points from 256 on)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    extra = iter(range(256, 512))
    return {chr(b if b in printable else next(extra)): b for b in range(256)}


@functools.lru_cache(maxsize=4)
def _vocabulary(path: str) -> tuple[Any | None, str | None]:
    """(tiktoken Encoding or None, chat template or None) of a GGUF file, read once per file."""
    meta = _read_tokenizer_metadata(Path(path))
    template = meta.get("tokenizer.chat_template")
    return _encoding(path, meta), template if isinstance(template, str) else None


def gguf_tokenizer(path: str) -> Any | None:
    """The file's own BPE tokenizer as a tiktoken Encoding (see `_encoding`), or None."""
    return _vocabulary(path)[0]


def _encoding(path: str, meta: dict[str, Any]) -> Any | None:
    """A tiktoken Encoding equal to the file's own BPE tokenizer, or None for other vocabularies.

    Qwen2's vocabulary is byte-level BPE whose merge order follows token ids, which is exactly
    tiktoken's rank rule, so the GGUF token list plus llama.cpp's pre-tokenizer regex reproduce
    the model's counts without loading 1 GB of weights.
    """
    import tiktoken

    pattern = _PRE_TOKENIZERS.get(str(meta.get("tokenizer.ggml.pre")))
    if meta.get("tokenizer.ggml.model") != "gpt2" or pattern is None or "tokenizer.ggml.tokens" not in meta:
        return None
    alphabet = _byte_level_alphabet()
    types = meta.get("tokenizer.ggml.token_type") or [_NORMAL_TOKEN] * len(meta["tokenizer.ggml.tokens"])
    ranks: dict[bytes, int] = {}
    for rank, (token, ttype) in enumerate(zip(meta["tokenizer.ggml.tokens"], types, strict=False)):
        if ttype == _NORMAL_TOKEN:
            try:
                ranks[bytes(alphabet[c] for c in token)] = rank
            except KeyError:
                return None   # not a byte-level vocabulary after all
    return tiktoken.Encoding(name=Path(path).name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={})


_DEFAULT_SYSTEM = re.compile(r"else %\}\s*\{\{-?\s*'([^']*)'\s*-?\}\}")


@dataclass(frozen=True)
class ChatMLTokenizer(Tokenizer):
    """Counts a chat exactly as a ChatML template (Qwen's) frames it, instead of OpenAI's framing.

    Each message is `<|im_start|>ROLE\nCONTENT<|im_end|>\n` and the reply is primed with
    `<|im_start|>assistant\n`; without a system message Qwen's template inserts its default one
    (~20 tokens), which OpenAI-style counting would miss.
    """

    default_system: str | None = None

    def count_messages(self, messages: Sequence[Mapping[str, object]]) -> int:
        if self.default_system and (not messages or messages[0].get("role") != "system"):
            messages = [{"role": "system", "content": self.default_system}, *messages]
        total = 1 + self.count("assistant\n")
        for message in messages:
            total += 3 + self.count(f"{message.get('role') or ''}\n{message.get('content') or ''}")
        return total


def chat_tokenizer(path: str, name: str) -> Tokenizer | None:
    """The exact Tokenizer of a GGUF file: ChatML-aware when its template is ChatML."""
    encoding, template = _vocabulary(path)
    if encoding is None:
        return None
    if template and "<|im_start|>" in template:
        found = _DEFAULT_SYSTEM.search(template)
        return ChatMLTokenizer(name=name, exact=True, _encoding=encoding,
                               default_system=found.group(1) if found else None)
    return Tokenizer(name=name, exact=True, _encoding=encoding)


# --- the backend --------------------------------------------------------------------------------

_PARAMS = {"temperature", "max_tokens", "seed", "stop", "top_p", "response_format"}

# --- constrained answers: what llama.cpp's JSON-schema converter enforces --------------------------
#
# A constrained call passes `response_format` (json_schema) through unchanged: llama.cpp turns the
# schema into a grammar and samples only tokens that keep the answer inside it (enums of hundreds of
# strings included). Its converter fails on a broken schema (an empty enum, an unknown type, a $ref
# that resolves to nothing), but it silently skips keywords it does not implement (`not`,
# `uniqueItems`, `patternProperties`, ...) and patterns it cannot translate, answering with a weaker
# constraint than was asked. So a schema is checked here first, against the keywords the converter
# fully enforces, and anything else is refused with one line instead of an answer nobody asked for.

_SCHEMA_NOTES = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
                 "readOnly", "writeOnly"}
_SCHEMA_ENFORCED = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
                    "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
                    "minLength", "maxLength", "format", "minimum", "maximum", "exclusiveMinimum",
                    "exclusiveMaximum"}
_SCHEMA_FORMATS = {"date", "time", "date-time", "uuid"}
_INTEGER_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def unenforced_keyword(schema: Any, where: str = "#") -> str | None:
    """The first part of `schema` llama.cpp would not enforce, as `'KEYWORD' at #/PATH`; None if all is.

    Number bounds are enforced on integers only, `format` for the four formats the converter knows;
    `pattern` is refused outright (only a subset of regex syntax is translated, the rest is dropped
    with a warning on stderr).
    """
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, Mapping):
        return f"{where} (a {type(schema).__name__}, not a schema object)"
    for key, value in schema.items():
        if key in _SCHEMA_NOTES:
            continue
        if key not in _SCHEMA_ENFORCED:
            return f"{key!r} at {where}"
        if key == "format" and value not in _SCHEMA_FORMATS:
            return f"format {value!r} at {where}"
        if key in _INTEGER_BOUNDS and schema.get("type") != "integer":
            return f"{key!r} on a non-integer at {where}"
        if key in {"properties", "$defs", "definitions"} and isinstance(value, Mapping):
            children = [(f"{where}/{key}/{name}", sub) for name, sub in value.items()]
        elif key in {"prefixItems", "anyOf", "oneOf", "allOf"} and isinstance(value, list):
            children = [(f"{where}/{key}/{i}", sub) for i, sub in enumerate(value)]
        elif key in {"items", "additionalProperties"}:
            items = value if isinstance(value, list) else [value]
            children = [(f"{where}/{key}" + (f"/{i}" if isinstance(value, list) else ""), sub)
                        for i, sub in enumerate(items)]
        else:
            continue
        for path, sub in children:
            found = unenforced_keyword(sub, path)
            if found:
                return found
    return None


@dataclass
class GGUFBackend(Backend):
    """Chat completions from a local GGUF file; the chat template is the one inside the file."""

    model: str = DEFAULT_PRESET          # a preset name (tf_prompt.llm.presets.PRESETS) or a .gguf path
    n_threads: int | None = None         # default: all cores
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    seed: int | None = None              # used when a request carries no seed
    cache_dir: str | None = None         # where presets are assembled (default: the tf-prompt cache)
    kind: str = field(default="gguf", init=False)

    def __post_init__(self) -> None:
        self.n_threads = self.n_threads or os.cpu_count() or 1
        self._path: Path | None = None
        self._sha256: str | None = None
        self._loaded: _Loaded | None = None
        self._holding = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def path(self) -> Path:
        """The model file, assembling a preset on first use (ModelError if it cannot be had)."""
        if self._path is None:
            self._path = resolve_gguf(self.model, self.cache_dir)
        return self._path

    def identity(self) -> dict[str, Any]:
        """Keyed by content hash, not path: moving a file keeps its cached replies, and two
        different files under one name never share them."""
        if self._sha256 is None:
            preset = PRESETS.get(self.model)
            # A preset's file is only ever used once it has the pinned hash (llm/presets.py), so its
            # replies are keyed by that hash without reading the file; a user's file by its own.
            if preset is not None:
                self._sha256 = preset.sha256
            else:
                self._path, self._sha256 = identify_gguf(self.model, self.cache_dir)
        name = self.model if self.model in PRESETS else Path(self.model).name
        return {"kind": self.kind, "model": name, "sha256": self._sha256, "n_ctx": self.n_ctx}

    def tokenizer(self) -> Tokenizer | None:
        """Exact counts from the file's vocabulary, framed as its ChatML template frames a chat
        (other templates get `Tokenizer`'s OpenAI framing, a few tokens off per message).

        None when the file is unavailable (packages not installed) or its vocabulary is not one
        we can read: the client then approximates with tiktoken, which is fine for `estimate`.
        """
        try:
            return chat_tokenizer(str(self.path()), f"{self.model} (gguf)")
        except (ModelError, OSError, ValueError, struct.error):
            return None

    def _request(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
        """The chat request for llama.cpp; a constrained call's `response_format` goes as given
        (llama.cpp reads OpenAI's shape), once its schema is one llama.cpp fully enforces."""
        schema = requested_schema(params, f"local model {self.model}")
        if schema is not None:
            found = unenforced_keyword(schema)
            if found:
                raise BackendError(f"local model {self.model}: cannot constrain the answer to this JSON schema: "
                                   f"llama.cpp does not enforce {found}")
        body: dict[str, Any] = {"messages": messages, **{k: v for k, v in params.items() if k in _PARAMS}}
        if body.get("seed") is None and self.seed is not None:
            body["seed"] = self.seed
        return body

    def _hold(self) -> _Loaded:
        """This backend's share of the loaded model, taken on its first call."""
        with self._holding:
            if self._loaded is None:
                sha256 = self.identity()["sha256"]
                key, self._loaded = _acquire(self.path(), sha256, self.n_ctx, int(self.n_threads or 1),
                                             self.n_gpu_layers)
                self._finalizer = weakref.finalize(self, _release, key)
            return self._loaded

    def _call(self, messages: list[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
        request = self._request(messages, params)     # a schema it cannot take fails before the load
        loaded = self._hold()
        with loaded.lock:
            if loaded.server is None:
                raise BackendError(f"local model {self.model}: closed while a call was waiting")
            try:
                return loaded.server.handle_chat_completions(request)
            except ValueError as e:
                # llama.cpp's converter refuses a broken schema while building the chat parser
                # ("... JSON schema error at #: enum must be a non-empty array")
                if "response_format" not in request or "schema" not in str(e).lower():
                    raise
                detail = " ".join(str(e).split()).removeprefix("Unable to generate parser for this template. ")
                raise BackendError(f"local model {self.model}: cannot constrain the answer to this JSON schema: "
                                   f"{detail}") from None

    async def aclose(self) -> None:
        """Let go of the model; the last backend using it closes llama.cpp's server (its port and
        threads). A later call loads it again."""
        with self._holding:
            finalizer, self._finalizer, self._loaded = self._finalizer, None, None
        if finalizer is not None:
            await asyncio.to_thread(finalizer)

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        where = f"local model {self.model}"
        try:
            reply = await asyncio.to_thread(self._call, messages, params)
        except ModelError as e:
            raise BackendError(str(e)) from None
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"{where}: {type(e).__name__}: {e}") from None
        if not isinstance(reply, dict):
            raise BackendError(f"{where}: unexpected reply {str(reply)[:200]}")
        error = reply.get("error")
        if error:
            msg = error.get("message", error) if isinstance(error, dict) else error
            hint = ""
            if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
                hint = f" (raise n_ctx, now {self.n_ctx}, or shorten the prompt)"
            raise BackendError(f"{where}: {msg}{hint}", status=error.get("code") if isinstance(error, dict) else None)
        try:
            choice = reply["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{where}: reply had no choices") from None
        usage = reply.get("usage") or {}
        return Completion(text=(choice.get("message") or {}).get("content") or "",
                          prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"),
                          finish_reason=choice.get("finish_reason"), model=self.model)
