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
