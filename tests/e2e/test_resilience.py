"""Resilience of a run against a real (loopback) OpenAI-compatible server over real HTTP.

Flaky servers (429 / 5xx / hangs), Retry-After, fatal errors, the reply cache, kill -9 and Ctrl-C
with resume, and calls that keep failing. The real `openai` client talks HTTP to
`tf_prompt.testing.LoopbackServer` on 127.0.0.1; nothing is mocked. Fault decisions are
deterministic functions of the attempt number or of the request content.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tf_prompt import RunSettings
from tf_prompt.api import run_async
from tf_prompt.cli import main
from tf_prompt.data.conll import Sentence, read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cache import ReplyCache
from tf_prompt.testing import Fault, LoopbackServer, english_translation, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
CALLS_PER_SENTENCE = 4  # transfusion: translate, annotate, fuse, direct (the default --combine)
# The client timeout of the flaky-server test: hangs outlast it; an ordinary reply, even on a
# loaded 2-core machine, must not (a slow ordinary reply would be retried and break exact counts).
TIMEOUT = 3.0


# --- helpers ---------------------------------------------------------------------------------

def sentences_n(n: int) -> list[Sentence]:
    """`n` distinct labelled sentences: the shipped sample cycled, each with a distinct extra token."""
    base = read_conll(sample_path())
    out = []
    for k in range(n):
        s = base[k % len(base)]
        out.append(Sentence.from_tokens(list(s.tokens) + [f"nambari{k}"], list(s.tags or []) + ["O"], index=k))
    return out


def numbered_english(sentence: Sentence) -> str:
    """The oracle's English translation plus the sentence's distinct `nambariK` token: every
    request of a sentence names it (_sentence_of), and no two sentences share an annotate call."""
    return f"{english_translation(sentence)} ( {sentence.tokens[-1]} )"


def write_conll_gold(path: Path, sentences: list[Sentence]) -> Path:
    path.write_text("\n\n".join("\n".join(f"{t} {g}" for t, g in zip(s.tokens, s.tags or [], strict=False))
                                for s in sentences) + "\n", encoding="utf-8")
    return path


def request_key(body: dict[str, Any]) -> str:
    """What identifies one logical request (the same content is sent again only on a retry)."""
    return json.dumps(body["messages"], sort_keys=True, ensure_ascii=False)


def user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def run(settings: RunSettings, sentences: list[Sentence] | None = None):
    return asyncio.run(run_async(settings, sentences))


def settings_for(server: LoopbackServer, tmp_path: Path, name: str, **kw: Any) -> RunSettings:
    base = dict(model="m", base_url=server.base_url, method="transfusion", concurrency=8,
                out=str(tmp_path / name), cache_dir=str(tmp_path / f"cache-{name}"), retry_initial=0.01)
    base.update(kw)
    return RunSettings(**base)


def read_metrics(out: Path) -> dict[str, Any]:
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def cached_texts(cache_dir: Path) -> list[str]:
    """The text of every reply in a reply cache (read with diskcache, as ReplyCache stores it)."""
    import diskcache

    with diskcache.Cache(str(cache_dir / "replies")) as store:
        return [rec["text"] for key in store if isinstance(rec := store.get(key), dict) and "text" in rec]


def read_trace(out: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (out / "trace.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]


# --- 1. a flaky server: same F1, retries counted, no reply paid twice -----------------------

class FlakyPlan:
    """~20% of attempts fail (429 with and without retry-after-ms, 500, 503, a dropped
    connection), ~2% hang past the client's timeout (then close the connection, or answer 200 too
    late). The decision is a pure function of the attempt number, so the run is reproducible."""

    def __init__(self, timeout: float, seed: int = 1234):
        self.timeout = timeout
        self.seed = seed
        self.kinds: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def kind(self, attempt: int) -> str | None:
        if attempt in (5, 40):          # make sure both kinds of hang happen at least once
            return "hang-close" if attempt == 5 else "hang-late-200"
        if attempt in (2, 3):           # ... and a server-paced 429 early on
            return "429-ms"
        r = random.Random(self.seed * 1_000_003 + attempt).random()
        if r < 0.02:
            return "hang-close" if attempt % 2 else "hang-late-200"
        for limit, kind in ((0.07, "429-ms"), (0.11, "429"), (0.15, "500"), (0.19, "503"), (0.22, "drop")):
            if r < limit:
                return kind
        return None

    def __call__(self, body: dict[str, Any], attempt: int) -> Fault | None:
        kind = self.kind(attempt)
        if kind is None:
            return None
        with self.lock:
            self.kinds[kind] += 1
        if kind == "hang-close":
            return Fault(status=0, delay=self.timeout + 0.5)
        if kind == "drop":
            return Fault(status=0)
        if kind == "hang-late-200":
            late = {"id": "late", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "too late"},
                                 "finish_reason": "stop"}]}
            return Fault(status=200, body=late, delay=self.timeout + 0.5)
        if kind == "429-ms":
            return Fault(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
                         headers={"retry-after-ms": str(10 + attempt % 4 * 10)})
        if kind == "429":
            return Fault(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
        return Fault(int(kind), {"error": {"message": "overloaded", "type": "server_error", "code": None}})


def test_flaky_server_same_f1_retries_and_no_reply_paid_twice(tmp_path: Path) -> None:
    sentences = sentences_n(36)
    responder = oracle_responder(sentences, LABELS, translation=numbered_english)
    clean_total = CALLS_PER_SENTENCE * len(sentences)

    with LoopbackServer(responder) as clean:
        clean_summary = run(settings_for(clean, tmp_path, "clean", timeout=TIMEOUT), sentences)
    clean_m = clean_summary.metrics
    assert clean_m["f1"] == pytest.approx(1.0) and clean_m["complete"] is True
    assert clean.served == len(clean.requests) == clean_m["usage"]["calls"] == clean_total

    plan = FlakyPlan(timeout=TIMEOUT)
    with LoopbackServer(responder, fault=plan) as flaky:
        started = time.monotonic()
        summary = run(settings_for(flaky, tmp_path, "flaky", timeout=TIMEOUT, max_retries=8), sentences)
        elapsed = time.monotonic() - started
        served_at_end = flaky.served
        attempts = len(flaky.requests)
        faulted = flaky.faulted
        per_request = collections.Counter(request_key(b) for b in flaky.requests)
        # wait until every hang has ended, i.e. the late 200s of abandoned hangs have gone out
        deadline = time.monotonic() + 4 * TIMEOUT
        while flaky.faults_done < faulted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flaky.faults_done == faulted
    m = summary.metrics
    u = m["usage"]
    # ... and none of them was used: not in the cache, not in any trace, not counted as a call
    texts = cached_texts(tmp_path / "cache-flaky")
    assert len(texts) == clean_total and not any("too late" in t for t in texts)
    trace_text = (Path(summary.out_dir) / "trace.jsonl").read_text(encoding="utf-8")
    assert plan.kinds["hang-late-200"] >= 1 and "too late" not in trace_text

    # the plan really was hostile: every kind of failure happened, about a fifth of the attempts
    assert set(plan.kinds) == {"hang-close", "hang-late-200", "429-ms", "429", "500", "503", "drop"}, plan.kinds
    assert faulted == sum(plan.kinds.values()) and 0.1 <= faulted / attempts <= 0.35
    # same result as the clean run
    assert m["complete"] is True
    assert m["f1"] == clean_m["f1"] == pytest.approx(1.0)
    assert m["n_sentences"] == len(sentences) and m["parse_failures"] == 0
    assert not any(t["failed"] or t["errors"] for t in read_trace(Path(summary.out_dir)))
    # retries happened and are counted exactly
    assert u["retries"] > 0
    assert u["retries"] == faulted == attempts - clean_total
    assert u["attempts"] == attempts and u["failed_calls"] == 0
    # no reply paid twice: every successful reply was used exactly once
    assert served_at_end == clean_total == u["calls"]
    assert len(per_request) == clean_total            # each logical request reached the server
    assert sum(n - 1 for n in per_request.values()) == faulted   # ... and was only repeated after a fault
    assert u["prompt_tokens"] == flaky.prompt_tokens  # tokens paid = tokens of the served replies
    assert elapsed < 30


# --- 2. Retry-After is honoured ------------------------------------------------------------

@pytest.mark.parametrize("headers,expected_gap", [({"retry-after-ms": "400"}, 0.4), ({"retry-after": "1"}, 1.0)])
def test_retry_after_is_honoured(server, tmp_path: Path, monkeypatch, headers: dict[str, str],
                                expected_gap: float) -> None:
    from tf_prompt.llm import retry

    sentence = sentences_n(1)
    server.responder = oracle_responder(sentence, LABELS, translation=numbered_english)
    arrivals: list[float] = []
    waits: list[float] = []
    decide = retry.Backoff.__call__
    monkeypatch.setattr(retry.Backoff, "__call__", lambda self, state: waits.append(decide(self, state)) or waits[-1])

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        arrivals.append(time.monotonic())
        if attempt == 0:
            return Fault(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, headers=headers)
        return None

    server.fault = fault
    # retry_initial=0.01: without the header the client would come back after ~10 ms
    summary = run(settings_for(server, tmp_path, "ra", method="direct", timeout=5.0), sentence)
    assert len(arrivals) == 2
    gap = arrivals[1] - arrivals[0]
    # the policy chose exactly the server's delay, and the client did wait it (the upper bound
    # is loose: on a loaded machine a round trip can take a while)
    assert waits == [expected_gap]
    assert expected_gap <= gap < expected_gap + 10
    assert summary.metrics["f1"] == pytest.approx(1.0)
    assert summary.metrics["usage"]["retries"] == 1 and summary.metrics["usage"]["calls"] == 1


def test_backoff_without_header_is_short_and_bounded(server, tmp_path: Path, monkeypatch) -> None:
    """The contrast case of the test above: a 503 without a header is retried after the
    (here tiny) exponential backoff, not after some fixed long wait. The waits are read where the
    policy decides them (wall time on a loaded machine would measure the machine)."""
    from tf_prompt.llm import retry

    sentence = sentences_n(1)
    server.responder = oracle_responder(sentence, LABELS, translation=numbered_english)
    arrivals: list[float] = []
    waits: list[float] = []
    decide = retry.Backoff.__call__
    monkeypatch.setattr(retry.Backoff, "__call__", lambda self, state: waits.append(decide(self, state)) or waits[-1])

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        arrivals.append(time.monotonic())
        return Fault(503) if attempt < 3 else None

    server.fault = fault
    summary = run(settings_for(server, tmp_path, "bo", method="direct", timeout=5.0), sentence)
    assert len(arrivals) == 4 and len(waits) == 3
    # retry_initial 0.01: full jitter in [0.5, 1] x 0.01 * 2**n
    assert all(0.005 * 2 ** n <= w <= 0.01 * 2 ** n for n, w in enumerate(waits)), waits
    assert all(b - a >= w for a, b, w in zip(arrivals, arrivals[1:], waits, strict=False))   # and they were waited
    assert summary.metrics["usage"]["retries"] == 3 and summary.metrics["f1"] == pytest.approx(1.0)


# --- 3. errors that cannot be fixed by retrying stop the run after one attempt --------------

FATAL = {
    "insufficient_quota": (429, {"error": {"message": "You exceeded your current quota.",
                                           "type": "insufficient_quota", "code": "insufficient_quota"}},
                           "insufficient quota"),
    "401": (401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                            "code": "invalid_api_key"}}, "HTTP 401"),
    "403": (403, {"error": {"message": "not allowed", "type": "permission_error", "code": None}}, "HTTP 403"),
    "404": (404, {"error": {"message": "The model `m` does not exist", "type": "invalid_request_error",
                            "code": "model_not_found"}}, "HTTP 404"),
    "400": (400, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error",
                            "code": None}}, "HTTP 400"),
}


@pytest.mark.parametrize("name", list(FATAL))
def test_fatal_errors_stop_after_one_attempt(server, tmp_path: Path, capsys, name: str) -> None:
    status, body, expect = FATAL[name]
    sentences = sentences_n(24)
    data = write_conll_gold(tmp_path / "d.txt", sentences)
    server.responder = oracle_responder(sentences, LABELS, translation=numbered_english)
    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def fault(req: dict[str, Any], attempt: int) -> Fault | None:
        with lock:
            seen[request_key(req)] += 1
        # the first few calls succeed, so some sentences finish before the error
        return None if attempt < 6 else Fault(status, body)

    server.fault = fault
    out = tmp_path / "o"
    started, cpu = time.monotonic(), time.process_time()
    rc = main(["run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
               "--data", str(data), "--concurrency", "4", "--retry-initial", "0.01", "--timeout", "5",
               "--out", str(out)])
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    err = capsys.readouterr().err
    assert rc == 1
    # stops at once: little work (CPU time, which a busy machine does not inflate) and no wait
    # for a timeout or a long backoff (a generous wall bound, for a loaded machine)
    assert cpu < 5 and elapsed < 20, (cpu, elapsed)
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tf-prompt: error:") and expect in last
    # no request was ever sent twice, and at most the requests in flight failed
    assert seen and max(seen.values()) == 1, [n for n in seen.values() if n > 1]
    assert 1 <= server.faulted <= 8   # 4 sentences in flight, each with up to 2 requests (direct + pivot)
    assert len(server.requests) == 6 + server.faulted
    # partial outputs are kept and marked as incomplete
    metrics = read_metrics(out)
    assert metrics["complete"] is False and metrics["usage"]["retries"] == 0
    assert server.served == 6 and 1 <= metrics["usage"]["calls"] <= 6
    assert (out / "trace.jsonl").exists() and (out / "predictions.conll").exists()
    assert metrics["n_sentences"] == len(read_trace(out)) < len(sentences)


# --- 4. the reply cache --------------------------------------------------------------------

def test_second_identical_run_makes_no_call_and_cache_is_per_endpoint(tmp_path: Path, monkeypatch) -> None:
    """The README: API keys are never part of the cache key (nor stored). The second run uses
    another key and still gets every reply from the cache."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET123")
    sentences = read_conll(sample_path())
    responder = oracle_responder(sentences, LABELS, translation=numbered_english)
    cache_dir = tmp_path / "cache"
    outs = [tmp_path / f"run{i}" for i in range(3)]

    def cli(server: LoopbackServer, out: Path) -> dict[str, Any]:
        rc = main(["run", "--model", "gpt-4o-mini", "--base-url", server.base_url, "--method", "transfusion",
                   "--cache-dir", str(cache_dir), "--concurrency", "4", "--out", str(out)])
        assert rc == 0
        return read_metrics(out)

    with LoopbackServer(responder) as first:
        m1 = cli(first, outs[0])
        assert len(first.requests) == m1["usage"]["calls"] == CALLS_PER_SENTENCE * len(sentences)
        assert m1["usage"]["cache_hits"] == 0
        n_before = len(first.requests)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-OTHER456")   # another key: same cache entries
        m2 = cli(first, outs[1])
        assert len(first.requests) == n_before  # second identical run: the server saw nothing
    assert m2["usage"]["calls"] == 0 and m2["usage"]["attempts"] == 0
    assert m2["usage"]["cache_hits"] == m1["usage"]["calls"]
    assert m2["f1"] == m1["f1"] == pytest.approx(1.0)
    assert m2["complete"] is True

    # another endpoint serving the same model name does not get the first one's replies
    with LoopbackServer(responder) as second:
        m3 = cli(second, outs[2])
        assert len(second.requests) == m1["usage"]["calls"] == m3["usage"]["calls"]
    assert m3["usage"]["cache_hits"] == 0 and m3["f1"] == pytest.approx(1.0)
    assert ReplyCache(cache_dir).stats()["entries"] == 2 * m1["usage"]["calls"]

    # the API keys were in the environment of the runs, but they are written nowhere
    files = [p for d in [cache_dir, *outs] for p in d.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and len(files) >= 4
    for p in files:
        data = p.read_bytes()
        assert b"SECRET123" not in data and b"OTHER456" not in data, p


# --- 5./6. kill -9 and Ctrl-C of a real process, then resume --------------------------------

N_PROC = 40
PROC_TOTAL = CALLS_PER_SENTENCE * N_PROC


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}


def _start_run(server: LoopbackServer, data: Path, out: Path, cache: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tf_prompt.cli", "run", "--model", "m", "--base-url", server.base_url,
           "--method", "transfusion", "--data", str(data), "--out", str(out), "--cache-dir", str(cache),
           "--concurrency", "2", "--timeout", "10"]
    with log.open("wb") as fh:
        # A user's Ctrl-C reaches a foreground process whose SIGINT has its default disposition.
        # When the test suite itself runs as a background job (CI, nohup), the shell has set
        # SIGINT to "ignore" and children inherit that, so restore the default in the child.
        return subprocess.Popen(cmd, stdout=fh, stderr=fh, env=_child_env(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_until(pred: Callable[[], bool], proc: subprocess.Popen, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        if proc.poll() is not None:
            pytest.fail(f"run ended (code {proc.returncode}) before it could be interrupted")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("run made no progress")
        time.sleep(0.005)


@pytest.fixture
def proc_setup(tmp_path: Path):
    sentences = sentences_n(N_PROC)
    data = write_conll_gold(tmp_path / "hau.txt", sentences)
    # the oracle knows the sentences exactly as the CLI reads them
    # 0.15 s per reply: the run lasts several seconds, so on a busy machine the interrupt still
    # lands mid-run even if this process is scheduled late after the progress condition holds.
    with LoopbackServer(oracle_responder(read_conll(data), LABELS, translation=numbered_english), latency=0.15) as srv:
        yield srv, data, tmp_path / "out", tmp_path / "cache"


def _rerun_to_completion(server: LoopbackServer, data: Path, out: Path, cache: Path) -> tuple[int, dict[str, Any]]:
    before = len(server.requests)
    proc = subprocess.run(
        [sys.executable, "-m", "tf_prompt.cli", "run", "--model", "m", "--base-url", server.base_url,
         "--method", "transfusion", "--data", str(data), "--out", str(out), "--cache-dir", str(cache),
         "--concurrency", "8", "--timeout", "10"],
        capture_output=True, text=True, env=_child_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return len(server.requests) - before, read_metrics(out)


def _sentence_of(body: dict[str, Any]) -> int:
    """Which sentence a request is for: its distinct `nambariK` token (see sentences_n)."""
    import re

    return int(re.findall(r"nambari(\d+)", user_text(body))[-1])


def test_kill_9_then_rerun_pays_only_for_missing_replies(proc_setup) -> None:
    server, data, out, cache = proc_setup
    answered: collections.Counter[int] = collections.Counter()   # replies per sentence
    oracle = server.responder

    def responder(body: dict[str, Any]) -> str:
        reply = oracle(body)
        answered[_sentence_of(body)] += 1
        return reply

    server.responder = responder
    proc = _start_run(server, data, out, cache, out.parent / "log1.txt")
    _wait_until(lambda: server.served >= PROC_TOTAL // 3, proc)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    served_at_kill = server.served
    finished_at_server = {k for k, n in answered.items() if n == CALLS_PER_SENTENCE}
    # the most requests ever in flight at once (2 sentences, each with translate and direct sent
    # together): at most that many replies can be on their way when the process dies
    in_flight = server.max_in_flight
    assert 1 <= in_flight <= 2 * 2
    store = ReplyCache(cache)
    entries = store.stats()["entries"]
    store.close()
    # every reply received was stored before it was used; at most the replies in flight are lost
    assert PROC_TOTAL // 3 - in_flight <= entries <= served_at_kill < PROC_TOTAL
    assert served_at_kill - entries <= in_flight
    # the trace lines of sentences that finished survive a kill -9: each line whole (valid JSON,
    # newline-terminated), one per finished sentence, missing at most those whose last reply was
    # still on its way
    text = out.joinpath("trace.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n"), text[-200:]
    lines = [json.loads(ln) for ln in text.splitlines()]
    indices = [t["index"] for t in lines]
    assert len(indices) == len(set(indices)) and set(indices) <= finished_at_server
    assert len(lines) >= max(1, len(finished_at_server) - in_flight), (len(lines), len(finished_at_server))
    assert all(not t["failed"] and set(t["replies"]) == {"translate", "annotate", "fuse", "direct"} for t in lines)

    paid, metrics = _rerun_to_completion(server, data, out, cache)
    assert paid == PROC_TOTAL - entries
    assert metrics["usage"]["calls"] == paid and metrics["usage"]["cache_hits"] == entries
    assert metrics["f1"] == pytest.approx(1.0) and metrics["complete"] is True
    assert metrics["n_sentences"] == N_PROC and len(read_trace(out)) == N_PROC


@pytest.mark.parametrize("held", [3, 9])
def test_trace_lines_are_flushed_per_sentence_and_survive_kill_9(proc_setup, held: int) -> None:
    """Each finished sentence's trace line is on disk, whole, as soon as the sentence is done.

    The server holds every request of sentence `held` and later. A sentence starts only when an
    earlier one has finished and written its line (run_pipeline writes before it frees its slot),
    so once both of the 2 slots are taken by sentences `held` and `held + 1`, every sentence before
    them is done: a kill -9 then must leave exactly their lines. Without a flush per line they
    would sit in the process's buffer and die with it (a few lines fit in it: held=3), or reach the
    disk cut at a buffer boundary (held=9).
    """
    server, data, out, cache = proc_setup
    release = threading.Event()
    held_seen: set[int] = set()
    lock = threading.Lock()

    def hold(body: dict[str, Any], attempt: int) -> Fault | None:
        k = _sentence_of(body)
        if k >= held:
            with lock:
                held_seen.add(k)
            release.wait(60)
        return None

    server.fault = hold
    try:
        proc = _start_run(server, data, out, cache, out.parent / "log1.txt")
        _wait_until(lambda: held_seen >= {held, held + 1}, proc)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        release.set()
    assert held_seen == {held, held + 1} and server.served == CALLS_PER_SENTENCE * held
    text = out.joinpath("trace.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n"), text[-300:]
    lines = [json.loads(ln) for ln in text.splitlines()]
    assert sorted(t["index"] for t in lines) == list(range(held))
    assert all(not t["failed"] and len(t["replies"]) == CALLS_PER_SENTENCE for t in lines)


def test_ctrl_c_exits_130_keeps_outputs_and_rerun_resumes(proc_setup) -> None:
    server, data, out, cache = proc_setup
    log = out.parent / "log1.txt"
    proc = _start_run(server, data, out, cache, log)
    # wait until a few sentences are done, so there is something to keep
    _wait_until(lambda: server.served >= PROC_TOTAL // 3, proc)
    os.kill(proc.pid, signal.SIGINT)
    started = time.monotonic()
    # Stopping means cancelling the calls in flight and writing predictions and metrics for the
    # finished sentences: well under a second on an idle machine, several seconds when both cores
    # are busy with other work, hence the generous bound (the 5 s rule is for quota/auth errors).
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not stop the run within 15 s")
    assert time.monotonic() - started < 15
    err = log.read_text(encoding="utf-8", errors="replace")
    assert rc == 130, err
    assert "Traceback" not in err
    assert "interrupt" in err.strip().splitlines()[-1].lower()
    trace = read_trace(out)
    metrics = read_metrics(out)
    assert len(trace) >= 1 and metrics["complete"] is False
    assert metrics["n_sentences"] == len(trace) < N_PROC
    assert all(not t["failed"] for t in trace)
    store = ReplyCache(cache)
    entries = store.stats()["entries"]
    store.close()
    assert entries >= CALLS_PER_SENTENCE * len(trace)
    # at most the calls in flight at the interrupt are lost (2 sentences, up to 2 calls each)
    assert 1 <= server.max_in_flight <= 2 * 2
    assert server.served - entries <= server.max_in_flight

    paid, metrics = _rerun_to_completion(server, data, out, cache)
    assert paid == PROC_TOTAL - entries
    assert metrics["usage"]["cache_hits"] == entries
    assert metrics["f1"] == pytest.approx(1.0) and metrics["complete"] is True


# --- 7. a call that keeps failing fails its sentence, not the run ---------------------------

def test_persistent_retryable_error_fails_one_sentence_then_rerun_completes(server, tmp_path: Path, capsys) -> None:
    sentences = sentences_n(12)
    data = write_conll_gold(tmp_path / "d.txt", sentences)
    server.responder = oracle_responder(sentences, LABELS, translation=numbered_english)
    bad = sentences[5]
    marker = "nambari5"   # the distinct token of sentence 5: only its requests fail

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        return Fault(503) if marker in user_text(body) else None

    server.fault = fault
    out = tmp_path / "o"
    args = ["run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion", "--data", str(data),
            "--max-retries", "2", "--retry-initial", "0.01", "--timeout", "5", "--out", str(out)]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "Traceback" not in err
    assert "rerun" in err.strip().splitlines()[-1]
    trace = read_trace(out)
    assert len(trace) == len(sentences)
    by_index = {t["index"]: t for t in trace}
    failed = by_index[bad.index]
    # the direct call (for --combine) is asked alongside the translation: both fail
    assert failed["failed"] is True and set(failed["errors"]) == {"translate", "direct"}
    assert "503" in failed["errors"]["translate"]
    assert "annotate" not in failed["replies"] and "fuse" not in failed["replies"]  # nothing paid after the failure
    assert all(not t["failed"] and not t["errors"] for i, t in by_index.items() if i != bad.index)
    metrics = read_metrics(out)
    assert metrics["usage"]["failed_calls"] == 2 and metrics["usage"]["retries"] == 4
    # the failed sentence is not scored as if it had answered "no entities" (Trust item 8)
    assert metrics["scored_sentences"] == len(sentences) - 1 and metrics["f1"] == pytest.approx(1.0)
    assert [marker in user_text(b) for b in server.requests].count(True) == 6   # 2 x (1 attempt + 2 retries)
    assert server.served == metrics["usage"]["calls"] == CALLS_PER_SENTENCE * (len(sentences) - 1)

    server.fault = None   # the server recovered
    before = len(server.requests)
    rc = main(args)
    assert rc == 0, capsys.readouterr().err
    metrics = read_metrics(out)
    assert metrics["f1"] == pytest.approx(1.0) and metrics["complete"] is True
    assert len(server.requests) - before == CALLS_PER_SENTENCE == metrics["usage"]["calls"]
    assert not any(t["failed"] for t in read_trace(out))
