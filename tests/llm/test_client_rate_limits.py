"""--rpm and --tpm spread requests over time, measured where they arrive: at a loopback server
over real HTTP.

Both limiters are leaky buckets (aiolimiter): in any window of w seconds a run may send at most
one bucket (its capacity) plus w seconds' worth of its rate. A run that ignored the limit would
send everything in a burst; a bucket of a whole minute's quota would too (the smoothing this
checks: providers enforce per-second rates).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tf_prompt import RunSettings
from tf_prompt.api import run_async
from tf_prompt.data.conll import Sentence, read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cost import tokenizer_for
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
MAX_TOKENS = 256
# Seconds an arrival may trail the limiter's decision (connection set-up, and scheduling on a
# loaded machine). Generous, yet a run that ignored its limit would still exceed the bound.
LAG = 1.0


def distinct_sentences(n: int) -> list[Sentence]:
    """`n` different sentences (the sample, each with its own extra token): no two prompts are
    the same, so none is deduplicated."""
    base = read_conll(sample_path())
    return [Sentence.from_tokens([*base[k % len(base)].tokens, f"nambari{k}"],
                                 [*(base[k % len(base)].tags or []), "O"], index=k) for k in range(n)]


class Arrivals:
    """Records when each request reached the server (a fault hook that never faults)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any], attempt: int) -> Fault | None:
        with self.lock:
            self.times.append(time.monotonic())
            self.bodies.append(body)
        return None


def run_limited(sentences: list[Sentence], **limits: Any) -> Arrivals:
    arrivals = Arrivals()
    with LoopbackServer(oracle_responder(sentences, LABELS), fault=arrivals) as srv:
        settings = RunSettings(model="m", base_url=srv.base_url, method="direct", no_cache=True, concurrency=64,
                               max_tokens=MAX_TOKENS, **limits)
        summary = asyncio.run(run_async(settings, sentences))
    assert summary.metrics["f1"] == pytest.approx(1.0) and len(arrivals.times) == len(sentences)
    return arrivals


def worst_window_excess(times: list[float], amounts: list[float], capacity: float, rate: float) -> float:
    """max over windows [t_i, t_j] of (amount sent in it) - (capacity + rate * length): <= 0 when
    the requests kept to the bucket."""
    pairs = sorted(zip(times, amounts, strict=True))
    worst = float("-inf")
    for i in range(len(pairs)):
        total = 0.0
        for j in range(i, len(pairs)):
            total += pairs[j][1]
            worst = max(worst, total - capacity - rate * (pairs[j][0] - pairs[i][0]))
    return worst


def test_rpm_spreads_requests_over_each_second() -> None:
    rpm = 1200                       # 20 per second, in a bucket of one second's worth
    rate, capacity = rpm / 60, rpm / 60
    n = 60
    arrivals = run_limited(distinct_sentences(n), rpm=rpm)
    times = arrivals.times
    # the bucket holds 20: the other 40 need 2 s at 20 per second (less a little: the first
    # arrivals wait for their connections, which the limiter does not)
    assert max(times) - min(times) >= (n - capacity) / rate * 0.75, max(times) - min(times)
    # in no window more than a bucket plus that window's rate (slack: arrivals are seen at the
    # server, up to LAG after the limiter let them go -- the first ones wait for a connection --
    # so a window there can hold that much more than at the limiter; unlimited, the excess is ~40)
    assert worst_window_excess(times, [1.0] * n, capacity, rate) <= 2 + rate * LAG


def test_tpm_spreads_tokens_over_time() -> None:
    sentences = distinct_sentences(30)
    tok = tokenizer_for("m")
    # what the client reserves per request: its counted prompt plus a quarter of max_tokens
    probe = run_limited(sentences[:1])
    per_request = tok.count_messages(probe.bodies[0]["messages"]) + MAX_TOKENS // 4
    tpm = 6 * 20 * per_request       # a bucket (tpm / 6 per 10 s) of ~20 requests, ~2 requests/s
    capacity, rate = tpm / 6, tpm / 60
    arrivals = run_limited(sentences, tpm=tpm)
    amounts = [tok.count_messages(b["messages"]) + MAX_TOKENS // 4 for b in arrivals.bodies]
    span = max(arrivals.times) - min(arrivals.times)
    assert span >= (sum(amounts) - capacity) / rate * 0.75, span   # ~5 s, against ~0 unlimited
    # (unlimited, the excess would be ~10 requests' tokens; the slack is 4)
    assert worst_window_excess(arrivals.times, amounts, capacity, rate) <= 2 * max(amounts) + rate * LAG
