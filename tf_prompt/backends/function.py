"""A backend that calls a Python function: rule-based baselines, oracles and tests in process.

It lets a script plug any `(messages) -> str` callable into the same pipeline, cache and scoring
as a real model, without an HTTP server.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tf_prompt.backends.base import Backend, Completion


@dataclass
class FunctionBackend(Backend):
    """Wraps `fn(messages) -> str` (sync or async)."""

    fn: Callable[[list[dict[str, str]]], Any] | None = None
    kind: str = field(default="function", init=False)

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        assert self.fn is not None, "FunctionBackend needs fn"
        out = self.fn(messages)
        if inspect.isawaitable(out):
            out = await out
        await asyncio.sleep(0)
        return Completion(text=str(out), model=self.model)
