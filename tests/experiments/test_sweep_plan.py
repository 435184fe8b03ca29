"""A sweep's plan reads cell folders left by earlier sweeps: damaged files mean "run it again"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tf_prompt.experiments.sweep import CELL_FILE, Cell, finished_metrics
from tf_prompt.settings import RunSettings


def _cell(folder: Path) -> Cell:
    return Cell("m", "sample", "swa", "direct", "default", RunSettings(method="direct", out=str(folder)))


@pytest.mark.parametrize("stamp,metrics", [('["abc"]', '{"complete": true}'), ('{"hash": "abc"}', "[1, 2]"),
                                           ('"abc"', '"done"')])
def test_a_cell_file_that_is_not_an_object_reruns_the_cell(tmp_path: Path, stamp: str, metrics: str) -> None:
    """JSON that is not an object (a hand-edited or foreign file) made the sweep crash with a
    traceback; the cell is now simply not finished."""
    (tmp_path / CELL_FILE).write_text(stamp, encoding="utf-8")
    (tmp_path / "metrics.json").write_text(metrics, encoding="utf-8")
    assert finished_metrics(_cell(tmp_path), "abc") is None


def test_a_finished_cell_is_found(tmp_path: Path) -> None:
    (tmp_path / CELL_FILE).write_text(json.dumps({"hash": "abc"}), encoding="utf-8")
    (tmp_path / "metrics.json").write_text(json.dumps({"complete": True, "f1": 0.5}), encoding="utf-8")
    assert finished_metrics(_cell(tmp_path), "abc") == {"complete": True, "f1": 0.5}
    assert finished_metrics(_cell(tmp_path), "other") is None
    (tmp_path / "metrics.json").write_text(json.dumps({"complete": False, "f1": 0.5}), encoding="utf-8")
    assert finished_metrics(_cell(tmp_path), "abc") is None
