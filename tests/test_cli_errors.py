"""Hostile input ends as one line, never a traceback (Trust issue, item 7).

Each case runs the real CLI in a subprocess and asserts a non-zero exit, exactly one line on
stderr starting `tf-prompt: error:`, and no traceback. Then the report is fed every field of a
run folder with the wrong type, and may only succeed or say one line.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tf_prompt.api import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.report import ReportError, build_report
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


@pytest.fixture
def oracle(server):
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    return server


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished transfusion run on the sample (every trace field present), made once."""
    base = tmp_path_factory.mktemp("finished")
    with LoopbackServer(oracle_responder(read_conll(sample_path()), LABELS)) as srv:
        run_dataset(model="m", base_url=srv.base_url, data="sample", method="transfusion", out=str(base / "run"),
                    cache_dir=str(base / "cache"))
    return base / "run"


@pytest.fixture
def run_folder(finished_run, tmp_path) -> Path:
    """A copy of the finished run that a test may damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "good-run"))


def cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "tf_prompt.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-prompt: error:"), proc.stderr
    return lines[0]


def _template_dir(tmp_path: Path, body: str) -> Path:
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "direct.v9.jinja").write_text("{% block system %}Find entities.{% endblock %}\n"
                                       "{% block user %}\nSentence: {{ text }}\n" + body + "\n{% endblock %}\n")
    return d


def _corrupt_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "broken-cache"
    (cache / "replies").mkdir(parents=True)
    (cache / "replies" / "cache.db").write_bytes(b"this is not an SQLite database" * 100)
    return cache


def _bad_metrics(run_folder: Path, value: dict) -> Path:
    metrics = json.loads((run_folder / "metrics.json").read_text())
    metrics.update(value)
    (run_folder / "metrics.json").write_text(json.dumps(metrics))
    return run_folder


def _bad_trace_line(run_folder: Path, field: str, value) -> Path:
    lines = (run_folder / "trace.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec[field] = value
    lines[1] = json.dumps(rec)
    (run_folder / "trace.jsonl").write_text("\n".join(lines) + "\n")
    return run_folder


# case name -> (build the arguments, what the line must mention)
CASES = {
    "out /dev/null": (lambda tp, srv, rf: ["run", "--out", "/dev/null"], "/dev/null"),
    "cache-dir /dev/null": (lambda tp, srv, rf: ["run", "--out", str(tp / "o"), "--cache-dir", "/dev/null"],
                            "/dev/null"),
    "corrupt cache": (lambda tp, srv, rf: ["run", "--out", str(tp / "o"), "--cache-dir", str(_corrupt_cache(tp))],
                      "tf-prompt cache clear --cache-dir"),
    "corrupt cache stats": (lambda tp, srv, rf: ["cache", "stats", "--cache-dir", str(_corrupt_cache(tp))],
                            "is corrupt"),
    "template 1/0": (lambda tp, srv, rf: ["run", "--out", str(tp / "o"), "--prompts",
                                          str(_template_dir(tp, "x\n{{ 1/0 }}"))], "direct.v9.jinja:5:"),
    "template include": (lambda tp, srv, rf: ["run", "--out", str(tp / "o"), "--prompts",
                                              str(_template_dir(tp, '{% include "other.jinja" %}'))],
                         "direct.v9.jinja:4:"),
    "template sandbox": (lambda tp, srv, rf: ["run", "--out", str(tp / "o"), "--prompts",
                                              str(_template_dir(tp, "{{ text.__class__.__mro__ }}"))],
                         "direct.v9.jinja:4:"),
    "report f1 not a number": (lambda tp, srv, rf: ["report", str(_bad_metrics(rf, {"f1": "high"}))],
                               "metrics.json"),
    "report per_type not objects": (lambda tp, srv, rf: ["report", str(_bad_metrics(rf, {"per_type": {"PER": 3}}))],
                                    "metrics.json"),
    "report settings a list": (lambda tp, srv, rf: ["report", str(_bad_metrics(rf, {"settings": ["x"]}))],
                               "metrics.json"),
    "report trace replies a list": (lambda tp, srv, rf: ["report", str(_bad_trace_line(rf, "replies", ["x"]))],
                                    "trace.jsonl:2:"),
    "report trace predicted a number": (lambda tp, srv, rf: ["report", str(_bad_trace_line(rf, "predicted", 5))],
                                        "trace.jsonl:2:"),
    "report metrics a directory": (lambda tp, srv, rf: ["report", str(_metrics_dir(rf))], "metrics.json"),
}


def _metrics_dir(run_folder: Path) -> Path:
    (run_folder / "metrics.json").unlink()
    (run_folder / "metrics.json").mkdir()
    return run_folder


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line(case, oracle, run_folder, tmp_path) -> None:
    build, mention = CASES[case]
    args = build(tmp_path, oracle, run_folder)
    if args[0] == "run":
        args += ["--model", "m", "--base-url", oracle.base_url, "--data", "sample", "--method", "direct"]
        if "--cache-dir" not in args:
            args += ["--cache-dir", str(tmp_path / "cache-run")]
    line = assert_one_line(cli(*args))
    assert mention in line


def test_cache_clear_repairs_a_corrupt_cache(oracle, tmp_path) -> None:
    cache = _corrupt_cache(tmp_path)
    proc = cli("cache", "clear", "--cache-dir", str(cache))
    assert proc.returncode == 0 and "corrupt" in proc.stdout, proc.stderr
    proc = cli("run", "--model", "m", "--base-url", oracle.base_url, "--data", "sample", "--method", "direct",
               "--out", str(tmp_path / "o"), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr


HOSTILE = [None, True, 7, -1.5, "text", [], ["x"], [1, 2], {}, {"a": 1}, [{"text": 1, "type": []}]]
TRACE_FIELDS = ["index", "translation", "english_entities", "replies", "templates", "parse_failures", "errors",
                "hallucinated", "unaligned", "unknown_labels", "gold", "predicted", "failed", "spans"]
METRIC_FIELDS = ["f1", "precision", "recall", "per_type", "settings", "usage", "n_sentences", "parse_failures",
                 "hallucinated", "unaligned", "failed_sentences", "complete"]


def test_report_on_any_mistyped_field_succeeds_or_says_one_line(run_folder, tmp_path) -> None:
    """Every field the report reads, set to every JSON type: a page or a ReportError, nothing else."""
    trace = [json.loads(ln) for ln in (run_folder / "trace.jsonl").read_text().splitlines()]
    metrics = json.loads((run_folder / "metrics.json").read_text())
    work = tmp_path / "fuzz"
    shutil.copytree(run_folder, work)
    (work / "predictions.conll").unlink()   # so the trace's own tags are used
    cases = ([("trace", f, v) for f in TRACE_FIELDS for v in HOSTILE]
             + [("metrics", f, v) for f in METRIC_FIELDS for v in HOSTILE]
             + [("settings", f, v) for f in ("labels", "templates", "model") for v in HOSTILE]
             + [("usage", f, v) for f in ("cost_usd", "calls") for v in HOSTILE])
    for where, field, value in cases:
        t, m = copy.deepcopy(trace), copy.deepcopy(metrics)
        if where == "trace":
            t[1][field] = value
        elif where == "metrics":
            m[field] = value
        else:
            m[where][field] = value
        (work / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in t))
        (work / "metrics.json").write_text(json.dumps(m))
        try:
            build_report(work)
        except ReportError as e:
            assert "\n" not in str(e)
        except Exception as e:
            pytest.fail(f"{where}.{field} = {value!r}: {type(e).__name__}: {e}")
