"""Regression tests for review findings on outputs: the report reader, `--via batch` and sweep results.

Every test drives the real CLI (`tf_prompt.cli.main`) against the loopback server over real HTTP.
Each states the guarantee it checks and what was observed on the code as reviewed.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from tf_prompt.cli import main
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import LoopbackServer

LABELS = ["PER", "ORG", "LOC", "DATE"]




@pytest.fixture
def oracle(sample_oracle: LoopbackServer) -> LoopbackServer:
    return sample_oracle


# -- report ----------------------------------------------------------------------------------------

def test_report_reads_a_run_whose_tokens_hold_line_separators(tmp_path, capsys):
    """Tokens may hold U+2028, U+0085 or a form feed (the CoNLL reader keeps them, by design).
    trace.jsonl is written with ensure_ascii=False, so such a character is raw inside a JSON
    string; `tf-prompt report` split the file with str.splitlines() and refused the run's own
    valid trace: `trace.jsonl:1: invalid trace line (Unterminated string ...)` (seen)."""
    data = tmp_path / "odd.conll"
    data.write_text("Amina B-PER\nJu\u2028ma I-PER\nMom\x85basa B-LOC\nx\x0cy O\n. O\n", encoding="utf-8")
    with LoopbackServer(lambda body: '{"entities": [{"text": "Amina", "type": "PER"}]}') as srv:
        out = tmp_path / "run"
        code, _, err = run_cli(capsys, "run", "--base-url", srv.base_url, "--model", "loopback", "--method", "direct",
                            "--data", str(data), "--out", str(out), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", str(out))
    assert code == 0, err
    page = (out / "report.html").read_text(encoding="utf-8")
    # predictions.conll is read with the CoNLL reader's rules: each token stays whole
    assert "<i>Amina Ju\u2028ma <b>PER</b></i>" in page and "<i>Mom\x85basa <b>LOC</b></i>" in page
    assert " x\x0cy ." in page


def test_batch_run_whose_tokens_and_replies_hold_line_separators(tmp_path, capsys):
    """The same tokens through `--via batch`: the request file and the batch output file are
    JSONL, and a reply may quote a token holding U+2028 raw (the loopback writes its output with
    ensure_ascii=False, as a server may); reading either with str.splitlines() tore the line."""
    data = tmp_path / "odd.conll"
    data.write_text("Amina B-PER\nJu\u2028ma I-PER\nMom\x85basa B-LOC\nx\x0cy O\n. O\n", encoding="utf-8")
    reply = json.dumps({"entities": [{"text": "Amina Ju\u2028ma", "type": "PER"},
                                     {"text": "Mom\x85basa", "type": "LOC"}]}, ensure_ascii=False)
    with LoopbackServer(lambda body: reply) as srv:
        out = tmp_path / "run"
        code, _, err = run_cli(capsys, "run", "--via", "batch", "--poll-interval", "0.1", "--base-url", srv.base_url,
                            "--model", "loopback", "--method", "direct", "--data", str(data), "--out", str(out),
                            "--cache-dir", str(tmp_path / "c"))
        assert code == 0, err
        assert srv.batch_requests_served == 1, err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1"] == 1.0 and metrics["failed_sentences"] == 0, metrics
    code, _, err = run_cli(capsys, "report", str(out))
    assert code == 0, err


# -- sweep -----------------------------------------------------------------------------------------

def test_sweep_plot_failure_does_not_cost_the_tables(oracle, tmp_path, capsys):
    """write_results catches only OSError per writer, and the plots go first: a matplotlib
    ValueError (mathtext in a dataset name such as `x$\\nocmd{$y`) was a traceback and results.md,
    results.json and results.csv were never written (seen)."""
    data = tmp_path / "swa.conll"
    data.write_bytes(sample_path().read_bytes())
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'out = "out"\nlimit = 2\nlabels = {json.dumps(LABELS)}\nmethods = ["direct"]\n'
        f'datasets = [{{ data = "swa.conll", language = "swa", name = "x$\\\\nocmd{{$y" }}]\n'
        f'[[models]]\nname = "loopback"\nbase_url = "{oracle.base_url}"\n'
        f'[run]\ncache_dir = "cache"\n', encoding="utf-8")
    pytest.importorskip("matplotlib")
    try:
        code = main(["sweep", str(config)])
    except ValueError as e:   # the traceback the CLI let through
        pytest.fail(f"traceback: {type(e).__name__}: {str(e).strip()[:80]}")
    err = capsys.readouterr().err
    assert (tmp_path / "out" / "results.md").is_file(), err
    assert (tmp_path / "out" / "results.csv").is_file()
    assert (tmp_path / "out" / "results.json").is_file()
    assert "Traceback" not in err
    assert code in (0, 1, 3)
    # user text is drawn as typed (mathtext off), so the plots are drawn too
    assert (tmp_path / "out" / "f1_by_language.png").is_file(), err
    assert (tmp_path / "out" / "cost_vs_f1.png").is_file(), err


def test_a_plot_that_fails_is_a_note_and_the_rest_is_written(tmp_path, monkeypatch):
    """Any failure of one figure (here an error raised inside plot_f1_by_language, as matplotlib
    raises for a figure it cannot draw) costs only that figure: the tables and the other plot are
    written, results.md/.json say which plot is missing, and its stale file from an earlier sweep
    is removed rather than left showing other results."""
    pytest.importorskip("matplotlib")
    from tf_prompt.experiments import plots
    from tf_prompt.experiments.sweep import write_results

    row = {"model": "m", "language": "swa", "method": "direct", "prompt": "default", "f1": 0.5,
           "precision": 0.5, "recall": 0.5, "n": 2, "calls": 2, "cache_hits": 0, "prompt_tokens": 10,
           "completion_tokens": 5, "cost_usd": 0.01, "wall_seconds": 1.0, "parse_failures": 0}
    out = tmp_path / "out"
    out.mkdir()
    (out / "f1_by_language.png").write_bytes(b"an earlier sweep's plot")

    def broken(rows, path):
        raise ValueError("\nfigure cannot be drawn\n ^")

    monkeypatch.setattr(plots, "plot_f1_by_language", broken)
    notes = write_results(out, [row], "t")
    assert len(notes) == 1 and "f1_by_language.png not drawn (ValueError: figure cannot be drawn)" in notes[0]
    assert "\n" not in notes[0]
    for name in ("results.md", "results.csv", "results.json", "cost_vs_f1.png"):
        assert (out / name).is_file(), name
    assert not (out / "f1_by_language.png").exists()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["plots"] == ["cost_vs_f1.png"] and results["notes"] == notes
    assert "f1_by_language.png not drawn" in (out / "results.md").read_text(encoding="utf-8")


# -- --via batch -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["dev-null", "different-run"])
def test_batch_refuses_an_unusable_out_before_submitting(oracle, tmp_path, capsys, case):
    """README: an unusable --out, or a folder holding a run with other settings, is refused before
    anything is sent. `--via batch` uploaded and submitted a batch of every request and waited
    for it (up to 24 h on the real API, paid) before run_async refused the folder (seen: 1 upload,
    1 batch, 12 lines served, then `--out /dev/null: is not a directory`)."""
    cache = str(tmp_path / "c")
    if case == "dev-null":
        out = "/dev/null"
    else:
        out = str(tmp_path / "run")
        assert run_cli(capsys, "run", "--base-url", oracle.base_url, "--model", "loopback", "--method", "direct",
                    "--limit", "2", "--out", out, "--cache-dir", str(tmp_path / "other-cache"))[0] == 0
    code, _, err = run_cli(capsys, "run", "--via", "batch", "--poll-interval", "0.1", "--base-url", oracle.base_url,
                        "--model", "loopback", "--method", "direct", "--limit", "3", "--out", out,
                        "--cache-dir", cache)
    assert code == 2, err
    assert oracle.uploads == 0 and oracle.batches_created == 0, err


def test_batch_into_a_folder_holding_the_same_run_continues_it(oracle, tmp_path, capsys):
    """The check before submitting uses the identity the final pass writes (one function,
    api.run_record): a folder holding the same run is continued, not refused."""
    out = str(tmp_path / "run")
    common = ("--base-url", oracle.base_url, "--model", "loopback", "--method", "direct", "--limit", "2",
              "--out", out)
    assert run_cli(capsys, "run", *common, "--cache-dir", str(tmp_path / "other-cache"))[0] == 0
    code, _, err = run_cli(capsys, "run", "--via", "batch", "--poll-interval", "0.1", *common,
                        "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert oracle.batches_created == 1, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["settings"]["via"] == "batch" and metrics["n_sentences"] == 2


def test_sweep_config_errors_name_the_right_line_after_a_line_separator(tmp_path, capsys):
    """A TOML string may hold U+2028 or U+0085 raw (tomllib counts lines at \\n only); the config
    reader located keys with str.splitlines(), so every error after such a string named a later
    line than the one at fault."""
    config = tmp_path / "sweep.toml"
    config.write_text('out = "runs/a\u2028b\x85c"\nlimit = 0\n', encoding="utf-8")
    code = main(["sweep", str(config)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{config}:2: limit: must be > 0" in err, err
