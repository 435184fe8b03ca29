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
from typing import Any, Iterator

import pytest

from tf_prompt.cli import main
from tf_prompt.data import read_conll, sample_path
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
SECRET = "sk-REVIEW-SECRET-1234"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _files_text(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def oracle() -> Iterator[LoopbackServer]:
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        yield srv


def test_key_with_a_line_break_never_reaches_a_message_or_file(oracle, tmp_path, monkeypatch, capsys):
    """A key read from a file often ends in a newline. httpx refuses it as a header value and its
    error text quotes the header (`Illegal header value b'Bearer sk-...\\n'`); that text became
    the run's error on stderr and in metrics.json "stopped" (seen), under "cannot connect"."""
    monkeypatch.setenv("MY_KEY", SECRET + "\n")
    out = tmp_path / "run"
    code, stdout, err = _run(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback",
                             "--method", "direct", "--limit", "2", "--out", str(out),
                             "--api-key-env", "MY_KEY", "--cache-dir", str(tmp_path / "c"))
    assert code != 0
    assert SECRET not in err + stdout
    assert not out.exists() or SECRET not in _files_text(out)


def test_key_with_a_non_ascii_character_is_one_line(oracle, tmp_path, monkeypatch, capsys):
    """A key pasted with a no-break space: a UnicodeEncodeError traceback from httpx (seen), not
    one `tf-prompt: error:` line."""
    monkeypatch.setenv("MY_KEY", SECRET + "\u00a0")
    code, stdout, err = _run(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback",
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
    code, stdout, err = _run(capsys, "run", "--base-url", "http://user:123#" + SECRET + "@127.0.0.1:9/v1",
                             "--model", "loopback", "--method", "direct", "--limit", "2", "--out", str(out),
                             "--cache-dir", str(tmp_path / "c"))
    assert code != 0
    assert SECRET not in err + stdout
    assert not out.exists() or SECRET not in _files_text(out)


class _HtmlServer:
    """A web page on every path, HTTP 200 (a --base-url that points at a web UI, not its API)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _page(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                body = b"<!doctype html><html><body>My web UI</body></html>"
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
        code, _, err = _run(capsys, "run", "--base-url", url, "--model", "loopback", "--method", "direct",
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
    assert _run(capsys, *args)[0] == 0
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["settings"]["base_url"] == oracle.base_url
    with LoopbackServer(lambda body: '{"entities": []}') as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        code, _, err = _run(capsys, *args)
        assert other.served == 0
    assert code == 2 and "base_url" in err
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["f1"] == 1.0
