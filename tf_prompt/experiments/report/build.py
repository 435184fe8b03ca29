"""Writing report.html for a run folder: read the run (runs/outputs.py, rows.py), render it
(page.py), replace the page atomically."""

from __future__ import annotations

from pathlib import Path

from tf_prompt.experiments.report.page import render_page
from tf_prompt.experiments.report.rows import load_rows
from tf_prompt.runs.errors import RunFileError
from tf_prompt.runs.outputs import read_metrics
from tf_prompt.util import atomic

#: A run folder that cannot be reported on; `str(e)` is one line naming the file (and line). The
#: run files' own read errors (runs/outputs.py) are these, so callers catch one type.
ReportError = RunFileError


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of a run folder (default RUN_DIR/report.html); returns its path.

    Works on interrupted runs too: metrics.json or predictions.conll may be missing, a torn
    last trace line is skipped, and scores are then recomputed from the trace.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory")
    notes: list[str] = []
    metrics = read_metrics(run_dir)
    if metrics is None:
        notes.append("metrics.json is missing (interrupted run?): scores recomputed from trace.jsonl")
        metrics = {}
    if metrics and metrics.get("complete") is False:
        notes.append("the run is incomplete: only finished sentences are shown")
    settings = metrics.get("settings") or {}
    labels = settings.get("labels") or None
    rows = load_rows(run_dir, set(labels) if labels else None, notes)
    if not metrics and rows and all(r.gold is not None for r in rows):
        from tf_prompt.scoring.evaluate import score

        metrics = score([r.gold for r in rows], [r.pred for r in rows])  # type: ignore[misc]
    page = render_page(run_dir, metrics, rows, list(labels or []), notes)
    out = Path(out) if out is not None else run_dir / "report.html"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out, page)   # a kill while writing leaves the old page or the new one
    except OSError as e:
        raise ReportError(f"{out}: cannot write ({e.strerror or e})") from None
    return out
