"""The OpenAI backend sends a plain JSON body through the SDK's low-level `post` (issue 17, item 2).

Over real HTTP against the loopback server: the request is the one `chat.completions.create`
would send, the reply is read the same way, every HTTP failure still arrives as the SDK's own
exception type (so translate_error maps it as before), the timeout applies, a malformed reply
is a one-line error instead of a traceback, and the SDK's typed request transform (about 2 ms
of CPU per call) is no longer on the path.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
from pathlib import Path
from typing import Any

import openai
import pytest

from tf_prompt.api import run_async
from tf_prompt.backends.base import BackendError
from tf_prompt.backends.openai_compat import OpenAIBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.settings import RunSettings
from tf_prompt.testing import Fault, LoopbackServer, oracle_responder

MESSAGES = [{"role": "system", "content": "You extract entities."},
            {"role": "user", "content": "Sentence: Shehu Gusau ya isa Kano ọ̀yọ́ \"quoted\"."}]
PARAMS = {"temperature": 0.0, "max_tokens": 64, "seed": 7}


class RecordingServer(LoopbackServer):
    """The loopback server, also keeping each chat request's headers; `raw_reply` replaces the
    JSON reply with these bytes (a reply cut short by a proxy)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.headers: list[dict[str, str]] = []
        self.raw_reply: bytes | None = None

    def _handle_chat(self, handler: Any, body: dict[str, Any]) -> None:
        self.headers.append({k.lower(): v for k, v in handler.headers.items()})
        if self.raw_reply is not None:
            with self._lock:
                self.requests.append(body)
            handler._send_bytes(self.raw_reply, "application/json")
            return
        super()._handle_chat(handler, body)


@pytest.fixture
def rec():
    with RecordingServer(lambda body: "Shehu Gusau ✓") as srv:
        yield srv


def complete(backend: OpenAIBackend, messages=MESSAGES, params=PARAMS):
    async def go():
        try:
            return await backend.complete(messages, params)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_same_request_and_reply_as_the_sdk_create(rec: RecordingServer) -> None:
    ours = complete(OpenAIBackend(model="m1", base_url=rec.base_url, api_key="sk-test-key"))

    async def sdk():
        client = openai.AsyncOpenAI(base_url=rec.base_url, api_key="sk-test-key", max_retries=0)
        try:
            return await client.chat.completions.create(model="m1", messages=MESSAGES, **PARAMS)
        finally:
            await client.close()

    theirs = asyncio.run(sdk())
    assert len(rec.requests) == 2
    assert rec.requests[0] == rec.requests[1] == {"model": "m1", "messages": MESSAGES, **PARAMS}
    ours_h, theirs_h = rec.headers
    assert ours_h["authorization"] == theirs_h["authorization"] == "Bearer sk-test-key"
    assert ours_h["content-type"] == theirs_h["content-type"] == "application/json"
    assert ours.text == theirs.choices[0].message.content == "Shehu Gusau ✓"
    assert ours.prompt_tokens == theirs.usage.prompt_tokens and ours.prompt_tokens > 0
    assert ours.completion_tokens == theirs.usage.completion_tokens
    assert ours.finish_reason == theirs.choices[0].finish_reason == "stop"
    assert ours.model == theirs.model == "m1"


@pytest.mark.parametrize("status,body,headers,retryable,retry_after,words", [
    (401, {"error": {"message": "bad key", "code": "invalid_api_key"}}, {}, False, None,
     "HTTP 401: check OPENAI_API_KEY"),
    (429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, {"retry-after": "2"}, True, 2.0,
     "rate limited (HTTP 429)"),
    (429, {"error": {"message": "pay", "code": "insufficient_quota"}}, {}, False, None, "insufficient quota"),
    (500, {"error": {"message": "boom", "code": None}}, {"retry-after-ms": "250"}, True, 0.25,
     "server error (HTTP 500)"),
    (404, {"error": {"message": "no such model", "code": "model_not_found"}}, {}, False, None,
     "check --model and --base-url"),
])
def test_http_errors_keep_the_sdk_exception_types(rec: RecordingServer, status: int, body: dict,
                                                  headers: dict, retryable: bool, retry_after: float | None,
                                                  words: str) -> None:
    rec.fault = lambda b, attempt: Fault(status, body, headers=headers)
    with pytest.raises(BackendError) as err:
        complete(OpenAIBackend(model="m", base_url=rec.base_url, api_key="k"))
    e = err.value
    assert e.status == status and e.retryable is retryable and e.retry_after == retry_after
    assert words in str(e) and "\n" not in str(e)
    assert len(rec.requests) == 1   # the SDK's own retries stay off


def test_timeout_applies(rec: RecordingServer) -> None:
    rec.fault = lambda b, attempt: Fault(status=200, body={"choices": []}, delay=1.5)
    with pytest.raises(BackendError, match="timed out") as err:
        complete(OpenAIBackend(model="m", base_url=rec.base_url, api_key="k", timeout=0.3))
    assert err.value.retryable and len(rec.requests) == 1


def test_connection_refused_is_a_connection_error() -> None:
    with LoopbackServer() as srv:
        url = srv.base_url
    with pytest.raises(BackendError, match="cannot connect") as err:
        complete(OpenAIBackend(model="m", base_url=url, api_key="k"))
    assert err.value.retryable


@pytest.mark.parametrize("raw,words", [
    (b'{"id": "x", "choices": [{"message": {"content": "cut', "not valid JSON"),
    (b"<html>gateway</html>", "not valid JSON"),
    (b'{"id": "x", "choices": []}', "no choices"),
    (b'["not", "an", "object"]', "no choices"),
    (b'{"choices": [{"message": {"content": [1, 2]}}]}', "not text"),
])
def test_malformed_reply_is_a_one_line_retryable_error(rec: RecordingServer, raw: bytes, words: str) -> None:
    rec.raw_reply = raw
    with pytest.raises(BackendError, match=words) as err:
        complete(OpenAIBackend(model="m", base_url=rec.base_url, api_key="k"))
    assert err.value.retryable and "\n" not in str(err.value)


def test_reply_without_usage_or_content_still_reads(rec: RecordingServer) -> None:
    rec.raw_reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": None},
                                             "finish_reason": "length"}]}).encode()
    c = complete(OpenAIBackend(model="m", base_url=rec.base_url, api_key="k"))
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, c.model) == ("", None, None, "length", None)


def test_malformed_reply_in_a_run_is_recorded_not_a_traceback(rec: RecordingServer, tmp_path: Path) -> None:
    """A server whose every reply is cut short, before any reply of the run succeeded: the run
    stops with one BackendError naming the cause (the CLI prints it as one line) instead of a
    traceback, and the outputs of the stopped run are kept (retry.DeadEndpoint: a reply that is
    not an API's is the sign of a wrong base URL while nothing has succeeded)."""
    rec.raw_reply = b'{"choices": [{"message": '
    sentences = read_conll(sample_path())[:2]
    settings = RunSettings(model="m", base_url=rec.base_url, method="direct", max_retries=1, retry_initial=0.01,
                           cache_dir=str(tmp_path / "cache"), progress=False, out=str(tmp_path / "run"))
    with pytest.raises(BackendError) as info:
        asyncio.run(run_async(settings, sentences))
    assert "reply is not valid JSON" in str(info.value) and "\n" not in str(info.value)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is False and "reply is not valid JSON" in metrics["stopped"]
    assert metrics["usage"]["calls"] == 0


def test_a_run_over_http_scores_as_before(rec: RecordingServer, tmp_path: Path) -> None:
    sentences = read_conll(sample_path())[:4]
    rec.responder = oracle_responder(sentences, ["PER", "ORG", "LOC", "DATE"])
    settings = RunSettings(model="m", base_url=rec.base_url, method="transfusion", cache_dir=str(tmp_path / "c"),
                           progress=False)
    first = asyncio.run(run_async(settings, sentences))
    again = asyncio.run(run_async(settings, sentences))
    assert first.metrics["f1"] == 1.0 and first.metrics["usage"]["calls"] == len(rec.requests) > 0
    assert first.metrics["usage"]["prompt_tokens"] == rec.prompt_tokens
    assert again.metrics["usage"]["calls"] == 0 and again.metrics["f1"] == 1.0


def test_the_sdk_request_transform_is_off_the_hot_path(rec: RecordingServer) -> None:
    """`chat.completions.create` runs every argument through openai/_utils/_transform.py (the
    largest item of the live profile); the backend must not."""
    backend = OpenAIBackend(model="m", base_url=rec.base_url, api_key="k")

    async def calls():
        try:
            for _ in range(3):
                await backend.complete(MESSAGES, PARAMS)
        finally:
            await backend.aclose()

    profile = cProfile.Profile()
    profile.enable()
    asyncio.run(calls())
    profile.disable()
    files = {func[0].replace("\\", "/") for func in pstats.Stats(profile).stats}   # type: ignore[attr-defined]
    assert not [f for f in files if f.endswith("openai/_utils/_transform.py")]
    assert [f for f in files if f.endswith("openai/_base_client.py")]   # the SDK client did send it


def test_a_fully_cached_rerun_never_builds_the_sdk_client(rec: RecordingServer, tmp_path: Path) -> None:
    """Creating the SDK client loads the CA bundle (tens of ms): a rerun that sends nothing
    must not pay for it."""
    sentences = read_conll(sample_path())[:2]
    rec.responder = oracle_responder(sentences, ["PER", "ORG", "LOC", "DATE"])
    settings = RunSettings(model="m", base_url=rec.base_url, method="direct", cache_dir=str(tmp_path / "c"),
                           progress=False)
    first_backend = OpenAIBackend(model="m", base_url=rec.base_url)
    asyncio.run(run_async(settings, sentences, backend=first_backend))
    assert first_backend._sdk is not None   # it did send
    backend = OpenAIBackend(model="m", base_url=rec.base_url)
    again = asyncio.run(run_async(settings, sentences, backend=backend))
    assert again.metrics["usage"]["calls"] == 0 and again.metrics["f1"] == 1.0
    assert backend._sdk is None
