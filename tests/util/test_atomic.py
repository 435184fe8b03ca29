"""Outputs are replaced whole or not at all (Trust issue, item 4).

A failure or a kill while metrics.json, predictions.conll, trace.jsonl, report.html or the sweep
tables are written leaves the old file or the new one, never half of one, and one output that
cannot be written does not cost the others.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from tf_prompt.runs.outputs import write_outputs
from tf_prompt.runs.rundir import OutputError
from tf_prompt.util import atomic


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    out.mkdir()
    old = {name: f"old {name}\n" for name in ("metrics.json", "predictions.conll", "trace.jsonl")}
    for name, text in old.items():
        (out / name).write_text(text)

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OutputError, match=r"No space left on device") as info:
        write_outputs(out, [], {"f1": 0.5, "n_sentences": 0})
    assert "\n" not in str(info.value)
    assert {name: (out / name).read_text() for name in old} == old
    assert sorted(p.name for p in out.iterdir()) == sorted(old)   # temporaries removed


def test_one_unwritable_output_does_not_cost_the_others(tmp_path) -> None:
    out = tmp_path / "run"
    (out / "predictions.conll").mkdir(parents=True)   # cannot be replaced by a file
    with pytest.raises(OutputError, match=r"predictions\.conll"):
        write_outputs(out, [], {"f1": 0.5, "n_sentences": 0})
    assert json.loads((out / "metrics.json").read_text()) == {"f1": 0.5, "n_sentences": 0}
    assert (out / "trace.jsonl").read_text() == ""


def test_replacing_keeps_the_suffix_for_writers_that_need_it(tmp_path) -> None:
    target = tmp_path / "plot.png"
    with atomic.replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError, match="writer failed"), atomic.replacing(target) as tmp:  # noqa: PT012 -- fails inside the block
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


WRITER = """
import sys
from pathlib import Path
from tf_prompt.runs.outputs import write_outputs
out = Path(sys.argv[1])
pad = "x" * 8_000_000
i = 0
while True:
    write_outputs(out, [], {"version": i, "pad": pad, "end": i})
    i += 1
    print(i, flush=True)
"""


def test_kill_9_while_writing_metrics_leaves_a_whole_file(tmp_path) -> None:
    """Kill a process that rewrites a large metrics.json in a loop at several moments: the file
    on disk always parses, and is one whole version (the old one or the new one)."""
    out = tmp_path / "run"
    for delay in (0.15, 0.3, 0.45, 0.6, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()   # at least one complete version exists
            time.sleep(delay)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["version"] == metrics["end"] and len(metrics["pad"]) == 8_000_000


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_never_renames_over_something_that_is_not_a_regular_file(tmp_path) -> None:
    """`report --out /dev/null` must not replace the device: a FIFO stands in for it here."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        atomic.write_text(fifo, "page")
    with pytest.raises(OSError, match="not a regular file"):
        atomic.write_text(tmp_path, "page")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_writes_through_a_symlink_instead_of_replacing_it(tmp_path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "metrics.json"
    link.symlink_to(real)
    atomic.write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_sweep_results_one_unwritable_table_does_not_cost_the_others(tmp_path) -> None:
    from tf_prompt.experiments.sweep import write_results

    out = tmp_path / "sweep"
    (out / "results.md").mkdir(parents=True)
    (out / "results.json").write_text("old")
    with pytest.raises(OutputError, match=r"results\.md: cannot write"):
        write_results(out, [], "title", plots=False)
    assert json.loads((out / "results.json").read_text())["title"] == "title"
    assert (out / "results.csv").read_text().startswith("kind,")
