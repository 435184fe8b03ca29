"""Retry policy for model calls (tenacity): only what can succeed on a second try is retried.

Rate limits (429 without `insufficient_quota`), 5xx, timeouts and dropped connections are retried
with exponential backoff and full jitter, or after exactly the time the server asked for
(`retry-after-ms` / `retry-after`). Everything else — quota, auth, permission, not found, bad
request — is raised at once so the run can stop with a message saying what to fix.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from tf_prompt.backends.base import BackendError

T = TypeVar("T")

#: Longest wait honoured from a Retry-After header, so a misbehaving server cannot stall a run.
MAX_RETRY_AFTER = 120.0


def is_retryable(e: BaseException) -> bool:
    return isinstance(e, BackendError) and e.retryable


class Backoff:
    """Server-requested delay if given, else min(cap, initial * 2**n) * uniform(0.5, 1)."""

    def __init__(self, initial: float = 1.0, cap: float = 30.0):
        self.initial = initial
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, BackendError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
        ceiling = min(self.cap, self.initial * 2 ** (state.attempt_number - 1))
        return ceiling * random.uniform(0.5, 1.0)


async def with_retries(call: Callable[[], Awaitable[T]], *, max_retries: int, initial: float = 1.0,
                       on_retry: Callable[[BaseException], Any] | None = None) -> T:
    """Run `call`, retrying retryable BackendErrors up to `max_retries` times."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and error is not None:   # only exceptions are retried
            on_retry(error)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(max_retries + 1),
        wait=Backoff(initial),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover


#: Anthropic's "overloaded" status (overloaded_error): the API is up and says it is busy.
OVERLOADED = 529


class DeadEndpoint:
    """A per-run circuit breaker: an endpoint that has never answered is not retried for long.

    Retries are for an endpoint that works but hiccups. When no request of the run has ever
    succeeded and failures that say "nobody is answering" or "this is not the API" pile up
    (connection refused, DNS, timeouts, dropped connections, 5xx, replies that are not an API's
    such as a web page), retrying every sentence 5 times only hides the cause for minutes.
    `failed` then returns a fatal error naming the cause, and the run stops with its outputs kept.

    It trips after `min_failures` such failed attempts in the run, on a failure whose cause is
    unambiguous (connection refused, host name not found: `unreachable`; a reply that is not an
    API's: `not_an_api`), on a call's second failure with no answer (a timeout or a dropped or
    reset connection: one may be a slow first reply, a server restarting or a proxy hiccup), or
    on the `attempts`-th failed attempt of one call (a server that keeps answering 5xx after a
    few retries), or when a call has used all its retries. Once any request has succeeded it
    never trips: from then on transient errors and malformed replies are retried per call as
    before. 429 neither counts nor resets: a server that rate limits is alive. Anthropic's 529
    (overloaded) counts, but trips only when a call has used all its retries: the API is up and
    busy, and --max-retries says how long to wait for it.
    """

    def __init__(self, min_failures: int = 3, attempts: int = 4):
        self.min_failures = min_failures
        self.attempts = attempts
        self.succeeded = False
        self.failures = 0

    def succeeded_once(self) -> None:
        self.succeeded = True

    @staticmethod
    def is_dead_sign(e: BaseException) -> bool:
        """No answer (connection, timeout: no status), a server error (408 or 5xx), or an answer
        that is not an API reply."""
        return (isinstance(e, BackendError) and e.retryable
                and (e.status is None or e.status == 408 or e.status >= 500 or e.not_an_api))

    def failed(self, e: BaseException, attempt: int, last: bool) -> BackendError | None:
        """Record a failed attempt (the call's `attempt`-th, `last` if no retry is left); the
        error that stops the run if the breaker trips, else None."""
        if self.succeeded or not self.is_dead_sign(e):
            return None
        self.failures += 1
        if self.failures < self.min_failures:
            return None
        assert isinstance(e, BackendError)
        if e.status == OVERLOADED and not last:
            return None   # the API answering that it is busy: every retry allowed is made first
        certain = e.unreachable or e.not_an_api
        no_answer = e.status is None   # timed out, dropped or reset: wants a second try of one call
        if certain or (no_answer and attempt >= 2) or attempt >= self.attempts or last:
            hint = (" (is --base-url the API's base URL, usually ending in /v1?)" if e.not_an_api else "")
            fix = "fix the base URL and rerun" if e.not_an_api else "rerun once the endpoint answers"
            return BackendError(f"{e}{hint}; no request of this run has succeeded ({self.failures} attempts "
                                f"failed), so it stops here with its outputs kept: {fix}", status=e.status)
        return None
