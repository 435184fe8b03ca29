"""Running a sweep: estimate, check the cap, run the cells one after another, write the results.

Cells run one after another (each is concurrent inside): the budget is then simple to enforce,
and a stop leaves whole cells behind.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tf_prompt.experiments.sweep.config import SweepConfig
from tf_prompt.experiments.sweep.plan import CELL_FILE, estimate_sweep, finished_metrics, format_cost_table
from tf_prompt.experiments.sweep.results import cell_row, write_results
from tf_prompt.runs.outputs import metrics_or_none
from tf_prompt.util import atomic
from tf_prompt.util.formatting import money, pct

EXIT_REFUSED = 2
EXIT_BUDGET = 1
EXIT_INCOMPLETE = 3


def _say(msg: str) -> None:
    print(f"tf-prompt: {msg}", file=sys.stderr, flush=True)


async def run_sweep(config: SweepConfig, *, dry_run: bool = False, proceed_up_to_cap: bool = False,
                    overwrite: bool = False) -> int:
    """Estimate, check the cap, run the cells in order, write the results; returns an exit code.

    A cell whose folder holds a run with other settings (the config was edited) is refused
    (rundir.py) unless `overwrite`.
    """
    from tf_prompt.api import run_async
    from tf_prompt.backends.base import BackendError
    from tf_prompt.llm.client import BudgetExceeded

    estimates = await estimate_sweep(config)
    print(format_cost_table(config, estimates), flush=True)
    if dry_run:
        return 0
    cap = config.max_cost
    total = sum(e["cost_usd"] or 0.0 for e in estimates)
    if cap is not None and total > cap and not proceed_up_to_cap:
        _say(f"sweep estimate ${total:.4f} exceeds max_cost ${cap:.4f} in {config.path}: raise max_cost, "
             f"or rerun with --proceed-up-to-cap to run cells in order until ${cap:.4f} is spent")
        return EXIT_REFUSED

    title = f"Sweep results: {config.path.name}"
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    spent = 0.0
    code = 0
    try:
        for i, (cell, est) in enumerate(zip(config.cells, estimates, strict=True), 1):
            name = f"[{i}/{len(config.cells)}] {cell.model} / {cell.language} / {cell.method} / {cell.prompt}"
            done = finished_metrics(cell, est["hash"]) if est["status"] == "done" else None
            if done is not None:
                _say(f"{name}: already complete, skipped")
                rows.append(cell_row(cell, done))
                continue
            settings = cell.settings.model_copy(update={"overwrite": overwrite})
            if cap is not None and est["cost_usd"] is not None:   # unpriced models cannot be capped
                remaining = cap - spent
                settings = settings.model_copy(update={"max_cost": max(remaining, 0.0)})
            (cell.out_dir / CELL_FILE).unlink(missing_ok=True)    # a stopped rerun must not look finished
            _say(f"{name}: running ({est['calls']} calls estimated, {est['cached_calls']} cached)")
            try:
                summary = await run_async(settings)
            except BudgetExceeded:
                spent += _spent_in(cell.out_dir)
                msg = (f"sweep stopped by max_cost in {name}: ${spent:.4f} spent of ${cap:.4f} and the next "
                       f"call might not fit; {len(rows)} finished cells are in {config.out / 'results.md'}. "
                       f"Raise max_cost and rerun: finished cells are skipped, cached replies are free")
                notes.append(f"stopped by max_cost in {cell.model} / {cell.language} / {cell.method} / "
                             f"{cell.prompt}: ${spent:.4f} spent of ${cap:.4f}")
                _say(msg)
                code = EXIT_BUDGET
                break
            metrics = summary.metrics
            spent += metrics["usage"].get("cost_usd") or 0.0
            rows.append(cell_row(cell, metrics))
            if metrics.get("complete"):
                atomic.write_text(cell.out_dir / CELL_FILE, json.dumps(
                    {"hash": est["hash"], "fingerprint": est["fingerprint"]}, indent=2,
                    default=str) + "\n")
            else:
                notes.append(f"{cell.model} / {cell.language} / {cell.method} / {cell.prompt} is incomplete "
                             f"(failed sentences): rerun the sweep to retry them")
                code = code or EXIT_INCOMPLETE
            f1 = metrics.get("f1")
            _say(f"{name}: F1 {pct(f1)}, {metrics['usage']['calls']} calls, "
                 f"cost {money(metrics['usage'].get('cost_usd'))}")
    except (BackendError, KeyboardInterrupt, asyncio.CancelledError):
        if rows:   # keep what finished; the error itself is reported by the caller
            write_results(config.out, rows, title, [*notes, "sweep interrupted"], plots=False)
        raise
    for note in write_results(config.out, rows, title, notes):
        _say(note)
    print()
    print((config.out / "results.md").read_text(encoding="utf-8"), end="")
    print(f"outputs: {config.out}")
    return code


def _spent_in(out_dir: Path) -> float:
    """What a cell stopped by the budget paid (its metrics.json is written on a clean stop)."""
    try:
        return float((metrics_or_none(out_dir) or {})["usage"]["cost_usd"] or 0.0)
    except (ValueError, KeyError, TypeError):
        return 0.0
