"""Framework overhead: the pipeline's request rate vs the raw `openai.AsyncOpenAI` client.

A transfusion run of N sentences (3 calls each) against the loopback OpenAI-compatible server with
a fixed latency per reply, at a given concurrency, is compared in the same process with the raw
async client sending the same requests (the exact prompts the pipeline sent) at the same
concurrency. Target: the pipeline reaches >= 0.9 of the raw client's request rate. Then the same run
fully cached: sentences per second and the framework's CPU time per sentence (target < 1 ms).

    python benchmarks/throughput.py [--sentences 300] [--latency 0.1] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time

import openai

from tf_prompt.api import run_async
from tf_prompt.data import Sentence, read_conll, sample_path
from tf_prompt.settings import RunSettings
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


def make_sentences(n: int) -> list[Sentence]:
    """n distinct sentences built from the shipped sample (a numbered token keeps them distinct)."""
    base = read_conll(sample_path())
    out = []
    for i in range(n):
        s = base[i % len(base)]
        out.append(Sentence.from_tokens(list(s.tokens) + [f"({i})"], list(s.tags or []) + ["O"], index=i))
    return out


def serve(sentences: list[Sentence], latency: float, urls: "mp.Queue", stop: "mp.Event") -> None:
    """The loopback server in its own process, so its threads do not compete with the client
    for the GIL (as a real server would not)."""
    with LoopbackServer(oracle_responder(sentences, LABELS), latency=latency) as srv:
        urls.put(srv.base_url)
        stop.wait()


async def raw_client(base_url: str, requests: list[dict], concurrency: int) -> float:
    """Send `requests` with the bare SDK at `concurrency`; return seconds."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with sem:
            await client.chat.completions.create(**body)

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in requests))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def requests_of(settings: RunSettings, sentences: list[Sentence]) -> list[dict]:
    """The chat requests a clean transfusion run sends, read back from its cache entries' prompts:
    re-running the pipeline in dry-run mode with a recording backend gives exactly them."""
    from tf_prompt.backends.function import FunctionBackend

    recorded: list[dict] = []
    responder = oracle_responder(sentences, LABELS)

    def record(messages: list[dict]) -> str:
        recorded.append({"model": settings.model, "messages": messages, "temperature": 0.0, "max_tokens": 1024})
        return responder({"messages": messages})

    dry = settings.model_copy(update={"no_cache": True})
    asyncio.run(run_async(dry, sentences, backend=FunctionBackend(model=settings.model or "bench", fn=record)))
    return recorded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    print("command: python " + " ".join(sys.argv))
    sentences = make_sentences(args.sentences)
    cache_dir = tempfile.mkdtemp(prefix="tfp-bench-")
    settings = RunSettings(model="bench", method="transfusion", combine="none", concurrency=args.concurrency,
                           cache_dir=cache_dir, progress=False)
    urls: mp.Queue = mp.Queue()
    stop = mp.Event()
    server = mp.Process(target=serve, args=(sentences, args.latency, urls, stop), daemon=True)
    server.start()
    try:
        settings.base_url = urls.get(timeout=30)
        start = time.perf_counter()
        summary = asyncio.run(run_async(settings, sentences))
        t_pipe = time.perf_counter() - start
        calls = summary.metrics["usage"]["calls"]
        # the same requests the pipeline sent, rebuilt from its trace (messages are in the cache key
        # but not the trace; re-render them through the same templates)
        bodies = requests_of(settings, sentences)
        t_raw = asyncio.run(raw_client(settings.base_url, bodies, args.concurrency))
        # fully cached rerun: no request reaches the server
        cpu0, wall0 = time.process_time(), time.perf_counter()
        cached = asyncio.run(run_async(settings, sentences))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert cached.metrics["usage"]["calls"] == 0, "cached rerun sent requests"
    finally:
        stop.set()
        server.join(timeout=10)
    rate_pipe, rate_raw = calls / t_pipe, len(bodies) / t_raw
    print(f"transfusion, {args.sentences} sentences, {calls} calls, latency {args.latency * 1000:.0f} ms, "
          f"concurrency {args.concurrency}, F1 {summary.metrics['f1']:.4f}")
    print(f"pipeline : {t_pipe:7.2f} s  {rate_pipe:7.1f} req/s")
    print(f"raw SDK  : {t_raw:7.2f} s  {rate_raw:7.1f} req/s")
    print(f"ratio pipeline/raw: {rate_pipe / rate_raw:.3f} (target >= 0.9)")
    print(f"cached rerun: {wall:.2f} s wall, {args.sentences / wall:.0f} sentences/s, "
          f"{cpu / args.sentences * 1000:.2f} ms CPU per sentence (whole process, 3 cached calls each), "
          f"cache hits {cached.metrics['usage']['cache_hits']}, calls {cached.metrics['usage']['calls']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
