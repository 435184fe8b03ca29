"""Several sentences in one prompt (`--batch-sentences K`): the instructions are paid once per K.

The sentences are cut into chunks of K consecutive sentences. Within a chunk the sentences run
their method as usual, but every model call goes to the chunk's batcher, which waits until each
sentence of the chunk is waiting for a call and then sends the waiting calls of one step as one
numbered prompt (`prompts/batch_STEP.vN.jinja`). The grouping therefore depends only on the data
and the replies, never on timing, so a rerun builds the same prompts and hits the cache.

The numbered answer is split back per sentence. An item the reply lost, merged or garbled is asked
again on its own with the normal single-sentence template, and only that item.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from tf_prompt.parsing import parse_json_value

if TYPE_CHECKING:
    from tf_prompt.methods.pipeline import Context, Trace

#: Steps that can be batched, in the order a waiting chunk flushes them (earlier pipeline steps first).
BATCH_STEPS = ("translate", "annotate", "direct", "fuse", "tf1")
#: Variables that differ per sentence; everything else (language, labels, examples) is shared.
ITEM_VARS = ("text", "translation", "english_entities")

current: contextvars.ContextVar["ChunkBatcher | None"] = contextvars.ContextVar("tf_prompt_batcher",
                                                                                default=None)


@dataclass
class _Item:
    step: str
    trace: "Trace"
    standin: str
    variables: dict[str, Any]
    template_step: str | None
    future: "asyncio.Future[str]"


def split_numbered(reply: str, n: int) -> dict[int, Any]:
    """The per-item answers of a numbered reply: `{"1": ..., "2": ...}` (keys may read "item 2",
    "sentence_2"), or a list of n answers, or a list of objects with "id"/"n"/"index"."""
    value = parse_json_value(reply)
    out: dict[int, Any] = {}
    if isinstance(value, dict):
        for key, part in value.items():
            m = re.fullmatch(r"\D*(\d+)\D*", str(key))
            if m and 1 <= int(m.group(1)) <= n and int(m.group(1)) not in out:
                out[int(m.group(1))] = part
    elif isinstance(value, list):
        ids = [p.get("id", p.get("n", p.get("index"))) if isinstance(p, dict) else None for p in value]
        if all(isinstance(i, int) for i in ids):
            for i, part in zip(ids, value):
                if 1 <= i <= n and i not in out:
                    out[i] = {k: v for k, v in part.items() if k not in ("id", "n", "index")}
        elif len(value) == n:
            out = {i + 1: part for i, part in enumerate(value)}
    return out


def item_reply(step: str, part: Any) -> str | None:
    """One item's answer as the text a single-sentence reply would have been; None if unusable."""
    if step == "translate":
        if isinstance(part, dict):
            part = part.get("translation") or part.get("english")
        return part.strip() if isinstance(part, str) and part.strip() else None
    if isinstance(part, list):
        part = {"entities": part}
    if not isinstance(part, dict):
        return None
    return json.dumps(part, ensure_ascii=False)


def batched_standin(step: str, standins: list[str]) -> str:
    """The dry-run stand-in of a numbered reply, from the items' own stand-ins."""
    parts: dict[str, Any] = {}
    for i, s in enumerate(standins, start=1):
        try:
            parts[str(i)] = json.loads(s) if step != "translate" else s
        except json.JSONDecodeError:
            parts[str(i)] = s
    return json.dumps(parts, ensure_ascii=False)


class ChunkBatcher:
    """Collects the calls of one chunk's sentences and sends each step's calls as one prompt."""

    def __init__(self, ctx: "Context", members: int,
                 single: Callable[..., Awaitable[str]]):
        self.ctx = ctx
        self.active = members
        self.single = single              # Context.ask_single: the normal one-sentence call
        self.waiting: list[_Item] = []

    async def ask(self, step: str, trace: "Trace", standin: str, template_step: str | None,
                  variables: dict[str, Any]) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Item(step, trace, standin, variables, template_step, future))
        self._maybe_flush()
        return await future

    def leave(self) -> None:
        """A sentence of the chunk is done (or failed): stop waiting for it."""
        self.active -= 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        # A sentence may wait on two calls at once (transfusion asks direct alongside the pivot):
        # flush when every active sentence waits on at least one.
        if not self.waiting or len({id(it.trace) for it in self.waiting}) < self.active:
            return
        step = min((it.step for it in self.waiting), key=lambda s: BATCH_STEPS.index(s)
                   if s in BATCH_STEPS else len(BATCH_STEPS))
        items = sorted((it for it in self.waiting if it.step == step), key=lambda it: it.trace.index)
        self.waiting = [it for it in self.waiting if it.step != step]
        asyncio.get_running_loop().create_task(self._flush(step, items))

    async def _flush(self, step: str, items: list[_Item]) -> None:
        try:
            if len(items) == 1 or step not in BATCH_STEPS:
                await asyncio.gather(*(self._single(it) for it in items))
                return
            shared = {k: v for k, v in items[0].variables.items() if k not in ITEM_VARS}
            numbered = [{"n": i, **{k: v for k, v in it.variables.items() if k in ITEM_VARS}}
                        for i, it in enumerate(items, start=1)]
            prompt = self.ctx.templates.render(step, template_step=f"batch_{step}", items=numbered, **shared)
            standin = batched_standin(step, [it.standin for it in items])
            try:
                completion = await self.ctx.client.ask(prompt, standin=standin)
            except BaseException as e:  # every sentence of the batch fails the same way
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(e)
                return
            parts = split_numbered(completion.text, len(items))
            retry: list[_Item] = []
            for i, it in enumerate(items, start=1):
                text = item_reply(step, parts.get(i)) if i in parts else None
                it.trace.templates[step] = prompt.identity
                it.trace.batches[step] = {"size": len(items), "item": i, "fallback": text is None}
                if text is None:
                    retry.append(it)
                else:
                    it.trace.replies[step] = text
                    it.future.set_result(text)
            await asyncio.gather(*(self._single(it) for it in retry))
        except BaseException as e:  # pragma: no cover - defensive: never leave a sentence hanging
            for it in items:
                if not it.future.done():
                    it.future.set_exception(e)
            raise

    async def _single(self, it: _Item) -> None:
        try:
            text = await self.single(it.step, it.trace, it.standin, template_step=it.template_step,
                                     **it.variables)
        except BaseException as e:
            it.future.set_exception(e)
        else:
            it.future.set_result(text)
