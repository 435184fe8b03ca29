"""Rows of a run (rows.py) as one HTML page: what each part of the page shows, rendered by the
autoescaped Jinja template report.html.jinja with report.css and report.js inlined.

The page is a single file, so it can be mailed, archived next to the run and opened from file://
with no server and nothing fetched from the network. This module decides *what* is shown (the
figures, the error lines, which label gets which colour); the template decides the markup and
escapes every value, so nothing taken from the run can become markup.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tf_prompt.experiments.report.rows import CLEAN, NOTE_KINDS, SENTENCE_KINDS, Row
from tf_prompt.scoring.errors import ENTITY_KINDS, TokenSpan
from tf_prompt.util.formatting import pct
from tf_prompt.util.redact import redact_text

if TYPE_CHECKING:
    import jinja2

#: Label colours defined in report.css (.p0-.p7, .g0-.g7, .sw0-.sw7); labels past eight cycle.
PALETTE_SIZE = 8
#: How each kind is named on badges and on the filter bar.
KIND_TITLES = {k: k.replace("_", " ") for k in ENTITY_KINDS + SENTENCE_KINDS + NOTE_KINDS} | {CLEAN: "no error"}


class Entity(NamedTuple):
    """An entity as the page writes it: its words and its label."""

    text: str
    label: str


class ErrorLine(NamedTuple):
    """One line of a sentence's errors: its kinds (a pair wrong in boundary and type has two) and
    the gold and predicted entity it is about."""

    kinds: list[str]
    gold: Entity | None
    pred: Entity | None


class _Colours:
    """Label -> colour index, in first-seen order (the run's labels first, as in its settings)."""

    def __init__(self, labels: Sequence[str]):
        self.index: dict[str, int] = {}
        for label in labels:
            self.index.setdefault(label, len(self.index))

    def __call__(self, label: str) -> int:
        return self.index.setdefault(label, len(self.index)) % PALETTE_SIZE


def _entity(tokens: Sequence[str], span: TokenSpan | None) -> Entity | None:
    return None if span is None else Entity(" ".join(tokens[span.start:span.end]), span.label)


def _mentions(items: Any) -> list[Entity] | None:
    """Mentions from the trace (dicts with text and type); None when there are none."""
    if not items:
        return None
    return [Entity(str(m.get("text", "")), str(m.get("type", ""))) for m in items if isinstance(m, dict)]


def _segments(row: Row, colour: _Colours) -> list[tuple[str, str]]:
    """The sentence cut at every entity boundary (gold or predicted) into (text, CSS classes):
    predicted spans as backgrounds (`pN`, with `b`/`e` at their first and last segment), gold
    spans as underlines (`gN`). One element per segment, not per token."""
    text = row.text
    pred, gold = row.pred_spans, row.gold_spans or []
    if row.offsets is None or (not pred and not gold):
        return [(text, "")]
    cuts = {0, len(text)}
    span_chars = []
    for kind, spans in (("p", pred), ("g", gold)):
        for s in spans:
            a, b = row.offsets[s.start][0], row.offsets[s.end - 1][1]
            cuts.update((a, b))
            span_chars.append((kind, a, b, s.label))
    bounds = sorted(cuts)
    out = []
    for a, b in itertools.pairwise(bounds):
        classes = []
        for kind, sa, sb, label in span_chars:
            if sa <= a and b <= sb:
                classes.append(f"{kind}{colour(label)}")
                if kind == "p" and sa == a:
                    classes.append("b")
                if kind == "p" and sb == b:
                    classes.append("e")
        out.append((text[a:b], " ".join(classes)))
    return out


def _errors(row: Row) -> list[ErrorLine]:
    """Errors in sentence order; the two items of a boundary+type pair share one line."""
    lines: list[ErrorLine] = []
    seen: dict[tuple[TokenSpan | None, TokenSpan | None], int] = {}
    for it in row.items:
        if it.kind == "correct":
            continue
        key = (it.gold, it.pred)
        if it.gold is not None and it.pred is not None and key in seen:
            lines[seen[key]].kinds.insert(0, it.kind)
            continue
        seen[key] = len(lines)
        lines.append(ErrorLine([it.kind], _entity(row.tokens, it.gold), _entity(row.tokens, it.pred)))
    return lines


def _row(row: Row, colour: _Colours) -> dict[str, Any]:
    """What the page shows of one sentence."""
    t = row.trace
    kinds = sorted(row.kinds)
    return {
        "index": t.get("index", ""), "kinds": kinds, "badges": [k for k in kinds if k != "correct"],
        "segments": _segments(row, colour),
        "translation": t.get("translation"),
        "has_english": t.get("english_entities") is not None, "english": _mentions(t.get("english_entities")),
        "same": row.gold_spans == row.pred_spans,   # the common case: one list instead of two identical ones
        "pred": [_entity(row.tokens, s) for s in row.pred_spans],
        "gold": None if row.gold_spans is None else [_entity(row.tokens, s) for s in row.gold_spans],
        "errors": _errors(row),
        "troubles": [(title, _mentions(t[key])) for key, title in (
            ("hallucinated", "hallucinated"), ("unaligned", "unaligned"), ("unknown_labels", "unknown labels"))
            if t.get(key)],
        "pivot_skipped": t.get("pivot_skipped"),
        "failures": [(title, step, redact_text(str(msg)))
                     for key, title in (("parse_failures", "parse failure"), ("errors", "call error"))
                     for step, msg in (t.get(key) or {}).items()],
        "replies": [(step, (t.get("templates") or {}).get(step, ""), reply)
                    for step, reply in (t.get("replies") or {}).items()],
    }


def _header(metrics: dict[str, Any], rows: Sequence[Row], run_dir: Path) -> dict[str, Any]:
    """The run's settings, its headline figures and the per-type table."""
    settings = metrics.get("settings") or {}
    templates = settings.get("templates") or {}
    data = settings.get("data_path") or settings.get("data") or "sample"
    info = [("run", str(run_dir)), ("model", settings.get("model")), ("method", settings.get("method")),
            ("style", settings.get("style")), ("data", data), ("language", settings.get("language")),
            ("labels", ", ".join(settings.get("labels") or []) or None), ("shots", settings.get("shots")),
            ("templates", ", ".join(f"{k}: {v}" for k, v in templates.items()) or None),
            ("constrain", settings.get("constrain")),
            ("scorer", metrics.get("scorer")),   # which rules made the F1 below (absent: conll, before --scorer)
            ("pivot check", None if "pivot_check" not in settings else "on" if settings["pivot_check"] else "off")]
    usage = metrics.get("usage") or {}
    cost = usage.get("cost_usd")
    cards = [("F1", _pct(metrics.get("f1"))), ("precision", _pct(metrics.get("precision"))),
             ("recall", _pct(metrics.get("recall"))), ("sentences", len(rows)),
             ("parse failures", metrics.get("parse_failures",
                                            sum(len(r.trace.get("parse_failures") or {}) for r in rows))),
             ("hallucinated", metrics.get("hallucinated", sum(len(r.trace.get("hallucinated") or []) for r in rows))),
             ("unaligned", metrics.get("unaligned", sum(len(r.trace.get("unaligned") or []) for r in rows))),
             ("failed sentences", metrics.get("failed_sentences", sum(1 for r in rows if r.trace.get("failed"))))]
    strings = metrics.get("string_match")   # --scorer both: the paper's figure beside the headline
    if isinstance(strings, dict) and strings.get("f1") is not None:
        cards.insert(3, ("string-match F1", _pct(strings.get("f1"))))
    if settings.get("pivot_check"):
        cards.append(("pivot skipped", metrics.get("pivot_skipped",
                                                   sum(1 for r in rows if r.trace.get("pivot_skipped")))))
    if usage:
        cards += [("calls", usage.get("calls")), ("cache hits", usage.get("cache_hits")),
                  ("tokens", f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)}"),
                  ("cost", "unknown" if cost is None else f"${cost:.4f}")]
    per = metrics.get("per_type") or {}
    return {
        "info": [(k, v) for k, v in info if v not in (None, "")], "cards": cards,
        "per_type": [(name, _pct(v.get("precision")), _pct(v.get("recall")), _pct(v.get("f1")), v.get("support", ""))
                     for name, v in sorted(per.items())],
        "micro": (_pct(metrics.get("precision")), _pct(metrics.get("recall")), _pct(metrics.get("f1")),
                  metrics.get("support", "")),
    }


def _pct(x: Any) -> str:
    return pct(x, missing="–")


def _filters(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(kind, count, tooltip) per checkbox: 'N in M' counts N entities/events in M sentences."""
    items = Counter(it.kind for r in rows for it in r.items)
    for r in rows:
        t = r.trace
        items["parse_failure"] += len(t.get("parse_failures") or {})
        items["hallucinated"] += len(t.get("hallucinated") or [])
        items["unaligned"] += len(t.get("unaligned") or [])
        items["failed"] += bool(t.get("failed"))
        items[CLEAN] += CLEAN in r.kinds
    sentences = Counter(k for r in rows for k in r.kinds)
    out = []
    for kind in ENTITY_KINDS + SENTENCE_KINDS + NOTE_KINDS + (CLEAN,):
        if kind in ("failed", "unaligned", *NOTE_KINDS) and not sentences[kind]:
            continue
        if kind == CLEAN or kind in NOTE_KINDS:   # one per sentence: a plain count
            count = f"{sentences[kind]}"
            tip = (f"{KIND_TITLES[kind]}: sentences answered with the direct view, their translation turned "
                   "down by the pivot check; show only those sentences" if kind in NOTE_KINDS
                   else f"{KIND_TITLES[kind]}: sentences with none of the errors; show only those sentences")
        else:
            count = f"{items[kind]} in {sentences[kind]}"
            tip = f"{KIND_TITLES[kind]}: N in M = N entities (or events) in M sentences; show only those sentences"
        out.append((kind, count, tip))
    return out


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    """The page template, compiled once; its indentation and line breaks are for reading only."""
    import jinja2
    from markupsafe import Markup

    files = resources.files(__package__)
    source = "".join(line.strip() for line in files.joinpath("report.html.jinja").read_text("utf-8").splitlines())
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    # our own package files, the only markup not escaped
    env.globals.update(css=Markup(files.joinpath("report.css").read_text("utf-8")),
                       js=Markup(files.joinpath("report.js").read_text("utf-8")), titles=KIND_TITLES)
    return env.from_string(source)


def render_page(run_dir: Path, metrics: dict[str, Any], rows: Sequence[Row], labels: Sequence[str],
                notes: Sequence[str]) -> str:
    """The whole page of a run: header, filter bar, legend and one section per sentence."""
    settings = metrics.get("settings") or {}
    colour = _Colours([*labels, *sorted({s.label for r in rows for s in (r.gold_spans or []) + r.pred_spans})])
    sentences = [_row(r, colour) for r in rows]
    return _template().render(
        title=f"tf-prompt report: {settings.get('method', '')} {settings.get('model', '')} {run_dir.name}",
        notes=notes, filters=_filters(rows), rows=sentences,
        legend=[(label, colour(label)) for label in colour.index], **_header(metrics, rows, run_dir))
