"""`--model azure:DEPLOYMENT`: the openai SDK's AsyncAzureOpenAI against the loopback OpenAI
server under Azure's path layout and auth (tf_prompt/testing/azure_server.py), through the CLI.

The gate in front of the server refuses, as Azure does, a request that is not
`/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=V` with the resource's `api-key`;
so a run that answers at all shows the layout was right. Request counts show what is retried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tf_prompt import RunSettings
from tf_prompt.api import make_backend
from tf_prompt.backends.endpoints import DEFAULT_API_VERSION
from tf_prompt.backends.openai_compat import effective_base_url
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, oracle_responder
from tf_prompt.testing.azure_server import azure_server, content_filter_fault, endpoint

LABELS = ["PER", "ORG", "LOC", "DATE"]
KEY = "az-SECRET-resource-key-456"
OPENAI_KEY = "sk-openai-MUST-NOT-TRAVEL"
DEPLOYMENT = "ner-prod"


@pytest.fixture
def sentences() -> list[Any]:
    return read_conll(sample_path())


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "AZURE_OPENAI_AD_TOKEN", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _run(url: str, out: Path, *extra: str, deployment: str = DEPLOYMENT, method: str = "direct") -> int:
    return main(["run", "--model", f"azure:{deployment}", "--base-url", url, "--method", method,
                 "--out", str(out), "--retry-initial", "0.01", *extra])


def _last_error(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_end_to_end_under_the_azure_layout_then_a_cached_rerun_sends_nothing(sentences, tmp_path: Path,
                                                                            capsys) -> None:
    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT})
    cache = tmp_path / "cache"
    with srv:
        url = endpoint(srv)
        assert _run(url, tmp_path / "run", "--cache-dir", str(cache), method="transfusion") == 0
        paid = srv.served
        assert paid == len(gate.seen) and gate.refused == 0 and paid > 3 * len(sentences)
        assert {(s["path"], s["api_version"], s["key"]) for s in gate.seen} == {
            (f"/openai/deployments/{DEPLOYMENT}/chat/completions", DEFAULT_API_VERSION, KEY)}
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["f1"] == 1.0 and metrics["complete"] is True
        assert metrics["settings"]["base_url"] == f"{url}?api-version={DEFAULT_API_VERSION}"
        assert metrics["settings"]["model"] == f"azure:{DEPLOYMENT}"
        # a deployment name the price table does not know: the cost is unknown, never $0
        assert metrics["usage"]["cost_usd"] is None and metrics["usage"]["cost_known"] is False

        assert _run(url, tmp_path / "again", "--cache-dir", str(cache), method="transfusion") == 0
        assert srv.served == paid and len(gate.seen) == paid
        assert json.loads((tmp_path / "again" / "metrics.json").read_text())["usage"]["calls"] == 0
    printed = capsys.readouterr()
    assert KEY not in printed.out + printed.err
    assert [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []


def test_api_version_from_the_flag_or_the_environment_is_sent_and_is_part_of_the_identity(
        sentences, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT})
    cache = ["--cache-dir", str(tmp_path / "cache"), "--limit", "1"]
    with srv:
        url = endpoint(srv)
        monkeypatch.setenv("OPENAI_API_VERSION", "2024-06-01")
        assert _run(url, tmp_path / "env", *cache) == 0
        assert _run(url, tmp_path / "flag", *cache, "--api-version", "2025-01-01-preview") == 0
        # the same version again: from the cache (the version is in the backend's identity)
        assert _run(url, tmp_path / "flag2", *cache, "--api-version", "2025-01-01-preview") == 0
    assert [s["api_version"] for s in gate.seen] == ["2024-06-01", "2025-01-01-preview"]
    recorded = json.loads((tmp_path / "flag" / "metrics.json").read_text())["settings"]
    assert recorded["base_url"].endswith("?api-version=2025-01-01-preview")
    assert effective_base_url("azure:d", url, "v9") == f"{url}?api-version=v9"


def test_unknown_deployment_is_one_line_and_not_retried(sentences, tmp_path: Path, capsys) -> None:
    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT})
    with srv:
        assert _run(endpoint(srv), tmp_path / "o", "--concurrency", "1", deployment="gpt-4o-typo") == 1
    assert gate.refused == 1 and srv.served == 0
    line = _last_error(capsys.readouterr().err)
    assert "no deployment 'gpt-4o-typo'" in line and "DeploymentNotFound" in line


def test_wrong_key_is_one_line_naming_the_variable_and_not_retried(sentences, tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_AZ_KEY", "not-this-resources-key")
    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT})
    with srv:
        assert _run(endpoint(srv), tmp_path / "o", "--concurrency", "1", "--api-key-env", "TF_AZ_KEY") == 1
    assert gate.refused == 1
    line = _last_error(capsys.readouterr().err)
    assert "key was refused (HTTP 401)" in line and "$TF_AZ_KEY" in line and "not-this-resources-key" not in line


def test_content_filter_fails_that_sentence_only_and_is_not_retried(sentences, tmp_path: Path) -> None:
    marker = sentences[5].tokens[0]
    assert all(marker not in s.tokens for i, s in enumerate(sentences) if i != 5)

    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return content_filter_fault() if marker in user else None

    srv, _gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT}, fault=fault)
    with srv:
        assert _run(endpoint(srv), tmp_path / "o", "--no-cache") == 3
        assert len(srv.requests) == len(sentences) and srv.faulted == 1
    trace = {t["index"]: t for t in map(json.loads, (tmp_path / "o" / "trace.jsonl").read_text().splitlines())}
    assert [i for i, t in trace.items() if t["failed"]] == [5]
    assert "content_filter (violence)" in trace[5]["errors"]["direct"]


def test_rate_limit_is_retried_after_retry_after(sentences, tmp_path: Path) -> None:
    def fault(body: dict[str, Any], attempt: int) -> Fault | None:
        return Fault(429, {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation "
                                     "have exceeded call rate limit."}}, {"retry-after": "0"}) if attempt < 2 else None

    srv, _gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT}, fault=fault)
    with srv:
        assert _run(endpoint(srv), tmp_path / "o", "--limit", "1", "--no-cache", "--retry-initial", "30") == 0
        assert len(srv.requests) == 3


def test_settings_problems_are_one_line_before_anything_is_sent(tmp_path: Path, capsys,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["run", "--model", f"azure:{DEPLOYMENT}", "--method", "direct", "--out", str(tmp_path / "a")]) == 1
    assert "needs the resource endpoint" in _last_error(capsys.readouterr().err)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")   # OPENAI_API_KEY is set, and must not be used
    assert _run("http://127.0.0.1:9", tmp_path / "b") == 1
    line = _last_error(capsys.readouterr().err)
    assert "no Azure OpenAI key: set AZURE_OPENAI_API_KEY" in line
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "http://u:hunter2pw@127.0.0.1:9")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    backend = make_backend(RunSettings(model=f"azure:{DEPLOYMENT}"))
    assert "hunter2pw" not in json.dumps(backend.identity()) + repr(backend) and KEY not in repr(backend)
    assert backend.identity()["base_url"] == f"http://***@127.0.0.1:9?api-version={DEFAULT_API_VERSION}"


def test_a_deployment_is_priced_by_its_name_or_a_prices_file(sentences, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {DEPLOYMENT: {"input": 1.0, "output": 2.0}}}))
    srv, _gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT, "gpt-4o-mini"})
    with srv:
        assert _run(endpoint(srv), tmp_path / "a", "--limit", "2", "--no-cache", "--prices", str(prices)) == 0
        assert _run(endpoint(srv), tmp_path / "b", "--limit", "2", "--no-cache", deployment="gpt-4o-mini") == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["usage"]
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["usage"]
    assert a["cost_usd"] == pytest.approx((a["prompt_tokens"] * 1.0 + a["completion_tokens"] * 2.0) / 1e6, abs=1e-6)
    assert b["cost_usd"] == pytest.approx((b["prompt_tokens"] * 0.15 + b["completion_tokens"] * 0.6) / 1e6, abs=1e-6)


@pytest.mark.parametrize("model", [f"azure:{DEPLOYMENT}", "gemini:gemini-2.5-flash"])
def test_azure_and_gemini_cannot_go_through_the_openai_batch_api(tmp_path: Path, capsys, model: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")   # refused for what it is, before any key is looked for
    assert main(["run", "--model", model, "--base-url", "http://127.0.0.1:9", "--via", "batch",
                 "--method", "direct", "--out", str(tmp_path / "o")]) == 1
    line = _last_error(capsys.readouterr().err)
    assert f"{model!r} is a {model.split(':')[0]} model" in line


@pytest.mark.parametrize("status", [403, 400])
def test_a_server_quoting_the_key_in_its_error_never_gets_it_written(sentences, tmp_path: Path, capsys,
                                                                    status: int) -> None:
    """A gateway in front of the resource that quotes the api-key it got in its error text: the
    one line on the terminal and metrics.json's `stopped` must not hold the key."""
    def fault(body: dict[str, Any], attempt: int) -> Fault:
        return Fault(status, {"error": {"code": "Denied", "message": f"api-key {KEY} is not allowed here"}})

    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT}, fault=fault)
    with srv:
        assert _run(endpoint(srv), tmp_path / "o", "--concurrency", "1", "--cache-dir", str(tmp_path / "c")) == 1
        assert [s["key"] for s in gate.seen] == [KEY]
    line = _last_error(capsys.readouterr().err)
    assert f"HTTP {status}" in line and "is not allowed here" in line and KEY not in line
    assert (tmp_path / "o" / "metrics.json").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []


@pytest.mark.parametrize("model", ["azure:gpt-4o-mini", "gemini:gpt-4o-mini"])
def test_estimate_prices_the_cost_without_the_prompt_cache_for_every_provider(
        tmp_path: Path, capsys, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate's cost without the provider's prompt cache (and the saving line) is priced by
    the name the backend is priced by, the model after its `azure:`/`gemini:` prefix, as the
    estimate's own cost is: it was None for those providers, so the saving was never shown."""
    monkeypatch.setenv("GEMINI_API_KEY", "gk-not-sent")
    prices = tmp_path / "prices.json"   # a tiny cache minimum: every prefix counts as cached
    prices.write_text(json.dumps({"models": {"gpt-4o-mini": {"input": 1.0, "output": 2.0, "cached_input": 0.1,
                                                             "cache_min_tokens": 1}}}))
    args = ["estimate", "--model", model, "--base-url", "http://127.0.0.1:9", "--method", "direct",
            "--limit", "3", "--concurrency", "1", "--prices", str(prices), "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert est["cost_usd"] is not None and est["cache_read_tokens"] > 0
    assert est["cost_usd_without_prompt_cache"] == pytest.approx(
        (est["prompt_tokens"] * 1.0 + est["completion_tokens"] * 2.0) / 1e6)
    assert est["cost_usd_without_prompt_cache"] > est["cost_usd"]
    assert main(args) == 0
    assert "provider prompt cache" in capsys.readouterr().out


def test_openai_base_url_and_key_never_reroute_an_azure_run(sentences, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """$OPENAI_BASE_URL (another server) and $OPENAI_API_KEY set while an azure: model runs: every
    request goes to the resource endpoint with the Azure key, none to the OpenAI-compatible one."""
    from tf_prompt.testing import LoopbackServer

    srv, gate = azure_server(oracle_responder(sentences, LABELS), key=KEY, deployments={DEPLOYMENT})
    with srv, LoopbackServer(oracle_responder(sentences, LABELS)) as other:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url)
        url = endpoint(srv)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", url)
        assert main(["run", "--model", f"azure:{DEPLOYMENT}", "--method", "direct", "--limit", "2",
                     "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]) == 0
        assert other.requests == [] and [s["key"] for s in gate.seen] == [KEY, KEY]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["settings"]["base_url"] == f"{url}?api-version={DEFAULT_API_VERSION}"


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


def test_a_reply_quoting_the_key_that_is_not_json_never_gets_it_written(tmp_path: Path, capsys) -> None:
    with _PageServer(f"invalid api-key {KEY}".encode()) as url:
        assert _run(url, tmp_path / "o", "--limit", "1", "--cache-dir", str(tmp_path / "c")) != 0
    err = capsys.readouterr().err
    assert "not valid JSON" in err and KEY not in err
    assert [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
