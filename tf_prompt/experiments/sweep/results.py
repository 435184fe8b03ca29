"""A sweep's results: one row per cell, macro averages over languages, TransFusion-minus-direct
gains, and the files that hold them (results.md, results.csv, results.json, plots).

In results.csv a `kind` column separates cells, averages over languages (language "avg") and
TransFusion-minus-direct gains (method "transfusion-direct", the F1 difference in the f1 column).
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tf_prompt.experiments.sweep.plan import Cell
from tf_prompt.util import atomic
from tf_prompt.util.formatting import md_table, money, pct

CELL_COLUMNS = ["model", "language", "method", "prompt", "f1", "precision", "recall", "n", "calls", "cache_hits",
                "prompt_tokens", "completion_tokens", "cost_usd", "wall_seconds", "parse_failures"]


def cell_row(cell: Cell, metrics: dict[str, Any]) -> dict[str, Any]:
    """One results row from a cell's metrics.json (usage is that of the run that wrote it)."""
    u = metrics.get("usage", {})
    return {"model": cell.model, "language": cell.language, "method": cell.method, "prompt": cell.prompt,
            "f1": metrics.get("f1"), "precision": metrics.get("precision"), "recall": metrics.get("recall"),
            "n": metrics.get("n_sentences", 0), "calls": u.get("calls", 0), "cache_hits": u.get("cache_hits", 0),
            "prompt_tokens": u.get("prompt_tokens", 0), "completion_tokens": u.get("completion_tokens", 0),
            "cost_usd": u.get("cost_usd"), "wall_seconds": u.get("wall_seconds", 0.0),
            "parse_failures": metrics.get("parse_failures", 0), "complete": bool(metrics.get("complete")),
            "dataset": cell.dataset, "out_dir": str(cell.out_dir),
            # which rules made f1/precision/recall (--scorer; a cell from before it: conll)
            "scorer": metrics.get("scorer", "conll")}


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def averages(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, method, prompt): macro averages of F1/P/R over languages (as the paper reports),
    sums of counts, tokens and cost (None if any cell's cost is unknown)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"], r["prompt"]), []).append(r)
    out = []
    for (model, method, prompt), rs in groups.items():
        costs = [r["cost_usd"] for r in rs]
        out.append({"model": model, "language": "avg", "method": method, "prompt": prompt, "languages": len(rs),
                    **{k: _mean([r[k] for r in rs]) for k in ("f1", "precision", "recall")},
                    **{k: sum(r[k] for r in rs) for k in ("n", "calls", "cache_hits", "prompt_tokens",
                                                            "completion_tokens", "parse_failures")},
                    "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
                    "wall_seconds": round(sum(r["wall_seconds"] for r in rs), 3)})
    return out


def gains(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """TransFusion minus direct F1 per (model, prompt, language) where both were scored, then the
    average per (model, prompt) with language "avg"."""
    f1 = {(r["model"], r["prompt"], r["language"], r["method"]): r["f1"] for r in rows if r["f1"] is not None}
    out: list[dict[str, Any]] = []
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (model, prompt, lang, method), tf in f1.items():
        direct = f1.get((model, prompt, lang, "direct"))
        if method != "transfusion" or direct is None:
            continue
        g = {"model": model, "prompt": prompt, "language": lang, "direct_f1": direct, "transfusion_f1": tf,
             "gain": tf - direct}
        by_group.setdefault((model, prompt), []).append(g)
    for (model, prompt), gs in by_group.items():
        out.extend(gs)
        out.append({"model": model, "prompt": prompt, "language": "avg",
                    "direct_f1": _mean([g["direct_f1"] for g in gs]),
                    "transfusion_f1": _mean([g["transfusion_f1"] for g in gs]),
                    "gain": _mean([g["gain"] for g in gs])})
    return out


def format_results(rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str] = ()) -> str:
    """results.md: cells, averages over languages, TransFusion gains (F1 in %, 1 decimal)."""
    def usage_cols(r: dict[str, Any]) -> list[Any]:
        return [r["n"], r["calls"], r["cache_hits"], r["prompt_tokens"], r["completion_tokens"],
                money(r["cost_usd"]), f"{r['wall_seconds']:.1f}", r["parse_failures"]]

    usage_heads = ["n", "calls", "cache hits", "prompt tok", "compl. tok", "$", "wall s", "parse fail"]
    parts = [f"# {title}", "", "## Cells", "",
             md_table(["model", "language", "method", "prompt", "F1", "P", "R", *usage_heads],
                       [[r["model"], r["language"] + ("" if r.get("complete", True) else " (incomplete)"),
                         r["method"], r["prompt"], pct(r["f1"]), pct(r["precision"]), pct(r["recall"]),
                         *usage_cols(r)] for r in rows], 4)]
    avg = averages(rows)
    if avg:
        parts += ["", "## Averages over languages (macro)", "",
                  md_table(["model", "method", "prompt", "languages", "F1", "P", "R", *usage_heads],
                            [[a["model"], a["method"], a["prompt"], a["languages"], pct(a["f1"]),
                              pct(a["precision"]), pct(a["recall"]), *usage_cols(a)] for a in avg], 3)]
    gs = gains(rows)
    if gs:
        parts += ["", "## TransFusion gain over direct (F1 points)", "",
                  md_table(["model", "prompt", "language", "direct F1", "transfusion F1", "gain"],
                            [[g["model"], g["prompt"], g["language"] if g["language"] != "avg" else "**avg**",
                              pct(g["direct_f1"]), pct(g["transfusion_f1"]),
                              f"{100 * g['gain']:+.1f}"] for g in gs], 3)]
    notes = [*notes, *_scorer_notes(rows)]
    if notes:
        parts += [""] + [f"- {n}" for n in notes]
    return "\n".join(parts) + "\n"


def _scorer_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A note naming the scorer when the F1 is not the default conll one (--scorer string), so a
    table of string-match figures is not read as seqeval's; nothing for a sweep scored as before
    (`both` keeps conll as the headline)."""
    headline = {"string" if r.get("scorer") == "string" else "conll" for r in rows}
    if headline == {"string"}:
        return [("F1, P and R by string match (--scorer string): type and case-insensitive string, each gold "
                 "mention matched once, as GoLLIE scores the TransFusion paper's figures")]
    if len(headline) > 1:
        return [("some cells' F1 is by string match (--scorer string), the others' by conll: compare F1 "
                 "only between cells of one scorer (results.json: scorer)")]
    return []


def write_results(out: Path, rows: Sequence[dict[str, Any]], title: str, notes: Sequence[str] = (),
                  *, plots: bool = True) -> list[str]:
    """Write results.md/.csv/.json, then the plots; returns notes about what could not be done.

    The tables come first and each file is attempted whatever happened to the others, so no plot
    can cost them: a plot that fails for any reason other than the disk is a one-line note (also
    in results.md/.json, which are then rewritten to list only the plots drawn), and its stale
    file from an earlier sweep is removed. Each file is replaced whole (atomic.py); the first
    file that cannot be written is then raised as one OutputError line.
    """
    from tf_prompt.runs.rundir import OutputError

    extra: list[str] = []
    plotters: list[tuple[str, Callable[[Sequence[dict[str, Any]], Path], Any]]] = []
    if plots and rows:
        try:
            from tf_prompt.experiments.plots import plot_cost_vs_f1, plot_f1_by_language
        except ImportError:
            extra.append("plots skipped: matplotlib is not installed (pip install matplotlib)")
        else:
            plotters = [("f1_by_language.png", plot_f1_by_language), ("cost_vs_f1.png", plot_cost_vs_f1)]
    avg, gs = averages(rows), gains(rows)

    def csv_table(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["kind", *CELL_COLUMNS], extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({"kind": "cell", **r})
            for a in avg:
                writer.writerow({"kind": "average", **a})
            for g in gs:
                writer.writerow({"kind": "gain", "model": g["model"], "language": g["language"],
                                 "method": "transfusion-direct", "prompt": g["prompt"], "f1": g["gain"]})

    def summaries(plot_files: list[str]) -> list[tuple[str, Callable[[Path], None]]]:
        all_notes = [*notes, *extra]
        return [
            ("results.md", lambda path: atomic.write_text(path, format_results(rows, title, all_notes))),
            ("results.json", lambda path: atomic.write_text(path, json.dumps(
                {"title": title, "cells": list(rows), "averages": avg, "gains": gs, "notes": all_notes,
                 "plots": plot_files}, indent=2, ensure_ascii=False) + "\n")),
        ]

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the sweep folder ({e.strerror or e})") from None
    failures: dict[str, str] = {}

    def attempt(writers: Sequence[tuple[str, Callable[[Path], None]]]) -> None:
        for name, write in writers:
            try:
                write(out / name)
            except OSError as e:
                failures.setdefault(name, f"{out / name}: cannot write ({e.strerror or e})")
            else:
                failures.pop(name, None)

    planned = [name for name, _ in plotters]
    attempt([*summaries(planned), ("results.csv", lambda path: _replace_with(path, csv_table))])
    drawn = []
    for name, plot in plotters:
        try:
            _replace_with(out / name, functools.partial(plot, rows))
        except OSError as e:
            failures.setdefault(name, f"{out / name}: cannot write ({e.strerror or e})")
        except Exception as e:   # matplotlib: any figure it cannot draw; the results stand without it
            reason = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
            extra.append(f"{name} not drawn ({type(e).__name__}{': ' + reason[:120] if reason else ''})"
                         + _removed_stale(out / name))
        else:
            drawn.append(name)
    if drawn != planned:   # say so where the results are read, and list only the plots drawn
        attempt(summaries(drawn))
    if failures:
        first, *rest = failures.values()
        more = f" (and {len(rest)} more)" if rest else ""
        raise OutputError(f"{first}{more}; the other results were written, and each cell's run folder is kept")
    return extra


def _removed_stale(path: Path) -> str:
    """Remove an earlier sweep's plot that this sweep could not redraw (it shows other results)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return ""
    except OSError:
        return f"; {path.name} from an earlier sweep is still there"
    return f"; the earlier {path.name} was removed"


def _replace_with(path: Path, write: Callable[[Path], Any]) -> None:
    """Run a writer that needs a file name, so that `path` is replaced whole (atomic.py)."""
    with atomic.replacing(path) as tmp:
        write(tmp)
