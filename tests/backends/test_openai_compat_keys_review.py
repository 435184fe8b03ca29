"""Regression tests for the review findings on keys, endpoints and URL secrets (README "Cost,
cache, retries"): a key that is not a valid header value, a base URL that serves a web page, the
endpoint named by $OPENAI_BASE_URL, a password with '#' in the base URL, settings that cannot
work, and a dropped connection at the start of a run.

Every test drives the real CLI (`tf_prompt.cli.main`) against a loopback server over real HTTP.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
SECRET = "sk-REVIEW-SECRET-1234"




def _files_text(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def oracle(sample_oracle: LoopbackServer) -> LoopbackServer:
    return sample_oracle


def test_key_with_a_line_break_never_reaches_a_message_or_file(oracle, tmp_path, monkeypatch, capsys):
    """A key read from a file often ends in a newline. httpx refuses it as a header value and its
    error text quotes the header (`Illegal header value b'Bearer sk-...\\n'`); that text became
    the run's error on stderr and in metrics.json "stopped" (seen), under "cannot connect"."""
    monkeypatch.setenv("MY_KEY", SECRET + "\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback",
                             "--method", "direct", "--limit", "2", "--out", str(out),
                             "--api-key-env", "MY_KEY", "--cache-dir", str(tmp_path / "c"))
    assert code != 0
    assert SECRET not in err + stdout
    assert not out.exists() or SECRET not in _files_text(out)


def test_key_with_a_non_ascii_character_is_one_line(oracle, tmp_path, monkeypatch, capsys):
    """A key pasted with a no-break space: a UnicodeEncodeError traceback from httpx (seen), not
    one `tf-prompt: error:` line."""
    monkeypatch.setenv("MY_KEY", SECRET + "\u00a0")
    code, stdout, err = run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback",
                             "--method", "direct", "--limit", "2", "--out", str(tmp_path / "run"),
                             "--api-key-env", "MY_KEY", "--cache-dir", str(tmp_path / "c"))
    assert code != 0
    assert err.strip().splitlines()[-1].startswith("tf-prompt: error:")
    assert SECRET not in err + stdout


def test_password_with_a_hash_in_the_base_url_is_never_shown(tmp_path, capsys):
    """`https://user:123#pw@host/v1` (a password with an unencoded '#'): the URL parser reads
    host "user", port 123, so redact_url found no userinfo and the whole URL, password included,
    went to stderr, metrics.json and run.json (seen)."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "run", "--base-url", "http://user:123#" + SECRET + "@127.0.0.1:9/v1",
                             "--model", "loopback", "--method", "direct", "--limit", "2", "--out", str(out),
                             "--cache-dir", str(tmp_path / "c"))
    assert code != 0
    assert SECRET not in err + stdout
    assert not out.exists() or SECRET not in _files_text(out)


class _HtmlServer:
    """A web page on every path, HTTP 200 (a --base-url that points at a web UI, not its API)."""

    def __init__(self, page: bytes = b"<!doctype html><html><body>My web UI</body></html>") -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _page(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = page
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _page

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        import threading

        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_base_url_that_serves_a_web_page_stops_in_seconds_with_the_cause(tmp_path, capsys):
    """Every reply is HTTP 200 with HTML ("reply is not valid JSON"): status 200 keeps the dead
    endpoint breaker off, so each sentence is retried 5 times with backoff: 48 s for 12
    sentences, 125 s for 40 (about 10 minutes for 200), ending in exit 3 and "rerun the same
    command" with the cause only inside trace.jsonl (seen)."""
    with _HtmlServer() as url:
        started = time.monotonic()
        code, _, err = run_cli(capsys, "run", "--base-url", url, "--model", "loopback", "--method", "direct",
                            "--limit", "2", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "c"))
        elapsed = time.monotonic() - started
    assert code != 0
    # 5 retries of one call alone back off at least 15.5 s; a refused port stops in well under 1 s
    assert elapsed < 10, f"took {elapsed:.0f} s"
    assert "not valid JSON" in err.strip().splitlines()[-1]


def test_endpoint_from_openai_base_url_is_part_of_the_run_identity(oracle, tmp_path, monkeypatch, capsys):
    """README: the run folder records the base URL, and different settings are refused. With
    the endpoint given by $OPENAI_BASE_URL (no --base-url), the record holds base_url null: a
    rerun against another server silently replaced the finished run (F1 1.0 -> 0.0, seen), and
    metrics.json/run.json never say which server produced the results."""
    out = tmp_path / "run"
    args = ["run", "--model", "loopback", "--method", "direct", "--limit", "3", "--out", str(out),
            "--cache-dir", str(tmp_path / "c")]
    monkeypatch.setenv("OPENAI_BASE_URL", oracle.base_url)
    assert run_cli(capsys, *args)[0] == 0
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["settings"]["base_url"] == oracle.base_url
    with LoopbackServer(lambda body: '{"entities": []}') as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        code, _, err = run_cli(capsys, *args)
        assert other.served == 0
    assert code == 2 and "base_url" in err
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["f1"] == 1.0


# -- additions: what the findings above imply, and the rest of finding 13 ---------------------------

@pytest.mark.parametrize("url, secret", [
    ("http://user:pa#" + SECRET + "@h.example/v1", SECRET),           # '#': a parser sees a fragment
    ("http://user:pa/" + SECRET + "@h.example:8/v1", SECRET),         # '/': a parser sees a path
    ("http://user:pa?" + SECRET + "@h.example/v1", SECRET),           # '?': a parser sees a query
    ("http://h.example/v1;key=" + SECRET, SECRET),                    # a path parameter
    ("http://h.example/v1?model=x&api-key=" + SECRET + "#frag", SECRET),
])
def test_redaction_does_not_depend_on_how_a_parser_reads_the_url(url: str, secret: str) -> None:
    from tf_prompt.util.redact import redact_text, redact_url

    assert secret not in redact_url(url)
    assert secret not in redact_text(f"cannot connect to {url}: connection refused")
    assert "h.example" in redact_url(url)   # the host is still shown


def test_path_parameter_key_is_masked_in_the_files_too(tmp_path, capsys):
    """`;key=...` was masked in messages (redact_text) but stored in clear in metrics.json and
    run.json (redact_url read only the query)."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "run", "--base-url", "http://127.0.0.1:9/v1;key=" + SECRET,
                             "--model", "loopback", "--method", "direct", "--limit", "2", "--out", str(out),
                             "--cache-dir", str(tmp_path / "c"))
    assert code != 0 and (out / "metrics.json").is_file(), err
    assert SECRET not in err + stdout + _files_text(out)


def test_three_dropped_connections_at_the_start_do_not_stop_a_live_server(oracle, tmp_path, capsys):
    """The first three attempts (one per sentence, all in flight at once) are dropped without an
    answer, then the server answers. Before: the third no-status failure tripped the breaker
    ("cannot connect ...", in a fraction of a second), as if nobody were listening; a dropped
    connection is only a sign of a dead endpoint when a call fails so twice."""
    oracle.fault = lambda body, attempt: Fault(status=0) if attempt < 3 else None
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
                        "--limit", "3", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                        "--retry-initial", "0.05")
    assert code == 0, err
    assert oracle.faulted == 3
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is True and metrics["f1"] == 1.0


def test_refused_connections_still_stop_at_once(tmp_path, capsys):
    """Guard for the rule above: an unambiguous cause (nobody listens) still stops the run in
    well under a second, with the cause named."""
    started = time.monotonic()
    code, _, err = run_cli(capsys, "run", "--base-url", "http://127.0.0.1:9/v1", "--model", "loopback",
                        "--method", "direct", "--limit", "3", "--out", str(tmp_path / "run"),
                        "--cache-dir", str(tmp_path / "c"))
    assert code != 0 and time.monotonic() - started < 5
    assert "connection refused" in err.strip().splitlines()[-1]


def test_malformed_replies_after_a_success_are_retried_per_call(oracle, tmp_path, capsys):
    """Guard for the web-page rule: once a reply of the run succeeded, replies that are not an
    API's are retried per call, as before (a proxy cutting a reply short), and the run finishes."""
    oracle.fault = lambda body, attempt: Fault(status=200, body={"no": "choices"}) if 1 <= attempt <= 3 else None
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
                        "--limit", "2", "--concurrency", "1", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                        "--retry-initial", "0.01")
    assert code == 0, err
    assert oracle.faulted == 3
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["f1"] == 1.0


@pytest.mark.parametrize("flag, value", [
    ("--temperature", "nan"), ("--temperature", "inf"), ("--timeout", "0"), ("--timeout", "-1"),
    ("--rpm", "0"), ("--rpm", "-5"), ("--tpm", "0"), ("--max-cost", "-1"), ("--concurrency", "0"),
    ("--max-retries", "-1"),
])
def test_settings_that_cannot_work_are_refused_in_one_line_before_any_call(oracle, tmp_path, capsys, flag, value):
    """Before: --temperature nan was a ValueError traceback from the JSON encoder; --timeout 0
    blamed the endpoint ("rerun once the endpoint answers"); --rpm 0 or -5, --tpm 0, a negative
    --max-cost and --concurrency 0 were accepted."""
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
                        "--limit", "2", "--out", str(out), "--cache-dir", str(tmp_path / "c"), flag, value)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("tf-prompt: error: " + flag[2:].replace("-", "_")), err
    assert len(oracle.requests) == 0 and not out.exists()


def test_a_request_that_cannot_be_built_is_a_one_line_backend_error(oracle):
    """complete() caught only openai.OpenAIError: a parameter the JSON encoder refuses (a script
    bypassing the settings) escaped as a ValueError traceback."""
    import asyncio

    from tf_prompt.backends.base import BackendError
    from tf_prompt.backends.openai_compat import OpenAIBackend

    backend = OpenAIBackend(model="loopback", base_url=oracle.base_url, api_key="sk-x")

    async def go() -> None:
        try:
            await backend.complete([{"role": "user", "content": "hi"}], {"temperature": float("nan")})
        finally:
            await backend.aclose()

    with pytest.raises(BackendError) as info:
        asyncio.run(go())
    assert not info.value.retryable and "\n" not in str(info.value) and "ValueError" in str(info.value)
    assert len(oracle.requests) == 0


def test_an_interrupted_run_records_an_interruption_not_cancellederror(tmp_path):
    """Ctrl-C (asyncio.run cancels the run) wrote "stopped": "CancelledError" in metrics.json."""
    import asyncio

    from tf_prompt.api import run_async
    from tf_prompt.settings import RunSettings

    sentences = read_conll(sample_path())
    out = tmp_path / "run"
    with LoopbackServer(oracle_responder(sentences, LABELS), latency=0.2) as srv:
        settings = RunSettings(model="loopback", base_url=srv.base_url, method="direct", concurrency=1,
                               out=str(out), cache_dir=str(tmp_path / "c"), progress=False)

        async def go() -> None:
            task = asyncio.ensure_future(run_async(settings, sentences))
            while srv.served < 2:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(go())
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is False and metrics["stopped"] == "interrupted (Ctrl-C or cancelled)"


@pytest.mark.parametrize("status", [401, 400, 500])
def test_a_server_quoting_the_key_in_its_error_never_gets_it_written(tmp_path, monkeypatch, capsys, status):
    """An OpenAI-compatible proxy that quotes the key it was sent in its error text (as the
    anthropic:, gemini: and azure: backends are tested for): the one line on stderr, the trace
    and metrics.json's `stopped` must not hold it."""
    monkeypatch.setenv("MY_KEY", SECRET)
    body = {"error": {"message": f"Invalid proxy token passed: {SECRET}", "code": "bad"}}
    with LoopbackServer(fault=lambda req, n: Fault(status, body)) as srv:
        out = tmp_path / "run"
        code, stdout, err = run_cli(capsys, "run", "--base-url", srv.base_url, "--model", "loopback",
                                    "--method", "direct", "--limit", "1", "--out", str(out), "--max-retries", "0",
                                    "--api-key-env", "MY_KEY", "--cache-dir", str(tmp_path / "c"))
        assert srv.requests
    assert code != 0
    assert SECRET not in err + stdout
    assert out.exists() and SECRET not in _files_text(out)


def test_a_reply_quoting_the_key_that_is_not_json_never_gets_it_written(tmp_path, monkeypatch, capsys):
    """A 200 that is not JSON is quoted (its first 80 characters) in the error line: a gateway
    page that echoes the token it was sent must not put the key on stderr or in the run folder."""
    monkeypatch.setenv("MY_KEY", SECRET)
    with _HtmlServer(f"Invalid token {SECRET}".encode()) as url:
        out = tmp_path / "run"
        code, stdout, err = run_cli(capsys, "run", "--base-url", url, "--model", "loopback", "--method", "direct",
                                    "--limit", "1", "--out", str(out), "--api-key-env", "MY_KEY",
                                    "--cache-dir", str(tmp_path / "c"))
    assert code != 0 and "not valid JSON" in err
    assert SECRET not in err + stdout
    assert out.exists() and SECRET not in _files_text(out)
