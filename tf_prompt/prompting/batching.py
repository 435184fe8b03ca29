"""Several sentences in one prompt (`--batch-sentences K`): the instructions are paid once per K.

The sentences are cut into chunks of K consecutive sentences. Within a chunk the sentences run
their method as usual, but every model call goes to the chunk's batcher, which waits until each
sentence of the chunk is waiting for a call and then sends the waiting calls of one step as one
numbered prompt (the step's batch template, e.g. `prompts/batch_direct.v1.jinja`). The grouping
therefore depends only on the data and the replies, never on timing, so a rerun builds the same
prompts and hits the cache.

The numbered answer is split back per sentence. An item the reply lost, merged or garbled is asked
again on its own with the normal single-sentence template, and only that item.

Which steps batch, with which templates, and which variables are each sentence's own is
declared by the methods (methods/base.py) and arrives with each call (`Call`); the batcher is
made per chunk by the scheduler and passed to the chunk's sentence runs. This module therefore
imports nothing of the methods, and there is no module-level state.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tf_prompt.parsing import parse_json_value
from tf_prompt.prompting.constraints import numbered_constraint

if TYPE_CHECKING:
    from tf_prompt.llm.client import ModelClient
    from tf_prompt.prompting.templates import TemplateSet
    from tf_prompt.types import Trace


@dataclass
class Call:
    """One sentence's call of one step, as the method declared it (methods/base.py's Step and
    Prompting), so that this module needs no knowledge of methods: which step, with which
    one-sentence and numbered templates, which variables are the sentence's own, and whether the
    reply is plain text (a translation) or JSON."""

    step: str
    trace: Trace
    standin: str
    template: str
    variables: dict[str, Any]
    batch_template: str | None = None
    item_vars: Sequence[str] = ("text",)
    text_reply: bool = False
    reply: str | None = None          # the step's reply format (methods/base.py ReplyFormat)
    constrain: str = "none"           # --constrain (prompting/constraints.py)
    labels: Sequence[str] = ()        # the label names an entity's type may be
    future: asyncio.Future[str] | None = None


#: The one-sentence call: Context.ask_single(step, trace, standin, template_step=..., **variables).
Single = Callable[..., Awaitable[str]]


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
        numbers = [i for i in ids if isinstance(i, int)]
        if len(numbers) == len(ids):
            for i, part in zip(numbers, value, strict=True):
                if 1 <= i <= n and i not in out:
                    out[i] = {k: v for k, v in part.items() if k not in ("id", "n", "index")}
        elif len(value) == n:
            out = {i + 1: part for i, part in enumerate(value)}
    return out


def item_reply(text_reply: bool, part: Any) -> str | None:
    """One item's answer as the text a single-sentence reply would have been; None if unusable.
    `text_reply`: the step answers with plain text (a translation), not a JSON object."""
    if text_reply:
        if isinstance(part, dict):
            part = part.get("translation") or part.get("english")
        return part.strip() if isinstance(part, str) and part.strip() else None
    if isinstance(part, list):
        part = {"entities": part}
    if not isinstance(part, dict):
        return None
    return json.dumps(part, ensure_ascii=False)


def batched_standin(text_reply: bool, standins: list[str]) -> str:
    """The dry-run stand-in of a numbered reply, from the items' own stand-ins."""
    parts: dict[str, Any] = {}
    for i, s in enumerate(standins, start=1):
        try:
            parts[str(i)] = json.loads(s) if not text_reply else s
        except json.JSONDecodeError:
            parts[str(i)] = s
    return json.dumps(parts, ensure_ascii=False)


class ChunkBatcher:
    """Collects the calls of one chunk's sentences and sends each step's calls as one prompt.

    Made per chunk by the scheduler (methods/scheduler.py) and handed to each of the chunk's
    sentence runs, which give it their calls (`ask`) and say when they are done (`leave`).
    `order` is the method's steps in the order their calls become ready: when several steps are
    waiting, the earliest is sent first.
    """

    def __init__(self, templates: TemplateSet, client: ModelClient, members: int, single: Single,
                 order: Sequence[str] = ()):
        self.templates = templates
        self.client = client
        self.active = members
        self.single = single              # Context.ask_single: the normal one-sentence call
        self.order = tuple(order)
        self.waiting: list[Call] = []

    async def ask(self, call: Call) -> str:
        """The reply to `call`, once the chunk's calls of its step are sent together."""
        call.future = asyncio.get_running_loop().create_future()
        self.waiting.append(call)
        self._maybe_flush()
        return await call.future

    def leave(self) -> None:
        """A sentence of the chunk is done (or failed): stop waiting for it."""
        self.active -= 1
        self._maybe_flush()

    def _rank(self, step: str) -> int:
        return self.order.index(step) if step in self.order else len(self.order)

    def _maybe_flush(self) -> None:
        # A sentence may wait on two calls at once (transfusion asks direct alongside the pivot):
        # flush when every active sentence waits on at least one.
        if not self.waiting or len({id(it.trace) for it in self.waiting}) < self.active:
            return
        step = min((it.step for it in self.waiting), key=self._rank)
        items = sorted((it for it in self.waiting if it.step == step), key=lambda it: it.trace.index)
        self.waiting = [it for it in self.waiting if it.step != step]
        asyncio.get_running_loop().create_task(self._flush(step, items))

    async def _flush(self, step: str, items: list[Call]) -> None:
        first = items[0]
        try:
            if len(items) == 1 or first.batch_template is None:
                await asyncio.gather(*(self._single(it) for it in items))
                return
            per_item = set(first.item_vars)
            shared = {k: v for k, v in first.variables.items() if k not in per_item}
            numbered = [{"n": i, **{k: v for k, v in it.variables.items() if k in per_item}}
                        for i, it in enumerate(items, start=1)]
            prompt = self.templates.render(step, template_step=first.batch_template, items=numbered, **shared)
            standin = batched_standin(first.text_reply, [it.standin for it in items])
            # each item's schema from its own text: the spans of one sentence are not another's
            limit = numbered_constraint(first.constrain, step, first.reply or "", first.labels,
                                        [it.variables.get("text") for it in items])
            for it, note in zip(items, limit.notes, strict=False):
                it.trace.constraints[step] = note
            try:
                completion = await self.client.ask(prompt, standin=standin, params=limit.params or None)
            except BaseException as e:  # every sentence of the batch fails the same way
                for it in items:
                    if it.future is not None and not it.future.done():
                        it.future.set_exception(e)
                return
            parts = split_numbered(completion.text, len(items))
            retry: list[Call] = []
            for i, it in enumerate(items, start=1):
                text = item_reply(it.text_reply, parts.get(i)) if i in parts else None
                it.trace.templates[step] = prompt.identity
                it.trace.batches[step] = {"size": len(items), "item": i, "fallback": text is None}
                if text is None:
                    retry.append(it)
                else:
                    it.trace.replies[step] = text
                    assert it.future is not None
                    it.future.set_result(text)
            await asyncio.gather(*(self._single(it) for it in retry))
        except BaseException as e:  # pragma: no cover - defensive: never leave a sentence hanging
            for it in items:
                if it.future is not None and not it.future.done():
                    it.future.set_exception(e)
            raise

    async def _single(self, it: Call) -> None:
        assert it.future is not None
        try:
            text = await self.single(it.step, it.trace, it.standin, template_step=it.template, reply=it.reply,
                                     **it.variables)
        except BaseException as e:
            it.future.set_exception(e)
        else:
            it.future.set_result(text)
