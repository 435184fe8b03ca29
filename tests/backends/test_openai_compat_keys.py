"""Trust item 1: an API key goes only to the endpoint it was meant for, and credentials written in
a base URL never reach a message, a trace, metrics.json, a report, the cache or a sweep's files.

Everything runs over real HTTP on 127.0.0.1 with the real `openai` SDK. A small recording server
(below) captures the Authorization header each request carried, which LoopbackServer does not.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tf_prompt import RunSettings
from tf_prompt.api import make_backend, run_dataset
from tf_prompt.backends.base import BackendError
from tf_prompt.backends.openai_compat import PLACEHOLDER_KEY
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.sweep import main_sweep
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder
from tf_prompt.util.redact import redact_text, redact_url

LABELS = ["PER", "ORG", "LOC", "DATE"]
OTHER_KEY = "sk-openai-MUST-NOT-TRAVEL"   # in OPENAI_API_KEY: may only ever go to OpenAI's own URL
NAMED_KEY = "sk-named-GOES-TO-BASE-URL"


class RecordingServer:
    """Answers every chat request with an empty entity list and records its Authorization header."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server.auth.append(self.headers.get("authorization"))
                self.rfile.read(int(self.headers.get("content-length") or 0))
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": '{"entities": []}'}}],
                                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    yield srv
    srv.close()


def _run_args(base_url: str, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "m", "--base-url", base_url, "--method", "direct", "--limit", "2",
            "--out", str(out), *extra]


def _files_contain(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# --- a named key variable that is unset ------------------------------------------------------

@pytest.mark.parametrize("value", [None, ""])
def test_named_key_variable_unset_is_one_line_error_and_nothing_is_sent(
        recorder: RecordingServer, tmp_path: Path, capsys, monkeypatch, value: str | None) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)
    if value is None:
        monkeypatch.delenv("TF_TRUST_KEY", raising=False)
    else:
        monkeypatch.setenv("TF_TRUST_KEY", value)
    url = f"http://127.0.0.1:{recorder.port}/v1"
    for command in ("run", "estimate"):
        args = _run_args(url, tmp_path / command, "--api-key-env", "TF_TRUST_KEY")
        args[0] = command
        assert main(args) == 1
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert err[-1].startswith("tf-prompt: error: --api-key-env TF_TRUST_KEY:"), captured.err
        assert "Traceback" not in captured.err and OTHER_KEY not in captured.err + captured.out
    assert recorder.auth == []   # before the fix: OPENAI_API_KEY was sent to this server
    # the Python API, and no --model at all (which must not quietly switch to the local model)
    with pytest.raises(BackendError, match="TF_TRUST_KEY"):
        run_dataset(base_url=url, api_key_env="TF_TRUST_KEY", method="direct", limit=1, out=str(tmp_path / "api"))
    with pytest.raises(BackendError, match="TF_TRUST_KEY"):
        make_backend(RunSettings(api_key_env="TF_TRUST_KEY"))
    assert recorder.auth == []


def test_sweep_with_unset_key_variable_stops_before_any_call(recorder: RecordingServer, tmp_path: Path,
                                                             capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)
    monkeypatch.delenv("TF_TRUST_KEY", raising=False)
    config = tmp_path / "sweep.toml"
    config.write_text(f'out = "sw"\nlimit = 2\nmethods = ["direct"]\ndatasets = ["{sample_path()}"]\n'
                      f'[[models]]\nname = "m"\nbase_url = "http://127.0.0.1:{recorder.port}/v1"\n'
                      f'api_key_env = "TF_TRUST_KEY"\n', encoding="utf-8")
    assert main_sweep([str(config)]) == 1
    err = capsys.readouterr().err
    assert "TF_TRUST_KEY" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert recorder.auth == []


def test_keys_reach_only_their_endpoint(recorder: RecordingServer, tmp_path: Path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{recorder.port}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)
    monkeypatch.setenv("TF_TRUST_KEY", NAMED_KEY)
    assert main(_run_args(url, tmp_path / "named", "--api-key-env", "TF_TRUST_KEY", "--no-cache")) == 0
    assert recorder.auth and set(recorder.auth) == {f"Bearer {NAMED_KEY}"}
    # no key anywhere and a base URL: the placeholder a keyless local server accepts
    monkeypatch.delenv("OPENAI_API_KEY")
    recorder.auth.clear()
    assert main(_run_args(url, tmp_path / "local", "--no-cache")) == 0
    assert set(recorder.auth) == {f"Bearer {PLACEHOLDER_KEY}"}
    for out in ("named", "local"):
        assert not _files_contain(tmp_path / out, b"GOES-TO-BASE-URL")


# --- credentials written in the base URL ----------------------------------------------------

def test_url_credentials_reach_their_endpoint_as_basic_auth(recorder: RecordingServer, tmp_path: Path) -> None:
    """httpx sends `user:pw@` of the URL as HTTP Basic auth (instead of the Bearer key): they
    still reach the server they were written for."""
    url = f"http://alice:s3cr3t-pw@127.0.0.1:{recorder.port}/v1"
    assert main(_run_args(url, tmp_path / "o", "--no-cache")) == 0
    assert recorder.auth and set(recorder.auth) == {"Basic " + base64.b64encode(b"alice:s3cr3t-pw").decode()}


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_url_credentials_never_reach_files_messages_cache_report_or_sweep(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    needle = b"hunter2secret"
    sentences = read_conll(sample_path())
    # one sentence always fails, so its error (which names the endpoint) is in the trace and report
    others = " ".join(t for i, s in enumerate(sentences) if i != 3 for t in s.tokens)
    marker = max((t for t in sentences[3].tokens if t not in others), key=len)

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return Fault(503) if marker in user else None

    cache = tmp_path / "cache"
    with LoopbackServer(oracle_responder(sentences, LABELS), fault=fault) as srv:
        secret_url = srv.base_url.replace("http://", "http://bob:hunter2secret@")
        out = tmp_path / "run"
        rc = main(["run", "--model", "m", "--base-url", secret_url, "--method", "transfusion", "--max-retries", "1",
                   "--retry-initial", "0.01", "--cache-dir", str(cache), "--out", str(out)])
        assert rc in (0, 3)
        assert main(["report", str(out)]) == 0
        # a dead endpoint with credentials: the error names it, masked (test_trust_dead_endpoint
        # checks that it stops the run)
        dead = tmp_path / "dead"
        assert main(["run", "--model", "m", "--base-url", f"http://bob:hunter2secret@127.0.0.1:{_free_port()}/v1",
                     "--method", "direct", "--retry-initial", "0.01", "--cache-dir", str(cache),
                     "--out", str(dead)]) in (1, 3)
        # a sweep whose model URL carries credentials
        config = tmp_path / "sweep.toml"
        config.write_text(f'out = "sw"\nlimit = 3\nmethods = ["direct"]\ndatasets = ["{sample_path()}"]\n'
                          f'[[models]]\nname = "m"\nbase_url = "{secret_url}"\n[run]\nmax_retries = 0\n'
                          f'cache_dir = "{cache}"\n', encoding="utf-8")
        assert main_sweep([str(config)]) in (0, 3)
        assert srv.served > 0
    captured = capsys.readouterr()
    assert needle.decode() not in captured.out + captured.err
    dead_files = ((dead / "metrics.json").read_text(encoding="utf-8")
                  + (dead / "trace.jsonl").read_text(encoding="utf-8"))
    assert "cannot connect to http://***@127.0.0.1:" in dead_files
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["settings"]["base_url"].startswith("http://***@127.0.0.1:")
    assert metrics["failed_sentences"] == 1
    assert (out / "report.html").exists() and list((tmp_path / "sw").rglob("cell.json"))
    assert _files_contain(tmp_path, needle) == [config]   # the only copy is the one the user wrote


def test_redaction_rules() -> None:
    assert redact_url("https://u:p@h.example/v1") == "https://***@h.example/v1"
    assert redact_url("https://u:p@ss@h.example:8/v1?key=k1&model=x") == "https://***@h.example:8/v1?key=***&model=x"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"   # unchanged: cache keys stay
    assert redact_url(None) is None
    text = redact_text("cannot connect to http://u:p@ss@h/v1/chat?token=t0k&x=1: refused")
    assert "p@ss" not in text and "t0k" not in text and "x=1" in text
    from tf_prompt.backends.openai_compat import OpenAIBackend

    backend = OpenAIBackend(model="m", base_url="http://u:hunter2secret@127.0.0.1:1/v1")
    assert "hunter2secret" not in repr(backend) + json.dumps(backend.identity())   # identity: in every cache key


@pytest.mark.parametrize("url", ["http://bob:hunter2secret@127.0.0.1:99999/v1", "http://bob:hunter2secret@h:port/v1",
                                 "ftp://bob:hunter2secret@h/v1", "127.0.0.1:8000/v1"])
def test_unusable_base_url_is_one_line_without_the_credentials(url: str, tmp_path: Path, capsys) -> None:
    """Before: a port out of range escaped the SDK as an OverflowError traceback."""
    assert main(_run_args(url, tmp_path / "o")) == 1
    err = capsys.readouterr().err.strip().splitlines()   # the first line notes the shipped sample
    assert len(err) == 2 and err[-1].startswith("tf-prompt: error: base URL ") and "not usable" in err[-1], err
    assert "hunter2secret" not in "\n".join(err)
