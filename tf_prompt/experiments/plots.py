"""Figures of a sweep, as PNG files: F1 by language, and cost against F1.

matplotlib is imported inside each function: it takes about a second to import, and only
`tf-prompt sweep` draws anything. Figures are drawn on a `Figure` with the Agg canvas, never
through pyplot, so no GUI backend is touched and a notebook's pyplot state is left alone.

`rows` are the sweep's cell rows (dicts with model, language, method, prompt, f1, cost_usd,
prompt_tokens, completion_tokens; F1 as 0-1 floats or None).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

Row = dict[str, Any]
Key = tuple[str, str, str]   # (model, method, prompt): one series
F = TypeVar("F", bound=Callable[..., Any])


def _text_as_typed(draw: F) -> F:
    """Draw with mathtext and TeX off: model, dataset and prompt names are user text, and a `$`
    in one (`x$\\nocmd{$y`) must be shown as typed, not parsed (which fails the whole figure);
    a matplotlibrc that turns on usetex is ignored for the same reason. Our own labels use neither.
    """
    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return draw(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _series(rows: Sequence[Row]) -> dict[Key, list[Row]]:
    """Rows grouped by (model, method, prompt), in order of first appearance."""
    groups: dict[Key, list[Row]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"], r["prompt"]), []).append(r)
    return groups


def series_labels(keys: Sequence[Key]) -> dict[Key, str]:
    """Legend labels naming only what varies: "transfusion", or "gpt-4o · transfusion · gollie"."""
    several_models = len({k[0] for k in keys}) > 1
    several_prompts = len({k[2] for k in keys}) > 1
    labels = {}
    for model, method, prompt in keys:
        parts = ([model] if several_models else []) + [method] + ([prompt] if several_prompts else [])
        labels[(model, method, prompt)] = " · ".join(parts)
    return labels


def _mean_f1(rows: Sequence[Row]) -> float | None:
    known = [r["f1"] for r in rows if r.get("f1") is not None]
    return 100 * sum(known) / len(known) if known else None


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


@_text_as_typed
def plot_f1_by_language(rows: Sequence[Row], path: str | Path) -> Path:
    """Grouped bars: one group per language plus an "avg" group, one bar per series.

    The average of each series over languages is its bar in the hatched "avg" group and a dashed
    line in its colour across the plot, so each language can be read against the mean.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    languages = list(dict.fromkeys(r["language"] for r in rows))
    groups = _series(rows)
    keys = list(groups)
    labels = series_labels(keys)
    colours = _colours(len(keys))
    n_groups = len(languages) + 1
    width = 0.8 / max(1, len(keys))
    fig = Figure(figsize=(max(6.0, 0.5 + n_groups * (0.35 + 0.22 * len(keys))), 4.8), layout="constrained")
    ax = fig.add_subplot()
    for j, key in enumerate(keys):
        offset = (j - (len(keys) - 1) / 2) * width
        f1 = {r["language"]: r["f1"] for r in groups[key]}
        heights = [100 * f1[lang] if f1.get(lang) is not None else math.nan for lang in languages]
        ax.bar([i + offset for i in range(len(languages))], heights, width, color=colours[j], label=labels[key])
        avg = _mean_f1(groups[key])
        if avg is None:
            continue
        ax.bar(len(languages) + offset, avg, width, color=colours[j], hatch="//", edgecolor="white")
        ax.text(len(languages) + offset, avg + 1, f"{avg:.1f}", ha="center", va="bottom", fontsize=8)
        ax.axhline(avg, color=colours[j], linestyle="--", linewidth=1, alpha=0.8)
    ax.axvline(len(languages) - 0.5, color="0.6", linewidth=0.8)
    ax.set_xticks(range(n_groups), [*languages, "avg"])
    ax.set_xlim(-0.6, n_groups - 0.4)
    ax.set_ylim(0, 108)
    ax.set_ylabel("F1 (%, entity-level micro)")
    ax.set_xlabel("language (avg: macro average; dashed lines: each series' average)")
    ax.set_title("F1 by language")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    fig.savefig(path, dpi=120)
    return path


@_text_as_typed
def plot_cost_vs_f1(rows: Sequence[Row], path: str | Path) -> Path:
    """One labelled point per series: total cost (x) against average F1 over languages (y).

    When any series' cost is unknown (no price) or every cost is zero (a local or fully cached
    run), x is total tokens instead, and the axis label says so, so the plot never silently
    shows a meaningless $0.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    groups = _series(rows)
    keys = list(groups)
    labels = series_labels(keys)
    colours = _colours(len(keys))
    costs = [[r.get("cost_usd") for r in groups[k]] for k in keys]
    use_cost = all(c is not None for cs in costs for c in cs) and any(c for cs in costs for c in cs)
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for j, key in enumerate(keys):
        rs = groups[key]
        x = (sum(r["cost_usd"] for r in rs) if use_cost
             else sum(r.get("prompt_tokens", 0) + r.get("completion_tokens", 0) for r in rs))
        y = _mean_f1(rs)
        if y is None:
            continue
        ax.scatter([x], [y], s=60, color=colours[j], zorder=3)
        ax.annotate(labels[key], (x, y), xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_xlabel("total cost (USD)" if use_cost
                  else "total tokens, prompt + completion (cost unknown or zero)")
    ax.set_ylabel("average F1 over languages (%)")
    ax.set_ylim(0, 108)
    ax.margins(x=0.25)
    ax.grid(True, alpha=0.3)
    ax.set_title("Cost vs F1")
    fig.savefig(path, dpi=120)
    return path
