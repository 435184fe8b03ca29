"""The model client: every model call goes through here, so none can bypass the cache, the
retry policy, the rate limits or the budget, and every call is counted.

Order of one call:
  1. cache lookup (a hit costs nothing and is counted as a hit);
  2. budget check: the call's worst case (its counted prompt tokens plus `max_tokens` of output,
     priced, the prompt as if all written to the provider's prompt cache where that costs more)
     must fit in what is left, or BudgetExceeded is raised and nothing is sent;
  3. rate limiters (requests and tokens per minute);
  4. the backend call, with retries for transient errors;
  5. the reply is written to the cache *before* it is returned, parsed or used.
In dry-run mode (`tf-prompt estimate`) step 4 is replaced by a stand-in reply and only counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.llm.cache import ReplyCache, cache_key
from tf_prompt.llm.cost import PriceTable, Tokenizer, request_tokens, tokenizer_for
from tf_prompt.llm.retry import DeadEndpoint, with_retries
from tf_prompt.prompting.templates import Prompt

#: Backend kinds that bill per token: a model of theirs missing from the price table has an
#: unknown cost (None), where any other kind (a local engine) costs nothing.
PAID_KINDS = frozenset({"openai", "anthropic", "gemini", "azure"})
#: Anthropic's price of a 5-minute prompt-cache write, as a multiple of the input price: used for
#: a Claude model whose price entry has no `cache_write`.
ANTHROPIC_WRITE = 1.25


class BudgetExceeded(RuntimeError):
    """The next call could take the run past `--max-cost`; nothing was sent."""


class RunStopped(BackendError):
    """Another call of this client failed with an error retrying cannot fix (auth, quota, bad
    request...): the run is stopping, so this call is not sent. Same message as that error."""


@dataclass
class Usage:
    """Counters of one run, reported in metrics.json under `usage`."""

    calls: int = 0               # replies received from the backend (paid)
    cache_hits: int = 0          # replies served from the cache (free)
    attempts: int = 0            # requests sent, including failed ones
    retries: int = 0
    failed_calls: int = 0        # calls that still failed after all retries
    prompt_tokens: int = 0       # as reported by the API (or counted when it reports nothing)
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True      # False when the model has no price in the table
    wall_seconds: float = 0.0
    call_seconds: float = 0.0    # time spent in the calls made (with retries)
    # What the cached replies cost when they were made: a rerun can report a method's full cost.
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_seconds: float = 0.0
    cached_untimed: int = 0      # cache hits stored before replies carried their time
    # The provider's prompt cache (not ours): of the prompt tokens, how many it served (billed at
    # the cached-input price) and how many it stored (Anthropic bills a write above input).
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    by_step: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, step: str, prompt_tokens: int, completion_tokens: int, cost: float | None,
            cache_read: int = 0, cache_write: int = 0) -> None:
        self.calls += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        if cost is None:
            self.cost_known = False
        else:
            self.cost_usd += cost
        s = self.by_step.setdefault(step, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                           "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0})
        s["calls"] += 1
        s["prompt_tokens"] += prompt_tokens
        s["completion_tokens"] += completion_tokens
        s["cache_read_tokens"] += cache_read
        s["cache_write_tokens"] += cache_write
        s["cost_usd"] += cost or 0.0

    def add_cached(self, record: dict[str, Any]) -> None:
        self.cache_hits += 1
        self.cached_prompt_tokens += int(record.get("prompt_tokens") or 0)
        self.cached_completion_tokens += int(record.get("completion_tokens") or 0)
        if record.get("seconds") is None:
            self.cached_untimed += 1
        else:
            self.cached_seconds += float(record["seconds"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["call_seconds"] = round(self.call_seconds, 3)
        d["cached_seconds"] = round(self.cached_seconds, 3)
        d["cost_usd"] = round(self.cost_usd, 6) if self.cost_known else None
        d["wall_seconds"] = round(self.wall_seconds, 3)
        for s in d["by_step"].values():
            s["cost_usd"] = round(s["cost_usd"], 6)
        return d


class Budget:
    """A hard cap in USD: every call reserves its worst case before it is sent.

    When a call does not fit beside the calls in flight, it waits for them to settle (their real
    cost is usually far below the worst case). When it does not fit even with nothing in flight,
    the budget closes: that call and every later one raise BudgetExceeded, while calls already
    in flight complete and are cached, so nothing paid for is lost.
    """

    def __init__(self, max_cost: float):
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        self.closed: str | None = None
        self._changed = asyncio.Condition()

    async def reserve(self, amount: float) -> None:
        async with self._changed:
            while True:
                if self.closed:
                    raise BudgetExceeded(self.closed)
                if self.spent + self.reserved + amount <= self.max_cost + 1e-12:
                    self.reserved += amount
                    return
                if self.reserved <= 1e-12:
                    self.closed = (
                        f"budget reached: ${self.spent:.4f} spent of --max-cost ${self.max_cost:.4f}; the next "
                        f"call could cost up to ${amount:.4f}. Outputs so far are kept; raise --max-cost and "
                        f"rerun (cached replies are free)")
                    raise BudgetExceeded(self.closed)
                await self._changed.wait()

    async def settle(self, reserved: float, actual: float) -> None:
        async with self._changed:
            self.reserved -= reserved
            self.spent += actual
            self._changed.notify_all()


@dataclass
class ClientOptions:
    """How calls are made; none of this changes a reply, so none of it is in the cache key."""

    max_retries: int = 5
    retry_initial: float = 1.0
    rpm: float | None = None
    tpm: float | None = None
    max_cost: float | None = None
    dry_run: bool = False
    use_cache: bool = True
    #: calls in flight at once: an estimate assumes the first this many calls of a template all
    #: miss the provider's prompt cache (they are sent before any of them has written it)
    concurrency: int = 1


def _smooth_limiter(per_minute: float) -> AsyncLimiter:
    """A limiter that spreads requests over the minute instead of allowing a burst of a whole
    minute's quota at the start (which is what trips providers' per-second enforcement)."""
    if per_minute >= 60:
        return AsyncLimiter(per_minute / 60, 1)
    return AsyncLimiter(1, 60 / per_minute)


class ModelClient:
    """Sends prompts to one backend with fixed decoding parameters; caches, retries, counts."""

    def __init__(self, backend: Backend, params: dict[str, Any] | None = None, *,
                 cache: ReplyCache | None = None, options: ClientOptions | None = None,
                 prices: PriceTable | None = None, usage: Usage | None = None,
                 tokenizer: Tokenizer | None = None):
        self.backend = backend
        self.params = dict(params or {})
        self.cache = cache
        self.options = options or ClientOptions()
        self.prices = prices or PriceTable.load()
        self.usage = usage if usage is not None else Usage()
        self._tokenizer = tokenizer
        self.budget = Budget(self.options.max_cost) if self.options.max_cost is not None else None
        self._rpm = _smooth_limiter(self.options.rpm) if self.options.rpm else None
        self._tpm = AsyncLimiter(self.options.tpm / 6, 10) if self.options.tpm else None
        self.cache_misses = 0
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self.stopped: BackendError | None = None   # the fatal error that stops the run, once one occurred
        self._dead = DeadEndpoint()                 # stops a run whose endpoint never answered
        self._prefix_calls: dict[str, int] = {}      # estimate: calls so far per template
        if self.budget is not None and self.price_of(1, 1) is None:
            raise BudgetExceeded(
                f"--max-cost needs a price for model {backend.model!r}: add it to a prices file "
                f"(--prices FILE, with input/output USD per 1M tokens; 0 for a local model)")

    @property
    def tokenizer(self) -> Tokenizer:
        """The backend's own tokenizer, else tiktoken by model name; loaded on first use (a local
        backend may have to load its model for it)."""
        if self._tokenizer is None:
            self._tokenizer = self.backend.tokenizer() or tokenizer_for(self.backend.model)
        return self._tokenizer

    @property
    def tokenizer_name(self) -> str | None:
        """Name of the tokenizer used so far (None if nothing needed counting)."""
        return self._tokenizer.name if self._tokenizer is not None else None

    @property
    def tokenizer_note(self) -> str | None:
        """Why counts are approximate (e.g. o200k_base not available offline), if they are."""
        return self._tokenizer.note if self._tokenizer is not None else None

    def price_of(self, prompt_tokens: int, completion_tokens: int, cache_read: int = 0,
                 cache_write: int = 0) -> float | None:
        price = self.prices.lookup(self.backend.model)
        if self.backend.kind not in PAID_KINDS and price is None:
            return 0.0  # local backends cost nothing unless the price file says otherwise
        if self.backend.kind == "anthropic" and price is not None and price.cache_write is None and cache_write:
            # the anthropic backend always marks a cached prefix, and Anthropic bills its 5-minute
            # cache write at 1.25x input: an entry without a cache_write price (a --prices file)
            # must not count writes as plain input, below what is billed
            rest = self.prices.cost(self.backend.model, max(0, prompt_tokens - cache_write), completion_tokens,
                                    cache_read=cache_read)
            return None if rest is None else rest + cache_write * price.input * ANTHROPIC_WRITE / 1_000_000
        return self.prices.cost(self.backend.model, prompt_tokens, completion_tokens,
                                cache_read=cache_read, cache_write=cache_write)

    def worst_price(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The most a call of this many tokens can cost: every prompt token at the input price, or
        every one written to the provider's prompt cache when a write costs more (Anthropic bills
        it at 1.25x input), whichever is higher; 0.0 without a price. What --max-cost reserves."""
        plain = self.price_of(prompt_tokens, completion_tokens) or 0.0
        written = self.price_of(prompt_tokens, completion_tokens, cache_write=prompt_tokens) or 0.0
        return max(plain, written)

    def _estimated_cache(self, prompt: Prompt, prompt_tokens: int) -> tuple[int, int]:
        """Estimate: the prompt tokens the provider's prompt cache would serve and store for
        `prompt` (read, write), assuming its shared prefix (system message and the fixed part of
        the last message) is cached once the first `concurrency` calls of its template were sent.

        (0, 0) without cache prices in the table or below the provider's minimum prefix. OpenAI
        caches in steps of 128 tokens past its minimum and bills no write; a table entry with a
        `cache_write` price (Anthropic) caches the whole prefix at the marked breakpoint.
        """
        price = self.prices.lookup(self.backend.model)
        if price is None or price.cached_input is None or price.cache_min_tokens is None:
            return 0, 0
        last = prompt.messages[-1] if prompt.messages else None
        if last is None or prompt.fixed < 0:   # no prefix the same for every sentence
            return 0, 0
        prefix = (self.tokenizer.count_messages(prompt.messages[:-1])
                  + self.tokenizer.count(last["content"][:prompt.fixed]))
        minimum = int(price.cache_min_tokens)
        if prefix < minimum:
            return 0, 0
        if price.cache_write is None:
            prefix = minimum + (prefix - minimum) // 128 * 128
        prefix = min(prefix, prompt_tokens)
        seen = self._prefix_calls.get(prompt.identity, 0)
        self._prefix_calls[prompt.identity] = seen + 1
        if seen < max(1, self.options.concurrency):
            return 0, (prefix if price.cache_write is not None else 0)
        return prefix, 0

    def request_params(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters one call sends: the run's decoding parameters plus the call's own
        (`extra`: a constrained answer's `response_format`). Without `extra` they are the run's
        very object, so an unconstrained call's cache key is what it always was."""
        return {**self.params, **extra} if extra else self.params

    def key(self, prompt: Prompt, extra: dict[str, Any] | None = None) -> str:
        """The cache key of `prompt` sent with `extra` parameters: a constrained and an
        unconstrained call of the same prompt are different calls."""
        return self._key(prompt, self.request_params(extra))

    def _key(self, prompt: Prompt, sent: dict[str, Any]) -> str:
        return cache_key(self.backend.identity(), prompt.messages, sent, prompt.identity)

    async def ask(self, prompt: Prompt, standin: str | None = None, params: dict[str, Any] | None = None) -> Completion:
        """The model's reply to `prompt` (from the cache if possible).

        `standin` is the reply assumed in dry-run mode, where nothing is sent. `params` are this
        call's own request parameters, merged over the run's (and part of its cache key).
        """
        sent = self.request_params(params)
        key = self._key(prompt, sent) if self.cache is not None else ""
        if self.cache is not None and self.options.use_cache:
            record = self.cache.get(key)
            if record is not None:
                self.usage.add_cached(record)
                return Completion(text=record["text"], prompt_tokens=record.get("prompt_tokens"),
                                  completion_tokens=record.get("completion_tokens"),
                                  finish_reason=record.get("finish_reason"), model=record.get("model"),
                                  cached=True, cache_read_tokens=record.get("cache_read_tokens"),
                                  cache_write_tokens=record.get("cache_write_tokens"))
        # Identical prompts in flight at the same time (repeated sentences) are sent once.
        shared = self._inflight.get(key) if key else None
        if shared is not None:
            completion = await asyncio.shield(shared)
            self.usage.cache_hits += 1
            return Completion(**{**completion.__dict__, "cached": True})
        self.cache_misses += 1
        if self.options.dry_run:
            prompt_tokens = request_tokens(self.tokenizer, prompt.messages, sent)
            text = standin if standin is not None else ""
            completion_tokens = self.tokenizer.count(text)
            read, write = self._estimated_cache(prompt, prompt_tokens)
            self.usage.add(prompt.step, prompt_tokens, completion_tokens,
                           self.price_of(prompt_tokens, completion_tokens, read, write), read, write)
            completion = Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                    cache_read_tokens=read, cache_write_tokens=write)
            if key:
                done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
                done.set_result(completion)
                self._inflight[key] = done   # later identical prompts of the estimate are free
            return completion
        future: asyncio.Future[Completion] | None = None
        if key:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
        try:
            completion = await self._fetch(prompt, key, sent)
        except BaseException as e:
            if future is not None:
                self._inflight.pop(key, None)
                if isinstance(e, Exception):
                    future.set_exception(e)
                    future.exception()  # mark retrieved: there may be nobody waiting
                else:
                    future.cancel()
            raise
        if future is not None:
            self._inflight.pop(key, None)
            future.set_result(completion)
        return completion

    async def _fetch(self, prompt: Prompt, key: str, params: dict[str, Any] | None = None) -> Completion:
        """Budget, rate limits, the call with retries, then the cache write. `params`: what
        the call sends (the run's parameters when None)."""
        params = self.params if params is None else params
        # Counting is only needed to bound or pace a call, or when the API reports no usage;
        # skipping it otherwise keeps the framework's CPU cost per call low.
        needs_count = self.budget is not None or self._tpm is not None
        prompt_tokens = request_tokens(self.tokenizer, prompt.messages, params) if needs_count else None
        worst = 0.0
        if self.budget is not None:
            # an approximate count must not let a call slip past the cap
            margin = 1.0 if self.tokenizer.exact else 1.15
            assert prompt_tokens is not None
            worst = self.worst_price(int(prompt_tokens * margin) + 1, int(self.params.get("max_tokens") or 4096))
            await self.budget.reserve(worst)
        try:
            if self._rpm is not None:
                await self._rpm.acquire()
            if self._tpm is not None:
                assert prompt_tokens is not None
                expected = prompt_tokens + int(self.params.get("max_tokens") or 256) // 4
                await self._tpm.acquire(min(expected, self._tpm.max_rate))
            started = time.perf_counter()
            completion = await with_retries(self._attempt(prompt, params), max_retries=self.options.max_retries,
                                            initial=self.options.retry_initial, on_retry=self._count_retry)
        except BaseException as e:
            if isinstance(e, BackendError) and not isinstance(e, RunStopped):
                if not e.retryable and self.stopped is None:
                    self.stopped = e   # before any await: no other call may be sent from now on
                self.usage.failed_calls += 1
            if self.budget is not None:
                await self.budget.settle(worst, 0.0)
            raise
        seconds = time.perf_counter() - started
        self.usage.call_seconds += seconds
        p_tok = (completion.prompt_tokens if completion.prompt_tokens is not None
                 else prompt_tokens if prompt_tokens is not None
                 else request_tokens(self.tokenizer, prompt.messages, params))
        c_tok = (completion.completion_tokens if completion.completion_tokens is not None
                 else self.tokenizer.count(completion.text))
        read, write = completion.cache_read_tokens or 0, completion.cache_write_tokens or 0
        if self.cache is not None:
            # Stored before anything can fail: a paid reply is never lost.
            record = {"text": completion.text, "prompt_tokens": p_tok, "completion_tokens": c_tok,
                      "finish_reason": completion.finish_reason, "model": completion.model,
                      "template": prompt.identity, "step": prompt.step, "seconds": round(seconds, 3)}
            if read or write:   # what the provider's prompt cache did for this reply
                record.update(cache_read_tokens=read, cache_write_tokens=write)
            self.cache.set(key, record)
        cost = self.price_of(p_tok, c_tok, read, write)
        if self.budget is not None:
            await self.budget.settle(worst, cost or 0.0)
        self.usage.add(prompt.step, p_tok, c_tok, cost, read, write)
        return completion

    def _attempt(self, prompt: Prompt, params: dict[str, Any]) -> Callable[[], Awaitable[Completion]]:
        tries = 0

        async def call() -> Completion:
            nonlocal tries
            if self.stopped is not None:
                # Set by a fatal error of a concurrent call: the run is stopping, send nothing
                # more (a request sent now would be cancelled, but could still be billed).
                raise RunStopped(str(self.stopped), status=self.stopped.status)
            self.usage.attempts += 1
            tries += 1
            try:
                completion = await self.backend.complete_prompt(prompt.messages, params, prompt.fixed)
            except BackendError as e:
                # An endpoint that never answered stops the run now, not after every retry of
                # every sentence (retry.DeadEndpoint).
                fatal = self._dead.failed(e, tries, last=tries > self.options.max_retries)
                if fatal is not None:
                    raise fatal from None
                raise
            self._dead.succeeded_once()
            return completion
        return call

    def _count_retry(self, exc: BaseException | None) -> None:
        self.usage.retries += 1

    async def aclose(self) -> None:
        await self.backend.aclose()
