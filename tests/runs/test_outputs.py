"""runs/outputs.py reads back what a run writes: strict readers give one line naming the file (and
line); lenient readers, used to decide what to do with a folder, never raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf_prompt.runs.errors import RunFileError
from tf_prompt.runs.outputs import (
    METRICS,
    PREDICTIONS,
    TRACE,
    metrics_or_none,
    read_metrics,
    read_predictions,
    read_trace,
    trace_counts,
)


def _one_line(e: pytest.ExceptionInfo[RunFileError]) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_bad_files_are_one_line_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / PREDICTIONS).write_text("Amina B-PER B-PER\nMombasa\n\n", encoding="utf-8")
    with pytest.raises(RunFileError) as e:
        read_predictions(tmp_path)
    assert _one_line(e).startswith(f"{tmp_path / PREDICTIONS}:2: expected 'token GOLD PRED'")
    (tmp_path / TRACE).write_text('{"index": 0, "source": "a", "predicted": "B-PER"}\n{"index": 1, "source": "b"}\n',
                                  encoding="utf-8")
    with pytest.raises(RunFileError) as e:
        read_trace(tmp_path, [])
    assert _one_line(e) == f"{tmp_path / TRACE}:1: invalid trace line ('predicted' should be a list of tags)"
    (tmp_path / METRICS).write_text('{"f1": "high"}', encoding="utf-8")
    with pytest.raises(RunFileError) as e:
        read_metrics(tmp_path)
    assert _one_line(e) == f"""{tmp_path / METRICS}: 'f1' should be a number or null, got "high\""""
    assert metrics_or_none(tmp_path) == {"f1": "high"}   # the lenient reader does not judge the fields


def test_a_torn_last_trace_line_is_a_note_and_counts_as_recorded_not_answered(tmp_path: Path) -> None:
    (tmp_path / TRACE).write_text('{"index": 0, "source": "a", "failed": false}\n{"index": 1, "sou', encoding="utf-8")
    notes: list[str] = []
    assert [r["source"] for r in read_trace(tmp_path, notes)] == ["a"]
    assert notes == ["trace.jsonl: last line 2 is incomplete and was skipped"]
    assert trace_counts(tmp_path / TRACE) == (2, 1)
    assert trace_counts(tmp_path / "missing.jsonl") == (0, 0)


def test_missing_and_damaged_files(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) is None and read_predictions(tmp_path) is None
    with pytest.raises(RunFileError, match="not found"):
        read_trace(tmp_path, [])
    (tmp_path / METRICS).write_text("[1, 2]", encoding="utf-8")
    assert metrics_or_none(tmp_path) is None
    with pytest.raises(RunFileError, match="expected a JSON object"):
        read_metrics(tmp_path)
