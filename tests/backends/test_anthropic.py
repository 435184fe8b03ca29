"""`--model anthropic:NAME` end to end: the real `anthropic` SDK against a Messages API server on
127.0.0.1 (tf_prompt/testing/anthropic_server.py) answering as an oracle.

What is attacked: a whole transfusion run gives F1 100 through the SDK; the shared prefix is
marked for the provider's cache and its reads and writes reach metrics.json and the cost; a rerun
sends nothing; the key reaches the server only (never the run folder or the cache); each error
shape stops the run with one line or is retried as many times as it should be, honouring
retry-after; keys, --constrain and --seed are refused before anything is sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("anthropic")

from tf_prompt.api import make_backend
from tf_prompt.backends.anthropic import AnthropicBackend, parse_reply, request_body
from tf_prompt.backends.openai_compat import effective_base_url
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cost import PriceTable
from tf_prompt.settings import RunSettings
from tf_prompt.testing import Fault, oracle_responder
from tf_prompt.testing.anthropic_server import AnthropicLoopback, error_body, no_credit, overloaded, rate_limited

LABELS = ["PER", "ORG", "LOC", "DATE"]
KEY = "sk-ant-api03-LOOPBACK-SECRET-0123456789"
MODEL = "anthropic:claude-sonnet-4-5"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return KEY


def server(**kw) -> AnthropicLoopback:
    return AnthropicLoopback(oracle_responder(read_conll(sample_path()), LABELS), api_key=KEY, **kw)


def run(srv: AnthropicLoopback, tmp_path: Path, *extra: str, method: str = "transfusion") -> int:
    return main(["run", "--model", MODEL, "--base-url", srv.base_url, "--method", method,
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *extra])


def test_transfusion_run_through_the_sdk_with_prompt_caching(tmp_path: Path, key: str, capsys) -> None:
    with server(cache_min_tokens=50) as srv:
        assert run(srv, tmp_path, "--concurrency", "1") == 0
        metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
        assert metrics["f1"] == pytest.approx(1.0) and metrics["complete"] is True
        assert metrics["settings"]["base_url"] == srv.base_url == effective_base_url(MODEL, srv.base_url)
        usage = metrics["usage"]
        assert usage["calls"] == srv.served == len(srv.requests) == 48   # 12 sentences x 4 steps
        # every request: system prompt as `system`, one breakpoint at the end of the shared prefix
        for body in srv.requests:
            assert body["system"][0]["text"].startswith("You are")
            blocks = body["messages"][-1]["content"]
            marked = [b for b in blocks if "cache_control" in b]
            assert len(marked) == 1 and marked[0] is blocks[0] and marked[0]["cache_control"] == {"type": "ephemeral"}
            assert "Rules:" in blocks[0]["text"] or "Translate" in blocks[0]["text"]
        # 4 templates: each prefix written once, read by the 11 other sentences
        assert srv.cache_write_tokens > 0 and srv.cache_read_tokens > 10 * srv.cache_write_tokens
        assert usage["cache_read_tokens"] == srv.cache_read_tokens
        assert usage["cache_write_tokens"] == srv.cache_write_tokens
        assert usage["prompt_tokens"] == srv.input_tokens + srv.cache_read_tokens + srv.cache_write_tokens
        price = PriceTable.load().lookup("claude-sonnet-4-5")
        assert price is not None and price.cached_input is not None and price.cache_write is not None
        expected = (srv.input_tokens * price.input + srv.cache_read_tokens * price.cached_input
                    + srv.cache_write_tokens * price.cache_write + usage["completion_tokens"] * price.output) / 1e6
        assert usage["cost_usd"] == pytest.approx(expected, abs=1e-6)
        assert usage["cost_usd"] < PriceTable.load().cost("claude-sonnet-4-5", usage["prompt_tokens"],
                                                          usage["completion_tokens"])
        # a rerun is answered from the reply cache: nothing is sent
        assert run(srv, tmp_path, "--overwrite") == 0
        assert len(srv.requests) == 48
        rerun = json.loads((tmp_path / "out" / "metrics.json").read_text())["usage"]
        assert (rerun["calls"], rerun["cache_hits"]) == (0, 48)
    # the key went to the server, and nowhere else: not in the run folder, not in the cache
    assert all(h.get("authorization") == f"Bearer {key}" or h.get("x-api-key") == key for h in srv.headers)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert key not in capsys.readouterr().err


def test_an_openai_key_is_never_sent_to_anthropic(tmp_path: Path, monkeypatch) -> None:
    """The CLI's default --api-key-env is OPENAI_API_KEY: for an anthropic: model it counts as
    not named, so ANTHROPIC_API_KEY is read and the OpenAI key never leaves."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-MUST-NOT-LEAK")
    with AnthropicLoopback(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        assert run(srv, tmp_path, "--limit", "1", method="direct") == 0
    assert srv.headers and all("sk-openai-MUST-NOT-LEAK" not in json.dumps(h) for h in srv.headers)


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("tf-prompt: error")]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


FATAL = {
    "401 authentication": (Fault(401, error_body(401, "invalid x-api-key")), "authentication failed"),
    "403 permission": (Fault(403, error_body(403, "not allowed")), "not allowed to use this model"),
    "404 unknown model": (Fault(404, error_body(404, "model: claude-nope")), "check --model"),
    "400 credit balance": (no_credit(), "credit balance is too low"),
}


@pytest.mark.parametrize(("fault", "words"), FATAL.values(), ids=FATAL.keys())
def test_fatal_errors_stop_at_once_in_one_line(tmp_path: Path, key: str, capsys, fault: Fault, words: str) -> None:
    with server(fault=lambda body, n: fault) as srv:
        assert run(srv, tmp_path, "--limit", "3", "--concurrency", "1", method="direct") != 0
        assert len(srv.requests) == 1   # not retried, and nothing else sent after it
        where = srv.base_url
    line = one_line(capsys.readouterr().err)
    assert words in line and where in line and KEY not in line


def test_a_wrong_key_is_the_servers_401_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    with server() as srv:
        assert run(srv, tmp_path, "--limit", "1", method="direct") != 0
        assert len(srv.requests) == 1
    line = one_line(capsys.readouterr().err)
    assert "HTTP 401" in line and "ANTHROPIC_API_KEY" in line and "sk-ant-wrong" not in line


RETRIED = {
    "529 overloaded": overloaded(retry_after=0.05),
    "429 rate limit": rate_limited(retry_after=0.05),
    "500 api_error": Fault(500, error_body(500)),
}


@pytest.mark.parametrize("fault", RETRIED.values(), ids=RETRIED.keys())
def test_transient_errors_are_retried_by_tf_prompt_only(tmp_path: Path, key: str, fault: Fault) -> None:
    """Two failed attempts, then answers: exactly 2 extra requests (the SDK's own retries are
    off, so nothing multiplies), and the run completes."""
    with server(fault=lambda body, n: fault if n < 2 else None) as srv:
        assert run(srv, tmp_path, "--limit", "1", "--concurrency", "1", "--retry-initial", "0.01",
                   method="direct") == 0
        assert len(srv.requests) == 3 and srv.served == 1
    usage = json.loads((tmp_path / "out" / "metrics.json").read_text())["usage"]
    assert (usage["attempts"], usage["retries"], usage["calls"]) == (3, 2, 1)


def test_retry_after_is_honoured(tmp_path: Path, key: str) -> None:
    """529 with retry-after 0.6 s under a backoff that would wait 5 s or more: the retry comes
    after the server's 0.6 s, not before and not after the backoff."""
    stamps: list[float] = []

    def fault(body, n):
        stamps.append(time.monotonic())
        return overloaded(retry_after=0.6) if n == 0 else None

    with server(fault=fault) as srv:
        assert run(srv, tmp_path, "--limit", "1", "--concurrency", "1", "--retry-initial", "10",
                   method="direct") == 0
    assert len(stamps) == 2
    assert 0.55 <= stamps[1] - stamps[0] < 3.0


def test_always_overloaded_ends_in_one_line_after_the_retries(tmp_path: Path, key: str, capsys) -> None:
    with server(fault=lambda body, n: overloaded(retry_after=0)) as srv:
        rc = run(srv, tmp_path, "--limit", "1", "--concurrency", "1", "--max-retries", "2", method="direct")
        assert rc != 0
        assert len(srv.requests) == 3   # every retry made (529 is a busy API, not a dead one), then it stops
    err = capsys.readouterr().err
    assert "Traceback" not in err and "overloaded (HTTP 529)" in err


def test_a_hanging_endpoint_times_out_and_is_retried_then_ends_in_one_line(tmp_path: Path, key: str, capsys) -> None:
    """Every attempt hangs past --timeout: each is cut at the timeout (the SDK's own timeout is
    the one given, its retries off), retried, and the sentence fails with the timeout in its
    trace; the run ends quickly, without a traceback."""
    started = time.monotonic()
    with server(fault=lambda body, n: Fault(500, None, {}, delay=6.0)) as srv:
        rc = run(srv, tmp_path, "--limit", "1", "--concurrency", "1", "--timeout", "0.3", "--max-retries", "1",
                 "--retry-initial", "0.01", method="direct")
        assert rc != 0 and 1 <= len(srv.requests) <= 2
    assert time.monotonic() - started < 4.5   # not the 6 s a hung attempt would take
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 sentence(s) failed" in err
    trace = (tmp_path / "out" / "trace.jsonl").read_text()
    assert "timed out" in trace and KEY not in trace


def test_a_dead_endpoint_is_one_line(tmp_path: Path, key: str, capsys) -> None:
    import socket

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["run", "--model", MODEL, "--base-url", f"http://127.0.0.1:{port}", "--method", "direct",
                 "--limit", "2", "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"),
                 "--retry-initial", "0.01"]) != 0
    line = one_line(capsys.readouterr().err)
    assert "connection refused" in line and KEY not in line


def test_an_overloaded_api_is_alive_so_every_retry_is_made(tmp_path: Path, key: str, capsys) -> None:
    """529 overloaded_error is Anthropic answering, in its own error shape, that it is busy: like a
    429 it says the endpoint is alive, so the dead-endpoint breaker (for endpoints that never
    answered) must not stop the run before the retries --max-retries allows, then it answers."""
    with server(fault=lambda body, n: overloaded(retry_after=0) if n < 5 else None) as srv:
        assert run(srv, tmp_path, "--limit", "1", "--concurrency", "1", "--max-retries", "6",
                   "--retry-initial", "0.01", method="direct") == 0
        assert len(srv.requests) == 6 and srv.served == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_prices_file_without_a_cache_write_price_still_bills_writes_above_input(tmp_path: Path, key: str) -> None:
    """A --prices entry for a Claude model with only input and output (a new model, negotiated
    prices): the prefix tf-prompt marks is still written to Anthropic's cache and billed at 1.25x
    input, so the cost (and --max-cost's worst case) must price writes so, not as plain input."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-new": {"input": 2.0, "output": 10.0}}}))
    with AnthropicLoopback(oracle_responder(read_conll(sample_path()), LABELS), api_key=KEY,
                           cache_min_tokens=50) as srv:
        assert main(["run", "--model", "anthropic:claude-new", "--base-url", srv.base_url, "--method", "direct",
                     "--limit", "3", "--concurrency", "1", "--prices", str(prices), "--max-cost", "5",
                     "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]) == 0
        assert srv.cache_write_tokens > 0
        usage = json.loads((tmp_path / "out" / "metrics.json").read_text())["usage"]
        expected = (srv.input_tokens * 2.0 + srv.cache_read_tokens * 2.0 + srv.cache_write_tokens * 2.0 * 1.25
                    + usage["completion_tokens"] * 10.0) / 1e6
        assert usage["cost_usd"] == pytest.approx(expected, abs=1e-9)


def test_keys_are_checked_before_anything_is_sent(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    # no key, Anthropic's own endpoint: refused, nothing sent anywhere
    assert main(["run", "--model", MODEL, "--method", "direct", "--limit", "1",
                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o0")]) != 0
    assert "set ANTHROPIC_API_KEY" in one_line(capsys.readouterr().err)
    # a named variable that is unset: an error, never a fall back to ANTHROPIC_API_KEY
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with server() as srv:
        assert main(["run", "--model", MODEL, "--base-url", srv.base_url, "--api-key-env", "MY_CLAUDE_KEY",
                     "--method", "direct", "--limit", "1", "--cache-dir", str(tmp_path / "c"),
                     "--out", str(tmp_path / "o1")]) != 0
        assert srv.requests == []
    assert "MY_CLAUDE_KEY" in one_line(capsys.readouterr().err)
    # a named variable that is set is the one sent
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("MY_CLAUDE_KEY", KEY)
    with server() as srv:
        assert main(["run", "--model", MODEL, "--base-url", srv.base_url, "--api-key-env", "MY_CLAUDE_KEY",
                     "--method", "direct", "--limit", "1", "--cache-dir", str(tmp_path / "c"),
                     "--out", str(tmp_path / "o2")]) == 0
        assert srv.served == 1


@pytest.mark.parametrize(("flags", "words"), [(["--constrain", "json"], "--constrain none"),
                                              (["--seed", "3"], "leave out --seed"),
                                              (["--temperature", "1.5"], "0 to 1")])
def test_unsupported_settings_are_refused_before_any_call(tmp_path: Path, key: str, capsys, flags, words) -> None:
    with server() as srv:
        assert run(srv, tmp_path, "--limit", "1", *flags, method="direct") != 0
        assert srv.requests == []
    assert words in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_request_body_marks_the_shared_prefix_and_sends_the_text_unchanged() -> None:
    messages = [{"role": "system", "content": "You are X."}, {"role": "user", "content": "Rules here.\nSentence: abc"}]
    body = request_body("m", messages, {"temperature": 0.0, "max_tokens": 50}, fixed=len("Rules here.\nSentence: "))
    assert body["system"] == [{"type": "text", "text": "You are X."}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Rules here.\nSentence: ", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "abc"}]
    assert (body["max_tokens"], body["temperature"]) == (50, 0.0)
    # no shared prefix known: the system prompt is marked, the message sent as it is
    plain = request_body("m", messages, {}, fixed=0)
    assert plain["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert plain["messages"][0]["content"] == messages[1]["content"] and plain["max_tokens"] == 1024
    # a wholly fixed message is one marked block (no empty text block)
    whole = request_body("m", messages, {}, fixed=len(messages[1]["content"]))
    assert len(whole["messages"][0]["content"]) == 1


def test_reply_usage_counts_every_input_token() -> None:
    reply = {"content": [{"type": "text", "text": "{}"}], "stop_reason": "max_tokens", "model": "m",
             "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 900,
                       "cache_creation_input_tokens": 0}}
    c = parse_reply(json.dumps(reply), "where")
    assert (c.prompt_tokens, c.cache_read_tokens, c.cache_write_tokens, c.completion_tokens) == (910, 900, 0, 3)
    assert c.finish_reason == "length"


def test_a_refusal_is_a_blocked_reply_not_an_answer() -> None:
    """Claude's safety classifiers end a reply with stop_reason "refusal" (often with part of an
    answer already written): like Gemini's SAFETY and Azure's content filter, that sentence
    fails with the blocked line in the trace, instead of its text being scored as the answer."""
    from tf_prompt.backends.blocked import block_reason

    reply = {"content": [{"type": "text", "text": '{"entities": ['}], "stop_reason": "refusal", "model": "m",
             "usage": {"input_tokens": 10, "output_tokens": 3}}
    c = parse_reply(json.dumps(reply), "where")
    assert block_reason(c.finish_reason) is not None and "refusal" in str(block_reason(c.finish_reason))
    assert c.text == "" and c.prompt_tokens == 10 and c.completion_tokens == 3   # still billed
    ended = {**reply, "stop_reason": "end_turn"}
    assert block_reason(parse_reply(json.dumps(ended), "where").finish_reason) is None


def test_identity_and_endpoint_never_hold_the_key(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    backend = make_backend(RunSettings(model=MODEL))
    assert isinstance(backend, AnthropicBackend)
    assert backend.identity() == {"kind": "anthropic", "model": "claude-sonnet-4-5",
                                  "base_url": "https://api.anthropic.com"}
    assert effective_base_url(MODEL, None) == backend.endpoint
    assert KEY not in repr(backend)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://user:pw@127.0.0.1:9/")
    assert effective_base_url(MODEL, None) == "http://***@127.0.0.1:9"
    assert make_backend(RunSettings(model=MODEL)).endpoint == "http://***@127.0.0.1:9"


def test_via_batch_refuses_anthropic_models_in_one_line(tmp_path: Path, key: str, capsys) -> None:
    with server() as srv:
        assert run(srv, tmp_path, "--limit", "1", "--via", "batch", method="direct") != 0
        assert srv.requests == []
    assert "--via batch needs an OpenAI" in one_line(capsys.readouterr().err)


def test_max_cost_prices_an_anthropic_run_and_refuses_an_unpriced_model(tmp_path: Path, key: str, capsys) -> None:
    """A priced Claude model runs under --max-cost; an unknown one is not priced as a similar
    name: --max-cost asks for a price before anything is sent."""
    with server() as srv:
        assert run(srv, tmp_path, "--limit", "2", "--max-cost", "1.0", method="direct") == 0
        sent = len(srv.requests)
        assert main(["run", "--model", "anthropic:claude-sonnet-4-5-29991231", "--base-url", srv.base_url,
                     "--method", "direct", "--limit", "1", "--max-cost", "1.0", "--out", str(tmp_path / "o3"),
                     "--cache-dir", str(tmp_path / "cache")]) != 0
        assert len(srv.requests) == sent
    assert "needs a price" in one_line(capsys.readouterr().err)


def test_the_reply_cache_never_serves_one_providers_reply_for_another(tmp_path: Path, key: str,
                                                                      monkeypatch) -> None:
    """The same model name, prompts and cache directory through Anthropic, then through an
    OpenAI-compatible server: the second run is sent in full (its replies are not Claude's)."""
    from tf_prompt.testing import LoopbackServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-other")
    with server() as srv:
        assert run(srv, tmp_path, "--limit", "2", method="direct") == 0
        claude_calls = srv.served
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as plain:
        assert main(["run", "--model", "claude-sonnet-4-5", "--base-url", plain.base_url, "--method", "direct",
                     "--limit", "2", "--out", str(tmp_path / "o2"), "--cache-dir", str(tmp_path / "cache")]) == 0
        assert len(plain.requests) == claude_calls == 2
    usage = json.loads((tmp_path / "o2" / "metrics.json").read_text())["usage"]
    assert (usage["cache_hits"], usage["calls"]) == (0, 2)


@pytest.mark.parametrize("url", ["api.anthropic.com", "ftp://h", "http://u:pw-SECRET@h:99999", "http://[::1",
                                 "http://u:pw#SECRET@h/", " "])
def test_an_odd_anthropic_base_url_is_one_line_without_its_credentials(url: str, key: str, monkeypatch,
                                                                       tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    assert main(["run", "--model", MODEL, "--method", "direct", "--limit", "1", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")]) != 0
    line = one_line(capsys.readouterr().err)
    assert "ANTHROPIC_BASE_URL" in line and "SECRET" not in line and KEY not in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "variable", "words"), [
    ([], "ANTHROPIC_API_KEY", "--model anthropic:NAME"),            # no --model: the hosted default is OpenAI's
    (["--model", "gpt-4o-mini"], "ANTHROPIC_API_KEY", "--model anthropic:NAME"),
    (["--model", MODEL], "GEMINI_API_KEY", "--model gemini:NAME"),
    (["--model", "gemini:gemini-2.5-flash"], "ANTHROPIC_API_KEY", "--model anthropic:NAME"),
    (["--model", MODEL], "AZURE_OPENAI_API_KEY", "--model azure:DEPLOYMENT"),
])
def test_another_providers_key_is_never_sent_to_a_providers_own_endpoint(
        tmp_path: Path, monkeypatch, capsys, args: list[str], variable: str, words: str) -> None:
    """`--api-key-env ANTHROPIC_API_KEY` without `--model anthropic:...` (the hosted default is
    gpt-4o-mini at api.openai.com), or a Gemini key named for a Claude model: the key of one
    provider would go to another provider's own endpoint. Refused in one line before anything
    is sent or written. Through a --base-url (a proxy of the user's) it is the user's call."""
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "their-SECRET-key")
    assert main(["run", *args, "--api-key-env", variable, "--method", "direct", "--limit", "1",
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]) != 0
    line = one_line(capsys.readouterr().err)
    assert variable in line and words in line and "SECRET" not in line
    assert not (tmp_path / "o").exists()


def test_another_providers_key_may_go_to_the_users_own_base_url(tmp_path: Path, monkeypatch) -> None:
    """An OpenAI-compatible proxy of the user's (LiteLLM in front of Anthropic) may take the
    Anthropic key: with --base-url the key goes where the user said."""
    from tf_prompt.testing import LoopbackServer

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as proxy:
        assert main(["run", "--model", "claude-sonnet-4-5", "--base-url", proxy.base_url, "--api-key-env",
                     "ANTHROPIC_API_KEY", "--method", "direct", "--limit", "1", "--out", str(tmp_path / "o"),
                     "--cache-dir", str(tmp_path / "c")]) == 0
        assert len(proxy.requests) == 1


class _PageServer:
    """HTTP 200 with `page` (not JSON) on every path: a gateway page quoting the key it got."""

    def __init__(self, page: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        import threading

        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_reply_quoting_the_key_that_is_not_json_never_gets_it_written(tmp_path: Path, key: str, capsys) -> None:
    with _PageServer(f"invalid x-api-key {KEY}".encode()) as url:
        assert main(["run", "--model", MODEL, "--base-url", url, "--method", "direct", "--limit", "1",
                     "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]) != 0
    err = capsys.readouterr().err
    assert "not valid JSON" in err and KEY not in err
    assert [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
