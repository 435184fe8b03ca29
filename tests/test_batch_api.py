"""`--via batch`: a run through the OpenAI Batch API, against the loopback server's Files and
Batches endpoints with the real `openai` SDK (nothing mocked).

Checked: the waves (one per step), answers landing in the reply cache under the keys a normal run
uses, batch prices, re-attaching to a batch left pending by a stopped or killed process, error
lines retried by the next wave, the budget, and the refusal of models without a Batch API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tf_prompt import RunSettings, run_dataset
from tf_prompt.backends.base import BackendError
from tf_prompt.batch_api import MAX_BATCH_ATTEMPTS, NEEDS_BATCH_API, BatchPending, run_via_batch
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cache import ReplyCache
from tf_prompt.llm.client import BudgetExceeded
from tf_prompt.llm.cost import PriceTable, tokenizer_for
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
MODEL = "gpt-4o-mini"   # has Batch API prices
SENTENCES = read_conll(sample_path())
N = len(SENTENCES)


def settings(server: LoopbackServer, tmp_path: Path, **kw: Any) -> RunSettings:
    """Plain transfusion (three steps, three waves) unless a test asks for more: these tests are
    about waves and batches; the first one runs the default, combined with direct."""
    base = dict(model=MODEL, base_url=server.base_url, method="transfusion", combine="none",
                out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    return RunSettings(**{**base, **kw})


def via_batch(s: RunSettings, **kw: Any):
    return asyncio.run(run_via_batch(s, poll_interval=0.02, **kw))


def open_states(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (tmp_path / "cache" / "batches").glob("*.json")]


def user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


@pytest.fixture
def oracle():
    with LoopbackServer(oracle_responder(SENTENCES, LABELS)) as srv:
        yield srv


def test_transfusion_via_batch_then_normal_run_is_free(oracle, tmp_path: Path, capsys) -> None:
    summary = via_batch(settings(oracle, tmp_path, combine=None))
    m = summary.metrics
    b = m["usage"]["batch"]
    assert m["f1"] == pytest.approx(1.0) and m["complete"] is True
    # one wave per step, one batch per wave, and no synchronous chat request at all
    assert b["waves"] == 3 and b["batches"] == 3 and oracle.batches_created == oracle.uploads == 3
    assert oracle.served == 0 and len(oracle.requests) == 0
    # 4 requests per sentence: the direct one (--combine) goes in the first wave with translate
    assert b["requests"] == b["succeeded"] == oracle.batch_requests_served == 4 * N and b["failed"] == 0
    # usage as the API reported it, priced at batch prices (half the standard ones for this model)
    assert (b["prompt_tokens"], b["completion_tokens"]) == (oracle.batch_prompt_tokens, oracle.batch_completion_tokens)
    prices = PriceTable.load()
    expected = prices.cost(MODEL, b["prompt_tokens"], b["completion_tokens"], batch=True)
    assert b["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert expected < prices.cost(MODEL, b["prompt_tokens"], b["completion_tokens"])
    # the final pass was all cache hits, and metrics.json on disk has the batch usage
    assert m["usage"]["calls"] == 0 and m["usage"]["cache_hits"] == 4 * N and m["usage"]["attempts"] == 0
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["usage"]["batch"] == b and on_disk["settings"]["via"] == "batch"
    # the input file is what the Batch API expects
    first = json.loads(oracle.files["file-loopback-0"]["data"].decode().splitlines()[0])
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    assert first["body"]["model"] == MODEL and first["body"]["temperature"] == 0.0 and first["body"]["messages"]
    # a progress line per status change
    err = capsys.readouterr().err
    assert "completed 12/12 done, 0 failed" in err
    # the cache records are the ones a normal call stores; a normal rerun sends nothing
    store = ReplyCache(tmp_path / "cache")
    record = store.get(first["custom_id"])
    store.close()
    assert set(record) == {"text", "prompt_tokens", "completion_tokens", "finish_reason", "model", "template",
                           "step", "stored_at"}
    assert record["step"] == "translate" and record["template"].startswith("translate")
    again = run_dataset(model=MODEL, base_url=oracle.base_url, method="transfusion", cache_dir=str(tmp_path / "cache"))
    assert oracle.served == 0 and again.metrics["usage"]["calls"] == 0
    assert again.metrics["f1"] == pytest.approx(1.0)
    assert not open_states(tmp_path)   # every batch was closed


@pytest.mark.parametrize("method,k,waves", [("direct", 1, 1), ("transfusion", 4, 3)])
def test_other_methods_and_sentence_batching(oracle, tmp_path: Path, method: str, k: int, waves: int) -> None:
    """Several sentences per prompt (--batch-sentences) build the same prompts in every wave."""
    summary = via_batch(settings(oracle, tmp_path, method=method, batch_sentences=k))
    b = summary.metrics["usage"]["batch"]
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["complete"] is True
    assert b["waves"] == b["batches"] == waves and b["succeeded"] == waves * -(-N // k) and oracle.served == 0
    again = run_dataset(model=MODEL, base_url=oracle.base_url, method=method, batch_sentences=k,
                        combine="none", cache_dir=str(tmp_path / "cache"))
    assert oracle.served == 0 and again.metrics["f1"] == pytest.approx(1.0)


@pytest.mark.parametrize("meanwhile", ["pending", "completed"])
def test_restart_reattaches_to_the_batch_left_behind(oracle, tmp_path: Path, meanwhile: str) -> None:
    oracle.batch_polls_before_done = None   # batches stay in progress
    with pytest.raises(BatchPending, match="rerun the same command"):
        via_batch(settings(oracle, tmp_path), max_wait=0.3)
    states = open_states(tmp_path)
    assert len(states) == 1 and states[0]["batch_id"] == "batch_loopback_0"
    assert states[0]["status"] == "in_progress" and len(states[0]["requests"]) == N
    assert oracle.uploads == oracle.batches_created == 1
    oracle.batch_polls_before_done = 1
    if meanwhile == "completed":   # it completed while nobody was watching: download only
        with openai.OpenAI(base_url=oracle.base_url, api_key="x") as api:
            assert api.batches.retrieve("batch_loopback_0").status == "completed"

    summary = via_batch(settings(oracle, tmp_path))
    b = summary.metrics["usage"]["batch"]
    # wave 1 was not uploaded or created again: only waves 2 and 3 were
    assert oracle.uploads == oracle.batches_created == 3
    assert b["batches"] == 3 and b["waves"] == 3 and b["succeeded"] == 3 * N
    assert oracle.batch_requests_served == 3 * N and oracle.served == 0
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["complete"] is True
    assert not open_states(tmp_path)


def test_kill_9_while_pending_then_rerun_reattaches(oracle, tmp_path: Path) -> None:
    oracle.batch_polls_before_done = None
    script = ("import sys; from tf_prompt.batch_api import run_dataset_via_batch as r; "
              "r(model=sys.argv[1], base_url=sys.argv[2], cache_dir=sys.argv[3], method='transfusion', combine='none', "
              "poll_interval=0.02)")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.Popen([sys.executable, "-c", script, MODEL, oracle.base_url, str(tmp_path / "cache")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60   # a busy 2-core machine starts Python slowly
        while oracle.batch_polls < 3:   # the batch exists and is being polled
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert [s["batch_id"] for s in open_states(tmp_path)] == ["batch_loopback_0"]
    oracle.batch_polls_before_done = 1
    summary = via_batch(settings(oracle, tmp_path))
    assert oracle.uploads == oracle.batches_created == 3
    assert summary.metrics["f1"] == pytest.approx(1.0) and oracle.served == 0


def test_error_line_is_reported_and_retried_in_the_next_wave(tmp_path: Path, capsys) -> None:
    target = SENTENCES[3].text
    failed_once: list[int] = []

    def fault(body: dict[str, Any], index: int) -> Fault | None:
        text = user_text(body)
        if "Translate the following" in text and target in text and not failed_once:
            failed_once.append(index)
            return Fault(500, {"error": {"message": "overloaded", "type": "server_error", "code": None}})
        return None

    with LoopbackServer(oracle_responder(SENTENCES, LABELS), batch_fault=fault) as srv:
        summary = via_batch(settings(srv, tmp_path))
    b = summary.metrics["usage"]["batch"]
    assert failed_once and b["failed"] == 1 and b["succeeded"] == 3 * N
    assert b["errors"] == ["HTTP 500: overloaded"]
    # the failed translation went with wave 2; its sentence then needs waves 3 and 4
    assert b["waves"] == b["batches"] == 4 and srv.served == 0
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["complete"] is True
    assert "1 of 12 requests got no answer (HTTP 500: overloaded)" in capsys.readouterr().err


@pytest.mark.parametrize("body", [{"error": "overloaded"}, {"error": {"message": "overloaded"}, "choices": "x"}])
def test_an_error_line_of_any_shape_is_that_requests_failure(tmp_path: Path, body: dict[str, Any]) -> None:
    """An output line whose error is a bare string (not {"message": ...}) crashed the run with an
    AttributeError after the batch was paid; it is one request's failure, retried next wave."""
    target = SENTENCES[2].text
    failed_once: list[int] = []

    def fault(request: dict[str, Any], index: int) -> Fault | None:
        if target in user_text(request) and not failed_once:
            failed_once.append(index)
            return Fault(500, body)
        return None

    with LoopbackServer(oracle_responder(SENTENCES, LABELS), batch_fault=fault) as srv:
        summary = via_batch(settings(srv, tmp_path))
    assert failed_once and summary.metrics["usage"]["batch"]["errors"] == ["HTTP 500: overloaded"]
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["complete"] is True


def test_line_that_keeps_failing_is_left_to_a_normal_rerun(tmp_path: Path) -> None:
    target = SENTENCES[5].text

    def fault(body: dict[str, Any], index: int) -> Fault | None:
        return Fault(500) if target in user_text(body) else None

    with LoopbackServer(oracle_responder(SENTENCES, LABELS), batch_fault=fault) as srv:
        summary = via_batch(settings(srv, tmp_path))
        m = summary.metrics
        b = m["usage"]["batch"]
        assert b["failed"] == MAX_BATCH_ATTEMPTS and b["unanswered"] == 1
        assert m["complete"] is False and m["failed_sentences"] == 1 and srv.served == 0
        assert m["usage"]["attempts"] == 0   # the final pass refused to send it synchronously
        failed = [r for r in summary.results if r.trace.failed]
        assert [r.sentence.text for r in failed] == [target]
        assert "no reply from the Batch API" in failed[0].trace.errors["translate"]
        # a normal run retries just that sentence's calls
        again = run_dataset(model=MODEL, base_url=srv.base_url, method="transfusion", combine="none",
                            cache_dir=str(tmp_path / "cache"))
        assert srv.served == again.metrics["usage"]["calls"] == 3
        assert again.metrics["f1"] == pytest.approx(1.0) and again.metrics["complete"] is True


def test_budget_is_checked_at_batch_prices_before_upload(oracle, tmp_path: Path) -> None:
    with pytest.raises(BudgetExceeded, match=r"budget reached: .* at batch prices"):
        via_batch(settings(oracle, tmp_path, max_cost=0.0001))
    assert oracle.uploads == 0 and oracle.served == 0
    price = PriceTable.load().lookup(MODEL)
    assert price is not None and price.batch_input < price.input and price.batch_output < price.output

    # an uncapped run: its cost is the server's token counts at batch prices, not standard ones
    summary = via_batch(settings(oracle, tmp_path / "full"))
    assert summary.metrics["f1"] == pytest.approx(1.0) and oracle.served == 0
    p_tok, c_tok = oracle.batch_prompt_tokens, oracle.batch_completion_tokens
    assert p_tok > 0 and c_tok > 0
    at_batch = PriceTable.load().cost(MODEL, p_tok, c_tok, batch=True)
    assert summary.metrics["usage"]["batch"]["cost_usd"] == pytest.approx(at_batch, abs=1e-6)
    assert at_batch < 0.75 * PriceTable.load().cost(MODEL, p_tok, c_tok)

    # the first wave's worst case (every translation prompt, +15% for an approximate count, plus
    # max_tokens of output each), from the lines the server received
    first = next(f for f in oracle.files.values() if f["purpose"] == "batch")
    bodies = [json.loads(ln)["body"] for ln in first["data"].decode().splitlines() if ln.strip()]
    tok = tokenizer_for(MODEL)
    margin = 1.0 if tok.exact else 1.15
    prompt = sum(int(tok.count_messages(b["messages"]) * margin) + 1 for b in bodies)
    output = sum(b["max_tokens"] for b in bodies)
    worst_batch = PriceTable.load().cost(MODEL, prompt, output, batch=True)
    worst_standard = PriceTable.load().cost(MODEL, prompt, output)
    # a cap between the two: the first wave is sent only if the check uses batch prices
    with LoopbackServer(oracle_responder(SENTENCES, LABELS)) as fresh:
        try:
            via_batch(settings(fresh, tmp_path / "capped", max_cost=(worst_batch + worst_standard) / 2))
        except BudgetExceeded as e:
            assert "at batch prices" in str(e)
        assert fresh.uploads >= 1 and fresh.batch_requests_served >= len(bodies)


@pytest.mark.parametrize("model", ["gguf:qwen2.5-coder-1.5b", "hf:Qwen/Qwen2.5-0.5B-Instruct"])
def test_local_models_are_refused_with_one_line(tmp_path: Path, model: str) -> None:
    with pytest.raises(BackendError) as info:
        via_batch(RunSettings(model=model, cache_dir=str(tmp_path / "cache")))
    assert str(info.value).startswith(NEEDS_BATCH_API) and "\n" not in str(info.value)


def test_via_batch_from_the_cli(tmp_path) -> None:
    """`tf-prompt run --via batch` as a user runs it, then a normal rerun that makes no call."""
    import json as _json

    from tf_prompt.cli import main
    from tf_prompt.data.conll import read_conll
    from tf_prompt.data.datasets import sample_path
    from tf_prompt.testing import LoopbackServer, oracle_responder

    sentences = read_conll(sample_path())
    with LoopbackServer(oracle_responder(sentences, ["PER", "ORG", "LOC", "DATE"])) as srv:
        srv.batch_polls_before_done = 1
        out = tmp_path / "o"
        args = ["run", "--model", "gpt-4o-mini", "--base-url", srv.base_url, "--method", "direct",
                "--out", str(out)]
        assert main([*args, "--via", "batch", "--poll-interval", "0.05"]) == 0
        metrics = _json.loads((out / "metrics.json").read_text())
        assert metrics["f1"] == 1.0 and metrics["usage"]["batch"]["requests"] == len(sentences)
        assert srv.served == 0 and srv.batches_created == 1
        assert main(args) == 0
        assert srv.served == 0


@pytest.mark.parametrize("garbage", ['{"custom_id": "x", "resp', "[1, 2]", "<html>502</html>"])
def test_a_broken_line_in_the_output_file_costs_nothing_else(tmp_path: Path, garbage: str) -> None:
    """A line of the provider's output file that is not a JSON object used to end the run in a
    traceback after the batch was paid; now it is counted as an error and the answers are kept."""
    with LoopbackServer(oracle_responder(SENTENCES, LABELS)) as srv:
        srv.batch_output_extra = [garbage]
        summary = via_batch(settings(srv, tmp_path))
    m = summary.metrics
    assert m["f1"] == pytest.approx(1.0) and m["complete"] is True
    assert any("not a JSON object" in e for e in m["usage"]["batch"]["errors"])
