"""Error bodies of any shape become one BackendError line, never an AttributeError.

An OpenAI-compatible server is not always OpenAI: proxies and local servers answer errors as
{"error": "text"}, {"error": {"error": "text"}} or plain text. The openai SDK hands the body (or
its "error" member) to the backend, which must read it without assuming the nesting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tf_prompt.backends.base import BackendError
from tf_prompt.backends.openai_compat import OpenAIBackend
from tf_prompt.testing import Fault

MESSAGES = [{"role": "user", "content": "Sentence: Audu ya je Kano."}]


@pytest.mark.parametrize("body", [
    {"error": {"error": "model is loading"}},          # the SDK passes {"error": "model is loading"} on
    {"error": "model is loading"},
    {"error": ["model", "is", "loading"]},
    {"message": "model is loading", "error": 3},
])
def test_an_error_body_of_any_shape_is_one_backend_error(server, body: dict[str, Any]) -> None:
    server.fault = lambda request, attempt: Fault(400, body)
    backend = OpenAIBackend(model="m", base_url=server.base_url, api_key="k", timeout=10.0)

    async def call() -> None:
        try:
            await backend.complete(MESSAGES, {"temperature": 0.0})
        finally:
            await backend.aclose()

    with pytest.raises(BackendError) as caught:
        asyncio.run(call())
    assert caught.value.status == 400 and not caught.value.retryable
    assert "\n" not in str(caught.value)
