"""benchmarks/startup.py (issue 12's start-up targets) in a reduced mode: it runs offline against
the loopback server, prints each figure with its target, PASS/FAIL and the command, and its cached
rerun is served entirely from the reply cache (zero calls, one cache hit per call of the first run).
The timings themselves are not asserted here: the machine may be busy."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "startup.py"


def test_startup_benchmark_reduced_mode_reports_targets_and_a_call_free_rerun() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--sentences", "24", "--runs", "2"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    out = done.stdout
    # 0: both targets met, 1: one missed (possible on a loaded machine); 2 is a failed measurement
    assert done.returncode in (0, 1), done.stderr
    assert re.search(r"^commit \S+; load average [\d.]+ on \d+ CPUs at start$", out, re.M), out
    assert "reproduce: python benchmarks/startup.py --sentences 24 --runs 2\n" in out
    helped = re.search(r"^tf-prompt --help +: +([\d.]+) s  median of 2 .*target < 0.5 s  (PASS|FAIL)  \[\S+\]$",
                       out, re.M)
    assert helped, out
    rerun = re.search(r"^cached transfusion rerun: +([\d.]+) s  median of 2 .*; 24 sentences, (\d+) cache hits, "
                      r"(\d+) calls; target < 3.0 s  (PASS|FAIL)  \[\S+\]$", out, re.M)
    assert rerun, out
    first = re.search(r"^  first run, uncached: [\d.]+ s, (\d+) calls to the loopback server$", out, re.M)
    assert first, out
    # transfusion with its default combination: translate, annotate, fuse and direct per sentence
    assert int(first.group(1)) == 24 * 4
    assert int(rerun.group(3)) == 0 and int(rerun.group(2)) == int(first.group(1))
    # each verdict agrees with its figure
    assert (helped.group(2) == "PASS") == (float(helped.group(1)) < 0.5)
    assert (rerun.group(4) == "PASS") == (float(rerun.group(1)) < 3.0)
    assert done.returncode == (0 if helped.group(2) == rerun.group(4) == "PASS" else 1)
    commands = re.findall(r"^  command: (.+)$", out, re.M)
    assert commands[0].endswith("tf-prompt --help")
    assert re.search(r"tf-prompt run --model bench --base-url \$URL --data \$TMP/data.conll --method transfusion "
                     r"--cache-dir \$TMP/cache --out \$TMP/out --no-progress$", commands[1])
