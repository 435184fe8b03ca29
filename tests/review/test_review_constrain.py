"""Hostile review of --constrain (issue 13) and the changes merged with it: each test here failed
on the code it was written against (8649256) and names the defect it pins."""

from __future__ import annotations

import json
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
