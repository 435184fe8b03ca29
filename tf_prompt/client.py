"""The model client: one place where every model call goes through, and where it is counted.

The pipeline asks `client.ask(prompt)`; the client sends the prompt's messages to the backend with
the run's decoding parameters and accounts calls and tokens. Caching, retries and budget caps
belong here too, so that no step can bypass them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .backends.base import Backend, Completion
from .templates import Prompt


@dataclass
class Usage:
    """Counters of one run, reported in metrics.json under `usage`."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    wall_seconds: float = 0.0
    by_step: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, step: str, completion: Completion) -> None:
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens or 0
        self.completion_tokens += completion.completion_tokens or 0
        s = self.by_step.setdefault(step, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        s["calls"] += 1
        s["prompt_tokens"] += completion.prompt_tokens or 0
        s["completion_tokens"] += completion.completion_tokens or 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_usd"] = round(self.cost_usd, 6)
        d["wall_seconds"] = round(self.wall_seconds, 3)
        return d


class ModelClient:
    """Sends prompts to one backend with fixed decoding parameters and counts what it spends."""

    def __init__(self, backend: Backend, params: dict[str, Any] | None = None, usage: Usage | None = None):
        self.backend = backend
        self.params = dict(params or {})
        self.usage = usage if usage is not None else Usage()

    async def ask(self, prompt: Prompt) -> Completion:
        """The model's reply to `prompt`; raises BackendError if the call fails."""
        completion = await self.backend.complete(prompt.messages, self.params)
        self.usage.add(prompt.step, completion)
        return completion

    async def aclose(self) -> None:
        await self.backend.aclose()
