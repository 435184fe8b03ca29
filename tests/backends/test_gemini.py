"""`--model gemini:MODEL`: the real google-genai SDK against a Gemini REST server on 127.0.0.1.

Every test goes through the CLI or GeminiBackend with the SDK sending real HTTP to
tf_prompt/testing/gemini_server.py, which answers with the oracle (so F1 must be 1.0) or with
Google's error shapes. Request counts show what is retried and what is not.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_module
from tf_prompt import RunSettings
from tf_prompt.api import make_backend
from tf_prompt.backends.base import BackendError
from tf_prompt.backends.endpoints import GEMINI_URL
from tf_prompt.backends.openai_compat import effective_base_url
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, oracle_responder
from tf_prompt.testing.gemini_server import GeminiServer, gemini_error, quota_error

require_module("google.genai")

LABELS = ["PER", "ORG", "LOC", "DATE"]
KEY = "gk-SECRET-gemini-key-123"
OPENAI_KEY = "sk-openai-MUST-NOT-TRAVEL"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def sentences() -> list[Any]:
    return read_conll(sample_path())


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for name in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION",
                 "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _run(srv: GeminiServer, out: Path, *extra: str, model: str = MODEL, method: str = "direct") -> int:
    return main(["run", "--model", f"gemini:{model}", "--base-url", srv.base_url, "--method", method,
                 "--out", str(out), "--retry-initial", "0.01", *extra])


def _files_with(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def _last_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    return lines[-1]


def test_transfusion_end_to_end_through_the_sdk_then_a_cached_rerun_sends_nothing(
        sentences, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    with GeminiServer(oracle_responder(sentences, LABELS), key=KEY, models={MODEL}, cached_tokens=3,
                      thoughts_tokens=5) as srv:
        assert _run(srv, tmp_path / "run", "--cache-dir", str(cache), method="transfusion") == 0
        paid = srv.served
        assert paid == len(srv.requests) and paid > 3 * len(sentences)
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["f1"] == 1.0 and metrics["complete"] is True
        # the SDK's requests: the REST path, the key in its header, the system instruction as a field
        assert set(srv.paths) == {f"/v1beta/models/{MODEL}:generateContent"}
        assert set(srv.keys) == {KEY}
        assert all("systemInstruction" in body and body["generationConfig"]["temperature"] == 0.0
                   and body["generationConfig"]["maxOutputTokens"] == 1024 for body in srv.requests)
        # the usage is Gemini's own: thinking tokens are billed output, so they count as completion
        assert metrics["usage"]["prompt_tokens"] == srv.prompt_tokens
        assert metrics["usage"]["completion_tokens"] == srv.completion_tokens
        assert metrics["usage"]["cost_usd"] == pytest.approx(
            (srv.prompt_tokens * 0.3 + srv.completion_tokens * 2.5) / 1e6, abs=1e-6)
        assert metrics["settings"]["base_url"] == srv.base_url and metrics["settings"]["model"] == f"gemini:{MODEL}"

        capsys.readouterr()
        assert _run(srv, tmp_path / "again", "--cache-dir", str(cache), method="transfusion") == 0
        assert srv.served == paid and len(srv.requests) == paid   # zero calls
        again = json.loads((tmp_path / "again" / "metrics.json").read_text())
        assert again["f1"] == 1.0 and again["usage"]["calls"] == 0 and again["usage"]["cache_hits"] == paid
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err and _files_with(tmp_path, KEY) == []


def test_identity_names_the_endpoint_and_never_the_key(tmp_path: Path) -> None:
    a = make_backend(RunSettings(model=f"gemini:{MODEL}", base_url="http://127.0.0.1:1"))
    b = make_backend(RunSettings(model=f"gemini:{MODEL}", base_url="http://127.0.0.1:2"))
    c = make_backend(RunSettings(model=f"gemini:{MODEL}"))
    assert a.identity() != b.identity() and c.identity()["base_url"] == GEMINI_URL
    assert a.identity()["kind"] == "gemini" and a.identity()["model"] == MODEL
    assert all(KEY not in json.dumps(x.identity()) + repr(x) for x in (a, b, c))
    # the endpoint a sweep fingerprints: --base-url or Google's, never $OPENAI_BASE_URL
    assert effective_base_url(f"gemini:{MODEL}", None) == GEMINI_URL
    assert effective_base_url(f"gemini:{MODEL}", "http://u:pw@h:1/") == "http://***@h:1"


def test_invalid_key_is_one_line_and_not_retried(sentences, tmp_path: Path, capsys) -> None:
    with GeminiServer(oracle_responder(sentences, LABELS), key="another-key") as srv:
        assert _run(srv, tmp_path / "o", "--concurrency", "1") == 1
        assert len(srv.requests) == 1
    line = _last_error(capsys.readouterr().err)
    assert line.startswith("tf-prompt: error: ") and "API key was refused" in line and "$GEMINI_API_KEY" in line
    assert KEY not in line


def test_unknown_model_is_one_line_and_not_retried(sentences, tmp_path: Path, capsys) -> None:
    with GeminiServer(oracle_responder(sentences, LABELS), key=KEY, models={MODEL}) as srv:
        assert _run(srv, tmp_path / "o", "--concurrency", "1", model="gemini-9-ultra") == 1
        assert len(srv.requests) == 1
    line = _last_error(capsys.readouterr().err)
    assert "404 NOT_FOUND" in line and "'gemini-9-ultra'" in line and "--model gemini:NAME" in line


def test_permission_denied_is_one_line_and_not_retried(sentences, tmp_path: Path, capsys) -> None:
    def fault(body: dict[str, Any], attempt: int) -> Fault:
        return gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")

    with GeminiServer(oracle_responder(sentences, LABELS), fault=fault) as srv:
        assert _run(srv, tmp_path / "o", "--concurrency", "1") == 1
        assert len(srv.requests) == 1
    line = _last_error(capsys.readouterr().err)
    assert "403 PERMISSION_DENIED" in line and f"'{MODEL}'" in line


def test_resource_exhausted_is_retried_after_the_retry_info_delay(sentences, tmp_path: Path) -> None:
    """Two 429s with RetryInfo 0.3s, then answers: with --retry-initial 20 the backoff alone
    would wait 10 s or more, so finishing fast shows the server's delay was used."""
    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        return quota_error("0.3s") if attempt < 2 else None

    with GeminiServer(oracle_responder(sentences, LABELS), key=KEY, fault=fault) as srv:
        started = time.monotonic()
        rc = main(["run", "--model", f"gemini:{MODEL}", "--base-url", srv.base_url, "--method", "direct",
                   "--limit", "1", "--no-cache", "--retry-initial", "20", "--out", str(tmp_path / "o")])
        elapsed = time.monotonic() - started
        assert rc == 0 and len(srv.requests) == 3 and srv.served == 1
    assert 0.6 <= elapsed < 8
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["usage"]["retries"] == 2 and metrics["f1"] == 1.0


def test_server_errors_and_timeouts_are_retried(sentences, tmp_path: Path) -> None:
    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        if attempt == 0:
            return gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        if attempt == 1:
            return Fault(500, {}, delay=1.5)   # longer than --timeout: the client gives up first
        return None

    with GeminiServer(oracle_responder(sentences, LABELS), fault=fault) as srv:
        assert _run(srv, tmp_path / "o", "--limit", "1", "--no-cache", "--timeout", "0.5") == 0
        assert len(srv.requests) == 3 and srv.served == 1
    usage = json.loads((tmp_path / "o" / "metrics.json").read_text())["usage"]
    assert usage["retries"] == 2 and usage["attempts"] == 3


def test_a_timeout_is_a_retryable_timed_out_error() -> None:
    from tf_prompt.backends.gemini import GeminiBackend

    async def go(url: str) -> BackendError:
        backend = GeminiBackend(model=MODEL, base_url=url, timeout=0.3)
        try:
            await backend.complete([{"role": "user", "content": "x"}], {})
        except BackendError as e:
            return e
        finally:
            await backend.aclose()
        raise AssertionError("no error")

    with GeminiServer(fault=lambda body, attempt: Fault(500, {}, delay=1.5)) as srv:
        started = time.monotonic()
        error = asyncio.run(go(srv.base_url))
        assert time.monotonic() - started < 1.2
    assert error.retryable and error.timed_out and "timed out" in str(error)


def test_quota_that_never_clears_fails_the_sentences_after_their_retries(sentences, tmp_path: Path,
                                                                         capsys) -> None:
    with GeminiServer(oracle_responder(sentences, LABELS), fault=lambda b, a: quota_error("0.01s")) as srv:
        rc = _run(srv, tmp_path / "o", "--limit", "2", "--max-retries", "2", "--no-cache")
        assert rc == 3 and len(srv.requests) == 2 * 3   # each call: 1 try + 2 retries
    trace = [json.loads(x) for x in (tmp_path / "o" / "trace.jsonl").read_text().splitlines()]
    assert all(t["failed"] and "RESOURCE_EXHAUSTED" in json.dumps(t["errors"]) for t in trace)


@pytest.mark.parametrize("where", ["prompt", "finish"])
def test_a_safety_block_fails_its_sentence_only_and_is_not_retried(sentences, tmp_path: Path, capsys,
                                                                   where: str) -> None:
    marker = sentences[3].tokens[0]
    others = {t for i, s in enumerate(sentences) if i != 3 for t in s.tokens}
    assert marker not in others

    def block(body: dict[str, Any]) -> tuple[str, str] | None:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return (where, "SAFETY") if marker in user else None

    cache = tmp_path / "cache"
    with GeminiServer(oracle_responder(sentences, LABELS), block=block) as srv:
        assert _run(srv, tmp_path / "o", "--cache-dir", str(cache)) == 3
        assert len(srv.requests) == len(sentences)   # the blocked call was sent once
        trace = {t["index"]: t for t in map(json.loads, (tmp_path / "o" / "trace.jsonl").read_text().splitlines())}
        assert [i for i, t in trace.items() if t["failed"]] == [3]
        assert "safety filter" in trace[3]["errors"]["direct"] and "SAFETY" in trace[3]["errors"]["direct"]
        metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
        assert metrics["failed_sentences"] == 1
        # the block is cached: a rerun pays nothing and reports the same
        assert _run(srv, tmp_path / "o", "--cache-dir", str(cache)) == 3
        assert len(srv.requests) == len(sentences)
    assert "Traceback" not in capsys.readouterr().err


def test_key_variables(sentences, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A named variable must be set; GOOGLE_API_KEY is the fall back of GEMINI_API_KEY; an
    OpenAI key is never sent to Gemini."""
    with GeminiServer(oracle_responder(sentences, LABELS)) as srv:
        monkeypatch.delenv("TF_GEM_KEY", raising=False)
        assert _run(srv, tmp_path / "a", "--api-key-env", "TF_GEM_KEY") == 1
        assert "--api-key-env TF_GEM_KEY" in _last_error(capsys.readouterr().err)
        monkeypatch.delenv("GEMINI_API_KEY")
        assert _run(srv, tmp_path / "b") == 1
        assert "no Gemini API key" in _last_error(capsys.readouterr().err)
        assert srv.requests == []
        monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
        monkeypatch.setenv("TF_GEM_KEY", "named-key")
        assert _run(srv, tmp_path / "c", "--limit", "1", "--no-cache") == 0
        assert _run(srv, tmp_path / "d", "--limit", "1", "--no-cache", "--api-key-env", "TF_GEM_KEY") == 0
        assert srv.keys == ["google-key", "named-key"]
    assert OPENAI_KEY not in json.dumps(srv.keys)


def test_a_key_that_cannot_be_a_header_is_refused_before_sending(sentences, tmp_path: Path, capsys,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY + "\n")
    with GeminiServer(oracle_responder(sentences, LABELS)) as srv:
        assert _run(srv, tmp_path / "o") == 1
        assert srv.requests == []
    line = _last_error(capsys.readouterr().err)
    assert "$GEMINI_API_KEY contains a line break" in line and KEY not in line


def test_connection_refused_is_one_line(tmp_path: Path, capsys) -> None:
    srv = GeminiServer().start()
    url = srv.base_url
    srv.stop()
    assert main(["run", "--model", f"gemini:{MODEL}", "--base-url", url, "--method", "direct", "--limit", "2",
                 "--retry-initial", "0.01", "--out", str(tmp_path / "o")]) in (1, 3)
    line = _last_error(capsys.readouterr().err)
    assert "cannot connect to" in line and "connection refused" in line


def test_constrained_answers_send_the_schema_as_gemini_fields(sentences, tmp_path: Path) -> None:
    with GeminiServer(oracle_responder(sentences, LABELS)) as srv:
        assert _run(srv, tmp_path / "o", "--constrain", "json", "--limit", "2", "--no-cache") == 0
        configs = [b["generationConfig"] for b in srv.requests]
    assert all(c["responseMimeType"] == "application/json" and c["responseJsonSchema"]["type"] == "object"
               for c in configs)
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["f1"] == 1.0


def test_a_model_refusing_the_schema_says_to_drop_constrain(sentences, tmp_path: Path, capsys) -> None:
    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        if "responseJsonSchema" in body["generationConfig"]:
            return gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name "
                                "\"responseJsonSchema\" at 'generation_config': Cannot find field.")
        return None

    with GeminiServer(oracle_responder(sentences, LABELS), fault=fault) as srv:
        assert _run(srv, tmp_path / "o", "--constrain", "json", "--concurrency", "1") == 1
        assert len(srv.requests) == 1
    line = _last_error(capsys.readouterr().err)
    assert "400 INVALID_ARGUMENT" in line and "run with --constrain none" in line


def test_estimate_is_priced_and_says_the_counts_are_approximate(tmp_path: Path, capsys) -> None:
    assert main(["estimate", "--model", f"gemini:{MODEL}", "--method", "direct", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "approximate" in out and "Gemini's tokenizer is not available offline" in out
    assert "Batch API" not in out and "$" in out


def test_usage_of_a_reply_and_the_cached_prompt_tokens() -> None:
    from tf_prompt.backends.gemini import GeminiBackend

    async def go(url: str) -> tuple[Any, int | None]:
        backend = GeminiBackend(model=MODEL, base_url=url)
        try:
            done = await backend.complete([{"role": "system", "content": "s"}, {"role": "user", "content": "x" * 40}],
                                          {"temperature": 0.0, "max_tokens": 8, "seed": 3})
        finally:
            await backend.aclose()
        return done, done.cache_read_tokens

    with GeminiServer(lambda body: '{"entities": []}', cached_tokens=6, thoughts_tokens=4) as srv:
        done, cached = asyncio.run(go(srv.base_url))
        sent = srv.requests[0]
    assert done.text == '{"entities": []}'   # the thought part is not the answer
    assert (done.prompt_tokens, done.completion_tokens, done.finish_reason) == (10, 4 + 4, "STOP")
    assert cached == 6 and sent["generationConfig"]["seed"] == 3


def test_without_the_sdk_the_first_call_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from tf_prompt.backends.gemini import GeminiBackend

    monkeypatch.setitem(sys.modules, "google.genai", None)   # as if google-genai were not installed
    backend = GeminiBackend(model=MODEL, base_url="http://127.0.0.1:9")
    with pytest.raises(BackendError, match=r"pip install 'tf-prompt\[gemini\]'") as info:
        asyncio.run(backend.complete([{"role": "user", "content": "x"}], {}))
    assert not info.value.retryable


def test_without_the_sdk_the_run_stops_before_its_folder_is_made(tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "google.genai", None)   # as if google-genai were not installed
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "o"
    assert main(["run", "--model", f"gemini:{MODEL}", "--base-url", "http://127.0.0.1:9", "--out", str(out),
                 "--cache-dir", str(tmp_path / "c")]) == 1
    line = _last_error(capsys.readouterr().err)
    assert "pip install 'tf-prompt[gemini]'" in line and not out.exists()


def test_a_parameter_gemini_has_not_is_refused() -> None:
    from tf_prompt.backends.gemini import to_gemini

    with pytest.raises(BackendError, match="'logprobs' has no Gemini equivalent"):
        to_gemini([{"role": "user", "content": "x"}], {"logprobs": True})


def test_a_server_quoting_the_key_in_its_error_never_gets_it_written(sentences, tmp_path: Path, capsys) -> None:
    """A proxy or gateway that quotes the key it was sent in its error text: the one line on the
    terminal and metrics.json's `stopped` (which quote the server's message) must not hold it."""
    def fault(body: dict[str, Any], attempt: int) -> Fault:
        return gemini_error(400, "INVALID_ARGUMENT", f"API key not valid: {KEY} (x-goog-api-key)",
                            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])

    with GeminiServer(oracle_responder(sentences, LABELS), fault=fault) as srv:
        assert _run(srv, tmp_path / "o", "--concurrency", "1", "--cache-dir", str(tmp_path / "c")) == 1
        assert srv.keys == [KEY]
    line = _last_error(capsys.readouterr().err)
    assert "API key was refused" in line and KEY not in line
    assert (tmp_path / "o" / "metrics.json").exists() and _files_with(tmp_path, KEY) == []


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_timeouts_and_refused_connections_are_read_whichever_http_library_the_sdk_uses(
        library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """google-genai sends with httpx or httpx2 (its default, an install without one, or
    $GOOGLE_GENAI_HTTP_CLIENT), not necessarily the one the openai SDK uses: a timeout must still
    be a retryable timeout and a refused connection a retryable unreachable endpoint, not a
    request that "could not be built" (which stops the run)."""
    pytest.importorskip(library)
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", library)
    from tf_prompt.backends.gemini import GeminiBackend

    async def go(url: str) -> BackendError:
        backend = GeminiBackend(model=MODEL, base_url=url, timeout=0.3)
        try:
            await backend.complete([{"role": "user", "content": "x"}], {})
        except BackendError as e:
            return e
        finally:
            await backend.aclose()
        raise AssertionError("no error")

    with GeminiServer(fault=lambda body, attempt: Fault(500, {}, delay=1.5)) as srv:
        error = asyncio.run(go(srv.base_url))
    assert error.retryable and error.timed_out and "timed out" in str(error)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = asyncio.run(go(f"http://127.0.0.1:{port}"))
    assert error.retryable and error.unreachable and "connection refused" in str(error)


@pytest.mark.parametrize("mode", ["replay", "record", "auto"])
def test_the_sdks_record_and_replay_modes_are_never_taken_from_the_environment(
        mode: str, sentences, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$GOOGLE_GENAI_CLIENT_MODE (a google-genai testing switch) must not make a run answer from
    replay files instead of the model (replies then cached as the model's) nor write its prompts
    and replies to $GOOGLE_GENAI_REPLAYS_DIRECTORY: every request goes to the endpoint."""
    replays = tmp_path / "replays"
    monkeypatch.setenv("GOOGLE_GENAI_CLIENT_MODE", mode)
    monkeypatch.setenv("GOOGLE_GENAI_REPLAYS_DIRECTORY", str(replays))
    monkeypatch.setenv("GOOGLE_GENAI_REPLAY_ID", "run")
    with GeminiServer(oracle_responder(sentences, LABELS), key=KEY) as srv:
        assert _run(srv, tmp_path / "o", "--limit", "2", "--cache-dir", str(tmp_path / "c")) == 0
        assert srv.served == len(srv.requests) == 2
    assert not replays.exists() or not any(replays.rglob("*"))


def test_a_quota_that_asks_for_hours_stops_the_run_in_one_line(sentences, tmp_path: Path, capsys) -> None:
    """A daily quota used up: 429 RESOURCE_EXHAUSTED whose RetryInfo asks to wait hours, longer
    than tf-prompt ever waits (retry.MAX_RETRY_AFTER). Retrying after its capped wait cannot
    succeed: every call of the run would grind through its retries, minutes each. The run stops
    at the first such answer in one line, outputs kept, as for an exhausted OpenAI quota."""
    with GeminiServer(oracle_responder(sentences, LABELS), fault=lambda b, a: quota_error("43200s")) as srv:
        started = time.monotonic()
        rc = _run(srv, tmp_path / "o", "--limit", "3", "--concurrency", "1", "--no-cache")
        assert rc == 1 and len(srv.requests) == 1
    assert time.monotonic() - started < 10
    line = _last_error(capsys.readouterr().err)
    assert "RESOURCE_EXHAUSTED" in line and "43200" in line
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["complete"] is False


def test_with_aiohttp_installed_each_attempt_is_one_request_and_errors_are_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """google-genai sends with aiohttp whenever it is installed (google-genai[aiohttp], or any
    package that pulls it in). That path retried a failed connection by itself after sleeping 1
    to 10 s (a hidden second request, not tf-prompt's policy), reported a timeout as a
    connection error named CancelledError, and a dropped connection as a request that "could
    not be built" (which stops the run). One attempt per call, each error read for what it is."""
    pytest.importorskip("aiohttp")
    from tf_prompt.backends.gemini import GeminiBackend

    async def go(url: str) -> BackendError:
        backend = GeminiBackend(model=MODEL, base_url=url, timeout=0.3)
        try:
            await backend.complete([{"role": "user", "content": "x"}], {})
        except BackendError as e:
            return e
        finally:
            await backend.aclose()
        raise AssertionError("no error")

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    error = asyncio.run(go(f"http://127.0.0.1:{port}"))
    assert time.monotonic() - started < 0.9   # no hidden retry after a 1-10 s sleep
    assert error.retryable and error.unreachable and "connection refused" in str(error)
    with GeminiServer(fault=lambda body, attempt: Fault(500, {}, delay=1.5)) as srv:
        error = asyncio.run(go(srv.base_url))
        assert len(srv.requests) == 1
    assert error.retryable and error.timed_out and "timed out" in str(error)
    with GeminiServer(fault=lambda body, attempt: Fault(0, None)) as srv:   # a garbled status line
        error = asyncio.run(go(srv.base_url))
        assert len(srv.requests) == 1
    assert error.retryable and "could not be built" not in str(error)
    import threading

    accepted: list[int] = []
    with socket.socket() as listener:   # reads the request, closes without answering
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def drop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                conn.recv(65536)
                conn.close()

        threading.Thread(target=drop, daemon=True).start()
        started = time.monotonic()
        error = asyncio.run(go(f"http://127.0.0.1:{listener.getsockname()[1]}"))
        assert time.monotonic() - started < 0.9 and len(accepted) == 1   # sent once, no hidden retry
    assert error.retryable and "could not be built" not in str(error) and KEY not in str(error)
