"""Framework overhead: the pipeline's request rate vs the raw `openai.AsyncOpenAI` client.

Against the loopback OpenAI-compatible server (in its own process, a fixed latency per reply):

1. in process: a transfusion run of N sentences (3 calls each with --combine none) at a given
   concurrency, then the raw async client sending the same requests (the exact prompts the
   pipeline sent) at the same concurrency; --repeat alternating rounds, best of each side. Target: pipeline/raw >= 0.9.
   CPU ms per call of
   each side is printed too: it is what the ratio depends on, and it is steady on a busy machine.
2. in process, the same run fully cached (best of 3): the framework's CPU time per sentence
   (target <= 0.6 ms).
3. whole process (--whole M sentences, 0 to skip): `tf-prompt run` as a subprocess against the
   same server, timed from process start to exit (interpreter, imports, run, outputs), vs a
   raw-SDK client script subprocess sending the same requests; then `tf-prompt run` again,
   fully cached, and `tf-prompt --help` (bare start-up), each best of 3.

On 2 cores the loopback server's own CPU caps both clients' request rate (about 180 req/s
against the 320 the latency allows), so the wall ratio tends to 1 once the client is cheaper
than the server; CPU per call shows the client's own cost.

Every figure line says the commit it was measured on and the machine's load.
TFP_BENCH_VERBOSE=1 also prints each in-process round.

    python benchmarks/throughput.py [--sentences 300] [--latency 0.1] [--concurrency 32]
                                    [--combine none] [--whole 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from tf_prompt.api import run_async
from tf_prompt.data.conll import Sentence, read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.settings import RunSettings
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
REPO = Path(__file__).resolve().parents[1]

#: The raw-SDK client of the whole-process comparison: what a user would write by hand.
RAW_SCRIPT = """
import asyncio, json, sys
import openai

async def main():
    with open(sys.argv[2], encoding="utf-8") as f:
        bodies = json.load(f)
    client = openai.AsyncOpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
    sem = asyncio.Semaphore(int(sys.argv[3]))

    async def one(body):
        async with sem:
            await client.chat.completions.create(**body)

    await asyncio.gather(*(one(b) for b in bodies))
    await client.close()

asyncio.run(main())
"""


def make_sentences(n: int) -> list[Sentence]:
    """n distinct sentences built from the shipped sample (a numbered token keeps them distinct)."""
    base = read_conll(sample_path())
    out = []
    for i in range(n):
        s = base[i % len(base)]
        out.append(Sentence.from_tokens(list(s.tokens) + [f"({i})"], list(s.tags or []) + ["O"], index=i))
    return out


def write_conll_file(path: Path, sentences: list[Sentence]) -> None:
    """`token TAG` lines, a blank line between sentences (what `tf-prompt run --data` reads)."""
    lines = []
    for s in sentences:
        lines += [f"{tok} {tag}" for tok, tag in zip(s.tokens, s.tags or ["O"] * len(s.tokens), strict=True)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def serve(sentences: list[Sentence], latency: float, urls: mp.Queue, stop: mp.Event) -> None:
    """The loopback server in its own process, so its threads do not compete with the client
    for the GIL (as a real server would not)."""
    with LoopbackServer(oracle_responder(sentences, LABELS), latency=latency) as srv:
        urls.put(srv.base_url)
        stop.wait()


async def raw_client(base_url: str, requests: list[dict], concurrency: int) -> tuple[float, float]:
    """Send `requests` with the bare SDK at `concurrency`; return (seconds, CPU seconds), client
    creation included, as the pipeline's figures include creating its client."""
    start, cpu = time.perf_counter(), time.process_time()
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with sem:
            await client.chat.completions.create(**body)

    await asyncio.gather(*(one(b) for b in requests))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return elapsed, cpu


def requests_of(settings: RunSettings, sentences: list[Sentence]) -> list[dict]:
    """The chat requests a clean run sends: the pipeline again, with a recording backend and
    no cache, renders exactly them."""
    from tf_prompt.backends.function import FunctionBackend

    recorded: list[dict] = []
    responder = oracle_responder(sentences, LABELS)
    params = settings.decoding_params()

    def record(messages: list[dict]) -> str:
        recorded.append({"model": settings.model, "messages": messages, **params})
        return responder({"messages": messages})

    dry = settings.model_copy(update={"no_cache": True})
    asyncio.run(run_async(dry, sentences, backend=FunctionBackend(model=settings.model or "bench", fn=record)))
    return recorded


def commit() -> str:
    """`git rev-parse --short HEAD`, marked when the work tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timed(cmd: list[str]) -> float:
    """Wall seconds of a subprocess from its start to its exit (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed


def tf_prompt_command() -> list[str]:
    exe = Path(sys.executable).parent / "tf-prompt"
    return [str(exe)] if exe.exists() else [shutil.which("tf-prompt") or "tf-prompt"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--combine", default="none", help="transfusion combination rule (none: 3 calls a sentence)")
    ap.add_argument("--whole", type=int, default=600, help="sentences of the whole-process comparison (0: skip)")
    ap.add_argument("--repeat", type=int, default=3, help="in-process rounds; the best of each side is shown")
    args = ap.parse_args()
    rev = commit()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"commit {rev}; load average {load:.2f} on {os.cpu_count()} CPUs at start")
    print("reproduce: python benchmarks/throughput.py " + " ".join(sys.argv[1:]))
    sentences = make_sentences(max(args.sentences, args.whole))
    inproc = sentences[: args.sentences]
    work = Path(tempfile.mkdtemp(prefix="tfp-bench-"))
    settings = RunSettings(model="bench", method="transfusion", combine=args.combine, concurrency=args.concurrency,
                           progress=False)
    urls: mp.Queue = mp.Queue()
    stop = mp.Event()
    server = mp.Process(target=serve, args=(sentences, args.latency, urls, stop), daemon=True)
    server.start()
    try:
        settings.base_url = urls.get(timeout=30)
        bodies = requests_of(settings, inproc)
        # Warm-up, untimed: the SDK imports modules and probes the platform on its first request;
        # whichever side ran first would pay for both (start-up is in the whole-process figures).
        asyncio.run(raw_client(settings.base_url, bodies[:1], 1))
        # Alternating rounds, best of --repeat for each side (each round a fresh cache, so the
        # pipeline sends every request): the least disturbed by other processes.
        t_pipe = cpu_pipe = t_raw = cpu_raw = float("inf")
        for r in range(args.repeat):
            settings.cache_dir = str(work / f"cache{r}")
            start, cpu0 = time.perf_counter(), time.process_time()
            summary = asyncio.run(run_async(settings, inproc))
            cpu_pipe_r = time.process_time() - cpu0
            t_pipe, cpu_pipe = min(t_pipe, time.perf_counter() - start), min(cpu_pipe, cpu_pipe_r)
            calls = summary.metrics["usage"]["calls"]
            assert len(bodies) == calls, f"raw client would send {len(bodies)} requests, the pipeline sent {calls}"
            t, c = asyncio.run(raw_client(settings.base_url, bodies, args.concurrency))
            t_raw, cpu_raw = min(t_raw, t), min(cpu_raw, c)
            if os.environ.get("TFP_BENCH_VERBOSE"):
                print(f"  round {r}: pipeline {summary.metrics['usage']['wall_seconds']:.2f} s, raw {t:.2f} s, "
                      f"CPU per call {cpu_pipe_r * 1000 / calls:.2f} / {c * 1000 / len(bodies):.2f} ms", flush=True)
        # fully cached rerun, best of 3 (the least disturbed by other processes): no request
        # reaches the server
        cpu = wall = float("inf")
        for _ in range(3):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            cached = asyncio.run(run_async(settings, inproc))
            cpu, wall = min(cpu, time.process_time() - cpu0), min(wall, time.perf_counter() - wall0)
            assert cached.metrics["usage"]["calls"] == 0, "cached rerun sent requests"
        whole = whole_process(args, settings, sentences[: args.whole], work) if args.whole else None
    finally:
        stop.set()
        server.join(timeout=10)
    rate_pipe, rate_raw = calls / t_pipe, len(bodies) / t_raw
    tag = f"[{rev}]"
    print(f"in process: transfusion (--combine {args.combine}), {args.sentences} sentences, {calls} calls, "
          f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, F1 {summary.metrics['f1']:.4f}, "
          f"best of {args.repeat} alternating rounds")
    print(f"pipeline : {t_pipe:7.2f} s  {rate_pipe:7.1f} req/s  {cpu_pipe / calls * 1000:5.2f} ms CPU per call  {tag}")
    print(f"raw SDK  : {t_raw:7.2f} s  {rate_raw:7.1f} req/s  "
          f"{cpu_raw / len(bodies) * 1000:5.2f} ms CPU per call  {tag}")
    print(f"ratio pipeline/raw: {rate_pipe / rate_raw:.3f} (target >= 0.9); CPU per call pipeline/raw: "
          f"{(cpu_pipe / calls) / (cpu_raw / len(bodies)):.3f}  {tag}")
    print(f"cached rerun (best of 3): {wall:.2f} s wall, {args.sentences / wall:.0f} sentences/s, "
          f"{cpu / args.sentences * 1000:.2f} ms CPU per sentence (target <= 0.6; "
          f"{cached.metrics['usage']['cache_hits']} cache hits, {cached.metrics['usage']['calls']} calls)  {tag}")
    if whole:
        print(f"whole process, from process start: {args.whole} sentences, {whole['calls']} calls  {tag}")
        print(f"  tf-prompt run        : {whole['tf']:6.2f} s  {whole['calls'] / whole['tf']:6.1f} req/s  "
              f"(F1 {whole['f1']:.4f})")
        print(f"  raw SDK script       : {whole['raw']:6.2f} s  {whole['calls'] / whole['raw']:6.1f} req/s")
        print(f"  ratio tf-prompt/raw  : {whole['raw'] / whole['tf']:.3f}")
        print(f"  tf-prompt run, cached: {whole['cached']:6.2f} s  (best of 3; start-up alone, "
              f"`tf-prompt --help`, best of 3: {whole['startup']:.2f} s; 0 calls)")
        print(f"  command: {whole['command']}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "")
    return 0


def whole_process(args: argparse.Namespace, settings: RunSettings, sentences: list[Sentence],
                  work: Path) -> dict:
    """`tf-prompt run` and a raw-SDK script as subprocesses, each timed from process start."""
    data = work / "whole.conll"
    write_conll_file(data, sentences)
    cmd = tf_prompt_command() + [
        "run", "--model", "bench", "--base-url", str(settings.base_url), "--data", str(data),
        "--method", "transfusion", "--combine", args.combine, "--concurrency", str(args.concurrency),
        "--cache-dir", str(work / "whole-cache"), "--out", str(work / "whole-out"), "--no-progress"]
    t_tf = timed(cmd)
    metrics = json.loads((work / "whole-out" / "metrics.json").read_text(encoding="utf-8"))
    calls = metrics["usage"]["calls"]
    bodies = requests_of(settings.model_copy(update={"data": str(data)}), sentences)
    assert len(bodies) == calls, f"raw client would send {len(bodies)} requests, tf-prompt sent {calls}"
    (work / "bodies.json").write_text(json.dumps(bodies, ensure_ascii=False), encoding="utf-8")
    t_raw = timed([sys.executable, "-c", RAW_SCRIPT, str(settings.base_url), str(work / "bodies.json"),
                   str(args.concurrency)])
    t_cached = min(timed(cmd) for _ in range(3))
    cached = json.loads((work / "whole-out" / "metrics.json").read_text(encoding="utf-8"))
    assert cached["usage"]["calls"] == 0, "cached whole-process rerun sent requests"
    t_start = min(timed(tf_prompt_command() + ["--help"]) for _ in range(3))
    shown = " ".join(cmd).replace(str(work), "$TMP").replace(str(settings.base_url), "$URL")
    return {"tf": t_tf, "raw": t_raw, "cached": t_cached, "startup": t_start, "calls": calls,
            "f1": metrics["f1"], "command": shown}


if __name__ == "__main__":
    sys.exit(main())
