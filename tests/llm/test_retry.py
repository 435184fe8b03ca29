"""Which HTTP statuses are retried, and how long a server can make the client wait.

408 (request timeout) and 409 (conflict, e.g. a lock on the provider's side) are transient: they
are retried like 5xx. A Retry-After longer than `retry.MAX_RETRY_AFTER` (120 s) is cut to it, so
a misbehaving server cannot stall a run for hours. Real HTTP to the loopback server.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tenacity import Future

from tf_prompt import RunSettings
from tf_prompt.api import run_async
from tf_prompt.backends.base import BackendError
from tf_prompt.backends.openai_compat import OpenAIBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm import retry
from tf_prompt.testing import Fault, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


def run_one(server, tmp_path: Path, **kw: Any):
    sentences = read_conll(sample_path())[:1]
    server.responder = oracle_responder(sentences, LABELS)
    settings = RunSettings(model="m", base_url=server.base_url, method="direct", retry_initial=0.01, timeout=10.0,
                           cache_dir=str(tmp_path / "cache"), **kw)
    # bounded: a client that waited as long as a server asked would otherwise hang the suite
    return asyncio.run(asyncio.wait_for(run_async(settings, sentences), 30))


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried(server, tmp_path: Path, status: int) -> None:
    server.fault = lambda body, attempt: Fault(status) if attempt < 2 else None
    summary = run_one(server, tmp_path)
    u = summary.metrics["usage"]
    assert len(server.requests) == 3 and server.faulted == 2 and server.served == 1
    assert u["retries"] == 2 and u["calls"] == 1 and u["failed_calls"] == 0
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["complete"] is True


@pytest.mark.parametrize("status", [400, 404])
def test_contrast_client_errors_are_not_retried(server, tmp_path: Path, status: int) -> None:
    server.fault = lambda body, attempt: Fault(status)
    with pytest.raises(BackendError):
        run_one(server, tmp_path)
    assert len(server.requests) == 1


def _error_for(server, headers: dict[str, str]) -> BackendError:
    """The BackendError the backend raises for a 429 with these headers (one real request)."""
    server.fault = lambda body, attempt: Fault(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                                               headers=headers)

    async def call() -> BackendError:
        backend = OpenAIBackend(model="m", base_url=server.base_url)
        try:
            await backend.complete([{"role": "user", "content": "hi"}], {"max_tokens": 4})
        except BackendError as e:
            return e
        finally:
            await backend.aclose()
        raise AssertionError("the 429 was not an error")

    return asyncio.run(call())


class _State:
    """What the backoff policy reads of tenacity's retry state: the attempt's outcome and number."""

    def __init__(self, exc: BaseException, attempt_number: int = 1):
        self.outcome = Future.construct(attempt_number, exc, True)
        self.attempt_number = attempt_number


@pytest.mark.parametrize("headers", [{"retry-after": "86400"}, {"retry-after-ms": "3600000"}])
def test_retry_after_is_capped(server, headers: dict[str, str]) -> None:
    err = _error_for(server, headers)
    assert err.retryable and err.retry_after is not None and err.retry_after >= 3600   # as the server asked
    assert retry.MAX_RETRY_AFTER == 120.0
    assert retry.Backoff(initial=0.01)(_State(err)) == retry.MAX_RETRY_AFTER
    short = _error_for(server, {"retry-after": "2"})
    assert retry.Backoff(initial=0.01)(_State(short)) == 2.0                              # below the cap: as asked


def test_capped_wait_is_what_the_run_waits(server, tmp_path: Path, monkeypatch) -> None:
    """Over a real run: a one-day Retry-After costs the cap (here lowered to 0.3 s), not a day."""
    monkeypatch.setattr(retry, "MAX_RETRY_AFTER", 0.3)
    arrivals: list[float] = []

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        arrivals.append(time.monotonic())
        if attempt == 0:
            return Fault(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                         headers={"retry-after": "86400"})
        return None

    server.fault = fault
    started = time.monotonic()
    summary = run_one(server, tmp_path)
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.3
    assert time.monotonic() - started < 30            # a day was asked for
    assert summary.metrics["usage"]["retries"] == 1 and summary.metrics["f1"] == pytest.approx(1.0)
