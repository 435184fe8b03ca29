"""The run folder (`--out DIR`) never loses an earlier run (Trust issue, item 3).

Same settings continue (free from the cache), different ones are refused in one line unless
--overwrite, nothing is replaced before the new run has finished enough, `--out /` and
non-directories are refused, and two runs never write one folder at once. Real CLI, real
`openai` client over HTTP to the loopback server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import Fault, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
OUTPUTS = ("metrics.json", "predictions.conll", "trace.jsonl")


@pytest.fixture
def oracle(server):
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    return server


def run_cli(server, out: Path, *extra: str, cache: Path | None = None, method: str = "direct") -> int:
    args = ["run", "--model", "m", "--base-url", server.base_url, "--data", "sample", "--method", method,
            "--out", str(out), "--retry-initial", "0.01", "--max-retries", "0"]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    return main([*args, *extra])


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tf-prompt: error:"), err
    assert "Traceback" not in err
    return lines[0]


def unauthorized(body, attempt):
    return Fault(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                 "code": "invalid_api_key"}})


def test_a_different_run_into_a_used_folder_is_refused_and_the_old_run_kept(oracle, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(oracle, out) == 0
    before = snapshot(out)
    capsys.readouterr()
    oracle.fault = unauthorized   # the case: the other run would fail on its first call
    code = run_cli(oracle, out, "--limit", "5", method="transfusion")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert "method direct -> transfusion" in line and "limit none -> 5" in line and "--overwrite" in line
    assert snapshot(out) == before


def test_overwrite_that_fails_before_any_sentence_keeps_the_old_outputs(oracle, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(oracle, out) == 0
    before = snapshot(out)
    oracle.fault = unauthorized
    capsys.readouterr()
    assert run_cli(oracle, out, "--overwrite", method="transfusion") == 1
    assert "HTTP 401" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == before


def test_overwrite_replaces_a_different_run(oracle, tmp_path) -> None:
    out = tmp_path / "run"
    assert run_cli(oracle, out) == 0
    assert run_cli(oracle, out, "--overwrite", method="transfusion") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["method"] == "transfusion" and metrics["complete"] is True
    assert json.loads((out / "run.json").read_text())["identity"]["method"] == "transfusion"
    assert not (out / "trace.partial.jsonl").exists()


def test_same_settings_continue_for_free_whatever_the_concurrency(oracle, tmp_path) -> None:
    out = tmp_path / "run"
    assert run_cli(oracle, out, method="transfusion") == 0
    served = oracle.served
    assert run_cli(oracle, out, "--concurrency", "2", "--rpm", "100000", method="transfusion") == 0
    assert oracle.served == served   # every reply came from the cache
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is True and metrics["usage"]["calls"] == 0 and metrics["f1"] == 1.0


def test_a_stopped_rerun_never_shrinks_a_finished_run(oracle, tmp_path, capsys) -> None:
    """Same settings without the cache, and the key is revoked after a few replies: the rerun
    finished fewer sentences than the folder holds, so the finished run stays as it was."""
    out = tmp_path / "run"
    assert run_cli(oracle, out, method="direct") == 0
    before = snapshot(out)
    served = oracle.served
    oracle.fault = lambda body, attempt: unauthorized(body, attempt) if oracle.served >= served + 4 else None
    assert run_cli(oracle, out, "--no-cache", "--concurrency", "1", method="direct") == 1
    assert "HTTP 401" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == before
    partial = (out / "trace.partial.jsonl").read_text().splitlines()
    assert 1 <= len(partial) < 12   # the stopped rerun's own sentences are kept aside


def test_a_run_made_before_run_json_is_recognised_from_its_metrics(oracle, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(oracle, out) == 0
    (out / "run.json").unlink()
    before = snapshot(out)
    capsys.readouterr()
    assert run_cli(oracle, out, method="translate-test") == 2
    assert "method direct -> translate-test" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == before
    assert run_cli(oracle, out) == 0   # the same settings continue


def test_a_folder_with_an_unrecorded_run_needs_overwrite(oracle, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "trace.jsonl").write_text('{"index": 0, "source": "x"}\n')
    assert run_cli(oracle, out) == 2
    assert "settings are not recorded" in one_error_line(capsys.readouterr().err)
    assert (out / "trace.jsonl").read_text() == '{"index": 0, "source": "x"}\n'


@pytest.mark.parametrize("target", ["file", "inside-file", "/dev/null", "/", "empty"])
def test_out_that_cannot_be_a_run_folder_is_one_line(oracle, tmp_path, capsys, target) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me\n")
    out = {"file": afile, "inside-file": afile / "run", "/dev/null": Path("/dev/null"), "/": Path("/"),
           "empty": ""}[target]
    listing = sorted(os.listdir("/"))
    assert run_cli(oracle, out) == 2
    one_error_line(capsys.readouterr().err)
    assert afile.read_text() == "keep me\n" and sorted(os.listdir("/")) == listing
    assert oracle.served == 0


@pytest.mark.skipif(sys.platform == "win32", reason="the folder lock is POSIX flock")
def test_two_runs_never_write_one_folder_at_once(server, tmp_path, capsys) -> None:
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    server.latency = 0.4
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    first = subprocess.Popen(
        [sys.executable, "-m", "tf_prompt.cli", "run", "--model", "m", "--base-url", server.base_url, "--data",
         "sample", "--method", "direct", "--concurrency", "1", "--out", str(out), "--cache-dir",
         str(tmp_path / "c1")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while server.served < 1 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None and server.served >= 1
        code = run_cli(server, out, cache=tmp_path / "c2")   # same settings, while the first writes
        line = one_error_line(capsys.readouterr().err)
        assert code == 2 and "another tf-prompt run" in line
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is True and metrics["n_sentences"] == 12
    assert len((out / "trace.jsonl").read_text().splitlines()) == 12


def test_an_edited_sweep_refuses_to_replace_its_cells_unless_overwrite(shared_data, tmp_path, capsys,
                                                                     monkeypatch) -> None:
    """A sweep cell is a run folder too: after the config changes a result-defining setting, the
    old cell is kept (one line) until `tf-prompt sweep --overwrite`."""
    root = tmp_path / "data" / "masakhaner2" / "hau"
    root.mkdir(parents=True)
    blocks = (shared_data / "masakhaner2" / "hau" / "test.txt").read_text(encoding="utf-8").strip().split("\n\n")[:4]
    (root / "test.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    monkeypatch.setenv("TF_PROMPT_DATA", str(tmp_path / "data"))
    from tf_prompt.testing import LoopbackServer

    with LoopbackServer(oracle_responder(read_conll(root / "test.txt"), ["PER", "ORG", "LOC"])) as srv:
        def config(temperature: float) -> str:
            path = tmp_path / "sweep.toml"
            path.write_text(f'out = "sweep"\nlabels = ["PER", "ORG", "LOC"]\nmethods = ["direct"]\n'
                            f'languages = ["hau"]\n\n[[models]]\nname = "loopback"\nbase_url = "{srv.base_url}"\n\n'
                            f'[run]\nmax_retries = 0\ntemperature = {temperature}\n', encoding="utf-8")
            return str(path)

        assert main(["sweep", config(0.0)]) == 0
        cell = tmp_path / "sweep" / "loopback" / "hau" / "direct"
        before = snapshot(cell)
        capsys.readouterr()
        assert main(["sweep", config(0.5)]) == 2
        err = capsys.readouterr().err   # the sweep says which cell it starts, then the one error line
        assert "Traceback" not in err and "temperature 0.0 -> 0.5" in one_error_line(err.splitlines()[-1])
        assert snapshot(cell) == before
        assert main(["sweep", config(0.5), "--overwrite"]) == 0
        assert json.loads((cell / "metrics.json").read_text())["settings"]["temperature"] == 0.5


def test_the_same_data_read_from_elsewhere_continues_and_edited_data_is_named(oracle, tmp_path, capsys) -> None:
    data = tmp_path / "a" / "test.txt"
    data.parent.mkdir()
    data.write_bytes(sample_path().read_bytes())
    out = tmp_path / "run"
    assert run_cli(oracle, out, "--data", str(data)) == 0
    moved = tmp_path / "b" / "test.txt"
    data.parent.rename(moved.parent)
    served = oracle.served
    assert run_cli(oracle, out, "--data", str(moved)) == 0 and oracle.served == served
    moved.write_text(moved.read_text().replace("B-PER", "B-ORG", 1))
    capsys.readouterr()
    assert run_cli(oracle, out, "--data", str(moved)) == 2
    assert "data (the contents of" in one_error_line(capsys.readouterr().err)


def test_kill_9_during_a_rerun_leaves_the_finished_run_whole(oracle, tmp_path) -> None:
    """The rerun pays again (--no-cache) and is killed mid-way: the folder still holds the first
    run, whole, and the report reads it; the rerun's finished sentences are in the side trace."""
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    assert run_cli(oracle, out, cache=cache) == 0
    before = snapshot(out)
    oracle.latency = 0.2
    served = oracle.served
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tf_prompt.cli", "run", "--model", "m", "--base-url", oracle.base_url, "--data",
         "sample", "--method", "direct", "--out", str(out), "--retry-initial", "0.01", "--max-retries", "0",
         "--cache-dir", str(cache), "--no-cache", "--concurrency", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while oracle.served < served + 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert snapshot(out) == before
    assert 1 <= len((out / "trace.partial.jsonl").read_text().splitlines()) < 12
    assert main(["report", str(out)]) == 0
