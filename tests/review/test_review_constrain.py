"""Hostile review of --constrain (issue 13) and the changes merged with it: each test here failed
on the code it was written against (8649256) and names the defect it pins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_cli
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


def _forget_constrain(folder: Path) -> None:
    """Make `folder` look like a run written before --constrain existed (no such setting recorded)."""
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    del metrics["settings"]["constrain"]
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    manifest = folder / "run.json"
    if manifest.exists():
        run = json.loads(manifest.read_text(encoding="utf-8"))
        if isinstance(run.get("identity"), dict):
            run["identity"].pop("constrain", None)
        manifest.write_text(json.dumps(run), encoding="utf-8")


def test_an_old_unconstrained_run_folder_is_not_continued_by_a_constrained_run(server, capsys, tmp_path) -> None:
    """A run folder from before --constrain holds free answers: a rerun with --constrain spans
    into it must be refused like any other change of mode, not silently continued (it would mix
    free and constrained answers in one run's metrics). The same folder still continues with
    --constrain none (the default)."""
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    out = tmp_path / "run"
    base = ["run", "--base-url", server.base_url, "--model", "m", "--method", "direct", "--limit", "3",
            "--out", str(out)]
    assert run_cli(capsys, *base)[0] == 0
    _forget_constrain(out)
    code, _, err = run_cli(capsys, *base, "--constrain", "spans")
    assert code != 0 and "constrain none -> spans" in err, err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert run_cli(capsys, *base)[0] == 0     # none: the old run continues


# --- method plugins (methods/registry.py) ---------------------------------------------------------

def _distribution(site: Path, package: str, entry: str, module: str) -> None:
    """An installed distribution `package` whose entry point `entry` is `package.method:METHOD`."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("", encoding="utf-8")
    (site / package / "method.py").write_text(module, encoding="utf-8")
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[tf_prompt.methods]\n{entry} = {package}.method:METHOD\n",
                                           encoding="utf-8")


def _python(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


HALF = '''\
from tf_prompt.methods import register
from tf_prompt.methods.direct import Direct


class Half(Direct):
    name = "half"


METHOD = register(Half())
raise RuntimeError("a later import failed")
'''


def test_a_plugin_that_registered_itself_and_then_failed_to_import_is_really_skipped(tmp_path) -> None:
    """The warning says the plugin is skipped; it was still listed (--method choices) and ran,
    because its import had registered it before failing, half set up."""
    site = tmp_path / "site"
    _distribution(site, "tfp_half", "half", HALF)
    done = _python(site, "from tf_prompt.methods import METHODS, get_method\nprint(','.join(METHODS))\n"
                         "try:\n    get_method('half')\nexcept ValueError as e:\n    print('refused:', e)\n")
    assert done.returncode == 0, done.stderr
    assert "RuntimeError: a later import failed; skipped" in done.stderr
    names, refusal = done.stdout.splitlines()
    assert "half" not in names.split(",") and "direct" in names.split(",")
    assert refusal.startswith("refused: plugin method 'half'") and "a later import failed" in refusal


def test_a_plugin_calling_sys_exit_at_import_is_a_warning_not_the_end_of_every_command(server, tmp_path) -> None:
    """`except Exception` let SystemExit through: a plugin whose import exits (a module that parses
    its own command line, `sys.exit` on a missing GPU) ended `tf-prompt run --method direct` too."""
    site = tmp_path / "site"
    _distribution(site, "tfp_exit", "quits", "import sys\nsys.exit('no GPU here')\n")
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    out = tmp_path / "run"
    done = _python(site, "import sys\nfrom tf_prompt.cli import main\n"
                   f"sys.exit(main(['run', '--model', 'm', '--base-url', {server.base_url!r}, '--method', 'direct', "
                   f"'--limit', '2', '--out', {str(out)!r}, '--no-progress']))\n")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("tf-prompt: warning:")]
    assert len(warnings) == 1 and "SystemExit: no GPU here; skipped" in warnings[0], done.stderr
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["f1"] == 1.0


# --- labels: each once ------------------------------------------------------------------------------

def test_a_label_given_twice_is_one_label_in_the_prompt_and_the_answer_schema(tmp_path) -> None:
    """`--labels PER,per,LOC` kept PER twice: listed twice in every prompt and, with --constrain,
    a duplicate value of the type enum (JSON Schema wants enum values unique; a strict provider
    may refuse the schema). A schema file that defines a label twice is its one-line error."""
    from tf_prompt.data.schema import SchemaError, get_schema
    from tf_prompt.prompting.constraints import constraint

    schema = get_schema(labels=["PER", "per", "LOC"])
    assert schema.names == ["PER", "LOC"]
    fmt = constraint("json", "direct", "entities", schema.names, "Amina").params["response_format"]
    enum = fmt["json_schema"]["schema"]["properties"]["entities"]["items"]["properties"]["type"]["enum"]
    assert enum == ["PER", "LOC"]
    path = tmp_path / "twice.yaml"
    path.write_text("labels:\n  - name: PER\n  - name: LOC\n  - name: PER\n", encoding="utf-8")
    try:
        get_schema(str(path))
    except SchemaError as e:
        assert str(e).startswith(f"{path}: ") and "'PER' is defined twice" in str(e) and "\n" not in str(e)
    else:
        raise AssertionError("a schema defining PER twice was accepted")


# --- the provider limits (prompting/constraints.py LIMITS) ---------------------------------------

def test_a_numbered_spans_schema_keeps_within_the_total_characters_limit() -> None:
    """LIMITS (and the README's table) name OpenAI's 120,000 characters for all property names and
    enum values of a schema, but only the enum count and the one-enum size were checked: items of
    fewer than 250 n-grams each (the size rule does not apply) summed past it, and the provider
    would refuse the whole call. Long words (URLs, compounds, agglutinative names) get there."""
    from tf_prompt.prompting.constraints import APPLIED, numbered_constraint, schema_chars

    texts = [" ".join(f"{'x' * 34}{i}{j}" for j in range(30)) for i in range(4)]   # 212 n-grams each
    limit = numbered_constraint("spans", "direct", "entities", LABELS, texts)
    schema = limit.params["response_format"]["json_schema"]["schema"]
    assert schema_chars(schema) <= APPLIED.total_chars
    assert limit.notes[:3] == ("spans",) * 3          # the first items still get their n-grams
    assert limit.notes[3].startswith("json (spans: ") and "characters left of 120000" in limit.notes[3]


# --- --via batch and a model that refuses the schema --------------------------------------------

def test_via_batch_a_schema_refused_line_stops_with_the_constrain_line_not_another_wave(server, tmp_path) -> None:
    """The README promises one line naming --constrain none when a model refuses response_format.
    Over --via batch the refused lines were submitted again in a second batch (each can take up to
    24 h on the real API) and the run ended with 'no reply from the Batch API ... rerun once the
    endpoint answers', which no rerun can fix."""
    import asyncio

    import pytest

    from tf_prompt.batch_api import run_via_batch
    from tf_prompt.settings import RunSettings
    from tf_prompt.testing import Fault
    from tf_prompt.types import BackendError

    refusal = {"error": {"message": "response_format json_schema is not supported by this model",
                         "type": "invalid_request_error", "param": "response_format"}}
    server.responder = oracle_responder(read_conll(sample_path()), LABELS)
    server.batch_fault = lambda body, index: Fault(400, refusal) if "response_format" in body else None
    settings = RunSettings(model="gpt-4o-mini", base_url=server.base_url, method="direct", limit=3,
                           constrain="spans", out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(BackendError) as info:
        asyncio.run(run_via_batch(settings, poll_interval=0.02))
    line = str(info.value)
    assert "run with --constrain none" in line and "HTTP 400" in line and "\n" not in line
    assert len(server.batches) == 1 and len(server.batch_requests) == 3     # no second wave
