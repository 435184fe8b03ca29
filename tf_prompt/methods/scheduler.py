"""Runs a method over many sentences: at most `concurrency` at once, results in input order.

With `--batch-sentences K`, sentences go in chunks of K whose model calls are grouped into one
prompt per step (prompting/batching.py); the chunk's batcher is made here and passed to each
of its sentences' runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from tf_prompt.data.conll import Sentence
from tf_prompt.llm.client import BudgetExceeded
from tf_prompt.methods.pipeline import Pipeline
from tf_prompt.prompting.batching import ChunkBatcher
from tf_prompt.types import Result


async def run_pipeline(pipeline: Pipeline, sentences: Sequence[Sentence], *, concurrency: int = 8,
                       on_result: Callable[[Result], None] | None = None, batch_size: int = 1) -> list[Result]:
    """Run every sentence, at most `concurrency` at once; results come back in input order.

    With `batch_size` K > 1, sentences go in chunks of K consecutive sentences whose calls are
    sent together (batching.py); `concurrency` then counts chunks in flight.
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))
    results: list[Result | None] = [None] * len(sentences)
    budget_stop: list[BudgetExceeded] = []

    async def one(i: int, sentence: Sentence, batcher: ChunkBatcher | None = None) -> None:
        try:
            result = await pipeline.run(sentence, batcher=batcher)
        except BudgetExceeded as e:
            # Not a crash: calls already in flight must finish and be cached (they are
            # paid for), so the other tasks are left to drain instead of being cancelled.
            budget_stop.append(e)
            return
        finally:
            if batcher is not None:
                batcher.leave()
        results[i] = result
        if on_result is not None:
            on_result(result)

    async def single(i: int, sentence: Sentence) -> None:
        async with semaphore:
            await one(i, sentence)

    async def chunk(start: int, members: Sequence[Sentence]) -> None:
        async with semaphore:
            batcher = pipeline.batcher(len(members))   # handed to each of the chunk's sentence runs
            await asyncio.gather(*(one(start + j, s, batcher) for j, s in enumerate(members)))

    if batch_size > 1:
        tasks = [asyncio.create_task(chunk(k, sentences[k:k + batch_size]))
                 for k in range(0, len(sentences), batch_size)]
    else:
        tasks = [asyncio.create_task(single(i, s)) for i, s in enumerate(sentences)]
    try:
        await asyncio.gather(*tasks)
    finally:
        # On a fatal error or Ctrl-C, stop the calls still in flight and wait until they have
        # stopped, so nothing is left running (and no reply arrives after outputs are written).
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if budget_stop:
        raise budget_stop[0]
    return [r for r in results if r is not None]
