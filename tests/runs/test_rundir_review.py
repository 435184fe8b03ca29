"""Regression tests for the run-folder findings of a hostile review of the merged trust fixes.

Every test drives the real CLI (`tf_prompt.cli.main`) against the loopback server over real HTTP
(or calls the run-folder check directly), and states the guarantee it checks (README "Cost,
cache, retries"). Each failed on the code as reviewed; each docstring says what was observed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from tf_prompt.testing import Fault, LoopbackServer

LABELS = ["PER", "ORG", "LOC", "DATE"]




@pytest.fixture
def oracle(sample_oracle: LoopbackServer) -> LoopbackServer:
    return sample_oracle


# -- replies that cannot be written ----------------------------------------------------------------

@pytest.mark.parametrize("half", ["\\ud83d", "\ud83d"], ids=["escaped", "raw"])
def test_reply_with_a_lone_surrogate_does_not_crash_the_run(tmp_path, capsys, half):
    """A model answer whose JSON holds a lone surrogate escape ("\\ud83d", half an emoji) is
    parsed into a str that cannot be encoded as UTF-8: TraceWriter raised UnicodeEncodeError, a
    traceback (seen), and since the reply is cached every rerun crashed the same way. (The SDK
    can also hand over the surrogate raw: the `raw` case.)"""
    reply = '{"entities": [{"text": "' + half + '", "type": "PER"}]}'
    with LoopbackServer(lambda body: reply) as srv:
        out = tmp_path / "run"
        args = ["run", "--base-url", srv.base_url, "--model", "loopback", "--method", "direct",
                "--limit", "3", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
        code, _, err = run_cli(capsys, *args)
    assert "Traceback" not in err
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_sentences"] == 3
    lines = (out / "trace.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    # the trace keeps what the model said, exactly (an escape in JSON, not a lossy replacement)
    assert json.loads(lines[0])["parsed"][0]["text"] == "\ud83d"
    # the page built from that trace is written too (the half character shown as U+FFFD)
    code, _, err = run_cli(capsys, "report", str(out))
    assert code == 0 and "Traceback" not in err, err
    assert "\ufffd" in (out / "report.html").read_text(encoding="utf-8")


def test_trace_keeps_one_line_per_sentence_whatever_a_reply_holds(tmp_path, capsys):
    """Line separators other than \\n (U+2028, U+2029, U+0085) were written raw inside trace
    lines (ensure_ascii=False), so a reader splitting lines (str.splitlines, many JSON-lines
    tools) saw more lines than sentences, each not valid JSON."""
    reply = '{"entities": [{"text": "a\u2028b\u2029c\u0085d", "type": "PER"}]}'
    with LoopbackServer(lambda body: reply) as srv:
        out = tmp_path / "run"
        code, _, err = run_cli(capsys, "run", "--base-url", srv.base_url, "--model", "loopback", "--method",
                            "direct", "--limit", "3", "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    lines = (out / "trace.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["parsed"][0]["text"] == "a\u2028b\u2029c\u0085d"


# -- run folders -----------------------------------------------------------------------------------

def test_rerun_whose_calls_fail_never_replaces_a_complete_run(oracle, tmp_path, capsys):
    """README: an earlier run's outputs are replaced only by a run that finished at least as many
    sentences. A failed sentence has no answer, yet it counted as finished: a same-settings
    rerun with --no-cache (or after the cache was cleared) against an endpoint that answered once
    then failed replaced a complete 12/12 run (F1 1.0) with 11 failed sentences (seen)."""
    out = tmp_path / "run"
    base = ["run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
            "--out", str(out), "--max-retries", "0", "--concurrency", "1"]
    code, _, _ = run_cli(capsys, *base, "--cache-dir", str(tmp_path / "c"))
    assert code == 0
    before = (out / "predictions.conll").read_bytes()
    first = len(oracle.requests)
    oracle.fault = lambda body, attempt: Fault(500) if attempt >= first + 1 else None
    code, stdout, err = run_cli(capsys, *base, "--no-cache")
    assert code != 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["failed_sentences"] == 0 and metrics["complete"] is True
    assert (out / "predictions.conll").read_bytes() == before
    # and it says so, instead of pointing at the folder as this run's outputs
    assert "outputs:" not in stdout
    assert "keeps the earlier run's outputs (12 sentence(s) answered)" in err


def test_an_overwrite_whose_calls_all_fail_keeps_the_earlier_run(oracle, tmp_path, capsys):
    """--overwrite replaces a different run only once a sentence is answered: a run whose calls
    all failed answered none (it used to count its failed sentences as finished)."""
    out = tmp_path / "run"
    base = ["run", "--base-url", oracle.base_url, "--model", "loopback", "--out", str(out),
            "--max-retries", "0", "--cache-dir", str(tmp_path / "c")]
    assert run_cli(capsys, *base, "--method", "direct")[0] == 0
    before = (out / "metrics.json").read_bytes()
    oracle.fault = lambda body, attempt: Fault(500)
    code, _, _ = run_cli(capsys, *base, "--method", "transfusion", "--overwrite")
    assert code != 0
    assert (out / "metrics.json").read_bytes() == before


def _kill_right_after_run_json(base: list[str], *extra: str) -> None:
    """Run `tf-prompt BASE EXTRA` in a child process killed (exit 137) just after it has replaced
    run.json: a folder torn between run.json and metrics.json."""
    child = (
        "import os\n"
        "real = os.replace\n"
        "def rep(a, b):\n"
        "    real(a, b)\n"
        "    if str(b).endswith('run.json'):\n"
        "        os._exit(137)\n"
        "os.replace = rep\n"
        "from tf_prompt.cli import main\n"
        f"main({[*base, *extra]!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr


def test_torn_run_folder_does_not_make_a_finished_rerun_silently_write_nothing(oracle, tmp_path, capsys):
    """write_outputs writes run.json first. A kill (or a full disk) after run.json but before
    metrics.json leaves run.json of the new run beside the old run's outputs. Rerunning the new
    settings then "continues" a run of 12 sentences with a run of 5: it exits 0, prints
    `outputs: DIR`, and writes nothing (seen)."""
    out = tmp_path / "run"
    base = ["run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
            "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert run_cli(capsys, *base)[0] == 0
    _kill_right_after_run_json(base, "--limit", "5", "--overwrite")
    code, _, _ = run_cli(capsys, *base, "--limit", "5")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    # either the rerun writes its outputs, or it does not claim success
    assert metrics["n_sentences"] == 5 or code != 0


def test_a_torn_run_folder_belongs_to_the_run_in_metrics_json(oracle, tmp_path, capsys):
    """rundir.py: metrics.json is the commit record. After a kill between run.json and
    metrics.json, the stopped run's settings are refused in one line that says what happened,
    the earlier settings continue (and make the folder whole again), and --overwrite finishes
    the stopped run."""
    out = tmp_path / "run"
    base = ["run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
            "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert run_cli(capsys, *base)[0] == 0
    _kill_right_after_run_json(base, "--limit", "5", "--overwrite")
    code, _, err = run_cli(capsys, *base, "--limit", "5")
    assert code != 0
    assert "limit none -> 5; a run with these settings was stopped while writing its outputs" in err
    code, stdout, _ = run_cli(capsys, *base)
    assert code == 0 and "outputs:" in stdout
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["identity"]["limit"] is None
    assert run_cli(capsys, *base, "--limit", "5", "--overwrite")[0] == 0
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["n_sentences"] == 5


def test_a_different_limit_is_named_as_the_limit_not_as_changed_data(oracle, tmp_path, capsys):
    """`--limit 5` on a folder holding a 12-sentence run was refused with "the contents of
    sample.conll changed" (seen): the data hash differs only because fewer sentences were read.
    The refusal must name the limit, and must not claim the data changed."""
    out = tmp_path / "run"
    base = ["run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
            "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert run_cli(capsys, *base)[0] == 0
    code, _, err = run_cli(capsys, *base, "--limit", "5")
    assert code != 0
    line = err.strip().splitlines()[-1]
    assert line.startswith("tf-prompt: error:")
    assert "limit none -> 5" in line
    assert "changed" not in line and "data" not in line.split("holds a different run", 1)[1]


# -- --out -----------------------------------------------------------------------------------------

def test_out_that_names_the_root_through_dotdot_is_refused(capsys):
    """`--out /` is refused, but `--out /tmp/..` was accepted (Path.absolute() keeps '..'): the
    run wrote metrics.json, predictions.conll, trace.jsonl and run.json into / (seen via
    check_out_path, which returned the path)."""
    from tf_prompt.runs.rundir import RunDirError, check_out_path

    with pytest.raises(RunDirError):
        check_out_path(f"{Path('/tmp').resolve()}/..")


def test_out_that_is_a_link_to_the_root_is_refused(tmp_path):
    from tf_prompt.runs.rundir import RunDirError, check_out_path

    link = tmp_path / "root"
    link.symlink_to("/")
    with pytest.raises(RunDirError, match="root directory"):
        check_out_path(link)
    assert check_out_path(tmp_path / "a" / ".." / "b") == tmp_path / "a" / ".." / "b"
