"""Start-up: `tf-prompt --help` and a fully cached transfusion rerun, each as a whole process.

Issue 12's targets, measured on this machine from process start to exit (interpreter, imports,
run, outputs):

1. `tf-prompt --help`: median of --runs; target under 0.5 s.
2. a fully cached --sentences (600) transfusion rerun, `tf-prompt run` with the default
   combination rule (4 calls a sentence): a first, uncached run against the loopback
   OpenAI-compatible server (127.0.0.1, an oracle answering from the gold tags) fills the reply
   cache; then --runs reruns, median; target under 3 s. Every rerun must make zero calls: its
   metrics.json must say 0 calls and as many cache hits as the first run made calls, and the
   server must have served nothing more. Otherwise the script stops (exit 2).

The sentences are throughput.py's (the shipped sample, numbered to keep them distinct). No
network, no API key. Prints each figure with its target, PASS or FAIL, the commit and the
machine's load, and the exact command; exits 1 if a target is missed.

    python benchmarks/startup.py [--sentences 600] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import LABELS, commit, make_sentences, tf_prompt_command, write_conll_file

from tf_prompt.testing import LoopbackServer, oracle_responder

HELP_TARGET = 0.5      # seconds, `tf-prompt --help`
RERUN_TARGET = 3.0     # seconds, the fully cached 600-sentence transfusion rerun


def verdict(seconds: float, target: float) -> str:
    return "PASS" if seconds < target else "FAIL"


class Failed(Exception):
    """A measurement that cannot be trusted (a command failed, a rerun made calls): exit 2."""


def timed(cmd: list[str]) -> float:
    """Wall seconds of a subprocess from its start to its exit; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise Failed(f"exit {done.returncode}: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed


def usage_of(out: Path) -> dict:
    """The `usage` block of a run's metrics.json (calls, cache_hits, ...)."""
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["usage"]


def main() -> int:
    try:
        return measure()
    except Failed as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def measure() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=600, help="sentences of the cached rerun")
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each; the median is shown")
    args = ap.parse_args()
    if args.sentences < 1 or args.runs < 1:
        ap.error("--sentences and --runs must be >= 1")
    rev = commit()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"commit {rev}; load average {load:.2f} on {os.cpu_count()} CPUs at start")
    print(" ".join(["reproduce: python benchmarks/startup.py", *sys.argv[1:]]), flush=True)
    tf = tf_prompt_command()

    help_times = [timed(tf + ["--help"]) for _ in range(args.runs)]

    with tempfile.TemporaryDirectory(prefix="tfp-startup-") as tmp:
        return rerun(args, tf, help_times, rev, Path(tmp))


def rerun(args: argparse.Namespace, tf: list[str], help_times: list[float], rev: str, work: Path) -> int:
    """Fill the reply cache with a first run, time the cached reruns, print both figures."""
    sentences = make_sentences(args.sentences)
    data, out = work / "data.conll", work / "out"
    write_conll_file(data, sentences)
    with LoopbackServer(oracle_responder(sentences, LABELS)) as srv:
        cmd = tf + ["run", "--model", "bench", "--base-url", srv.base_url, "--data", str(data),
                    "--method", "transfusion", "--cache-dir", str(work / "cache"), "--out", str(out),
                    "--no-progress"]
        first_wall = timed(cmd)
        first = usage_of(out)
        served = srv.served
        if first["calls"] == 0 or first["calls"] != served:
            raise Failed(f"the first run reports {first['calls']} calls, the server served {served}")
        rerun_times, rerun_calls = [], []
        for _ in range(args.runs):
            rerun_times.append(timed(cmd))
            usage = usage_of(out)
            rerun_calls.append(usage["calls"])
            if usage["calls"] != 0 or usage["cache_hits"] != first["calls"] or srv.served != served:
                raise Failed(f"a cached rerun made {usage['calls']} calls ({usage['cache_hits']} cache hits of "
                            f"{first['calls']}; the server served {srv.served - served} more)")
        shown = " ".join(cmd).replace(str(work), "$TMP").replace(srv.base_url, "$URL")

    t_help, t_rerun = statistics.median(help_times), statistics.median(rerun_times)
    tag = f"[{rev}]"
    print(f"tf-prompt --help        : {t_help:5.2f} s  median of {args.runs} (min {min(help_times):.2f}, "
          f"max {max(help_times):.2f}); target < {HELP_TARGET} s  {verdict(t_help, HELP_TARGET)}  {tag}")
    print(f"  command: {' '.join(tf)} --help")
    print(f"cached transfusion rerun: {t_rerun:5.2f} s  median of {args.runs} (min {min(rerun_times):.2f}, "
          f"max {max(rerun_times):.2f}); {args.sentences} sentences, {usage['cache_hits']} cache hits, "
          f"{max(rerun_calls)} calls; "
          f"target < {RERUN_TARGET} s  {verdict(t_rerun, RERUN_TARGET)}  {tag}")
    print(f"  first run, uncached: {first_wall:.2f} s, {first['calls']} calls to the loopback server")
    print(f"  command: {shown}")
    if hasattr(os, "getloadavg"):
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0 if t_help < HELP_TARGET and t_rerun < RERUN_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
