"""Retry policy for model calls (tenacity): only what can succeed on a second try is retried.

Rate limits (429 without `insufficient_quota`), 5xx, timeouts and dropped connections are retried
with exponential backoff and full jitter, or after exactly the time the server asked for
(`retry-after-ms` / `retry-after`). Everything else — quota, auth, permission, not found, bad
request — is raised at once so the run can stop with a message saying what to fix.
"""

from __future__ import annotations

import random
from typing import Any, Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .backends.base import BackendError

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
        if on_retry is not None and state.outcome is not None:
            on_retry(state.outcome.exception())

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


class DeadEndpoint:
    """A per-run circuit breaker: an endpoint that has never answered is not retried for long.

    Retries are for an endpoint that works but hiccups. When no request of the run has ever
    succeeded and failures that say "nobody is answering" pile up (connection refused, DNS,
    timeouts, 5xx), retrying every sentence 5 times only hides the cause for minutes. `failed`
    then returns a fatal error naming the cause, and the run stops with its outputs kept.

    It trips after `min_failures` such failed attempts in the run, on a failure that has no
    HTTP status (nothing answered: a refused or dropped connection), on a call's second timeout
    (one timeout may be a slow first reply on a busy machine), or on the `attempts`-th failed
    attempt of one call (a server that keeps answering 5xx after a few retries), or when a call
    has used all its retries. Once any request has succeeded it never trips: from then on
    transient errors are retried as before. 429 neither counts nor resets: a server that rate
    limits is alive.
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
        """No answer (connection, timeout: no status) or a server error (408 or 5xx)."""
        return (isinstance(e, BackendError) and e.retryable
                and (e.status is None or e.status == 408 or e.status >= 500))

    def failed(self, e: BaseException, attempt: int, last: bool) -> BackendError | None:
        """Record a failed attempt (the call's `attempt`-th, `last` if no retry is left); the
        error that stops the run if the breaker trips, else None."""
        if self.succeeded or not self.is_dead_sign(e):
            return None
        self.failures += 1
        if self.failures < self.min_failures:
            return None
        assert isinstance(e, BackendError)
        refused = e.status is None and not e.timed_out   # connection refused, DNS, reset: nobody there
        if refused or (e.timed_out and attempt >= 2) or attempt >= self.attempts or last:
            return BackendError(f"{e}; no request of this run has succeeded ({self.failures} attempts failed), "
                                f"so it stops here with its outputs kept: rerun once the endpoint answers",
                                status=e.status)
        return None
