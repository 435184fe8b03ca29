"""`tf-prompt report RUN_DIR`: one static HTML page to read a run sentence by sentence.

Numbers (metrics.json) say how good a run is; this page says *why*: every sentence with gold and
predicted entities drawn on the text, the translation and English entities TransFusion went
through, the raw replies, and an entity-level error class (missed, spurious, wrong type, wrong
boundary) plus the pipeline's own troubles (parse failure, hallucinated mention, failed call).

The page is a single file with inline CSS and a little vanilla JS, so it can be mailed, archived
next to the run and opened from file:// with no server and nothing fetched from the network.
Everything taken from the run (sentences, replies, labels, settings) is untrusted text and goes
through html.escape; labels become CSS classes only as indices, never by name.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import webbrowser
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from tf_prompt.util import atomic
from tf_prompt.spans.align import bio_to_spans
from tf_prompt.data.conll import conll_columns, physical_lines
from tf_prompt.util.redact import redact_text

__all__ = ["ErrorItem", "TokenSpan", "ReportError", "classify_errors", "classify_spans", "tag_spans", "build_report",
           "add_report_parser", "cmd_report", "kind_counts", "ENTITY_KINDS", "SENTENCE_KINDS"]

#: Entity-level kinds produced by classify_errors, in display order.
ENTITY_KINDS = ("correct", "missed", "spurious", "wrong_type", "wrong_boundary")
#: Sentence-level kinds read from the trace (not derivable from tags).
SENTENCE_KINDS = ("parse_failure", "hallucinated", "unaligned", "failed")
#: Pseudo-kind for the filter: sentences with none of the error kinds.
CLEAN = "clean"
_ERRORS = frozenset(ENTITY_KINDS[1:] + SENTENCE_KINDS)
_KIND_TITLE = {k: k.replace("_", " ") for k in ENTITY_KINDS + SENTENCE_KINDS + (CLEAN,)}
_KIND_TITLE[CLEAN] = "no error"

# Background (prediction) and underline (gold) colour per label index; cycles past eight labels.
_PALETTE = [("#ffd6a5", "#d46a00"), ("#b9fbc0", "#2b9348"), ("#a0e7ff", "#0067a3"),
            ("#ffc6ff", "#a4138f"), ("#fdffb6", "#8a8500"), ("#d0c4ff", "#5a3fc0"),
            ("#ffadad", "#c1121f"), ("#d9d9d9", "#444444")]


class ReportError(ValueError):
    """A run folder that cannot be reported on; ``str(e)`` is one line naming the file."""


@dataclass(frozen=True, order=True)
class TokenSpan:
    """An entity as token indices ``[start, end)`` and a label."""

    start: int
    end: int
    label: str

    def overlaps(self, other: "TokenSpan") -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class ErrorItem:
    """One entity-level outcome: a gold span, a predicted span, or a pair of them.

    ``kind`` is one of ENTITY_KINDS. A gold and a predicted span that overlap with different
    boundaries *and* different labels yield two items (``wrong_boundary`` and ``wrong_type``) for
    the same pair, so each filter finds the sentence and neither error hides the other.
    """

    kind: str
    gold: TokenSpan | None = None
    pred: TokenSpan | None = None

    @property
    def position(self) -> tuple[int, int]:
        """Sort key: where in the sentence this happens."""
        spans = [s for s in (self.gold, self.pred) if s is not None]
        return (min(s.start for s in spans), min(s.end for s in spans))


def tag_spans(tags: Sequence[str]) -> list[TokenSpan]:
    """IOB2 tags -> token spans, decoded exactly like the scorer (lenient, seqeval-style)."""
    offsets = [(i, i + 1) for i in range(len(tags))]
    text = "x" * len(tags)
    return [TokenSpan(s.start, s.end, s.label) for s in bio_to_spans(text, offsets, list(tags))]


def classify_errors(gold_tags: Sequence[str], pred_tags: Sequence[str]) -> list[ErrorItem]:
    """Compare gold and predicted entities of one sentence; items sorted by position.

    correct: same span, same label. wrong_type: same span, other label. wrong_boundary: spans
    overlap but differ (one item per overlapping pair, so a split entity gives two). missed: gold
    span no prediction overlaps. spurious: predicted span no gold overlaps.
    """
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold tags but {len(pred_tags)} predicted tags")
    return classify_spans(tag_spans(gold_tags), tag_spans(pred_tags))


def classify_spans(gold: Sequence[TokenSpan], pred: Sequence[TokenSpan]) -> list[ErrorItem]:
    """classify_errors on already decoded spans (the report decodes each sentence once)."""
    items: list[ErrorItem] = []
    gold_hit: set[TokenSpan] = set()
    for p in pred:
        hits = [g for g in gold if g.overlaps(p)]
        if not hits:
            items.append(ErrorItem("spurious", pred=p))
        for g in hits:
            gold_hit.add(g)
            same_span = (g.start, g.end) == (p.start, p.end)
            if same_span:
                items.append(ErrorItem("correct" if g.label == p.label else "wrong_type", g, p))
                continue
            items.append(ErrorItem("wrong_boundary", g, p))
            if g.label != p.label:
                items.append(ErrorItem("wrong_type", g, p))
    items += [ErrorItem("missed", gold=g) for g in gold if g not in gold_hit]
    items.sort(key=lambda it: it.position)
    return items


# -- reading a run folder -------------------------------------------------------------------------

@dataclass
class _Row:
    """One sentence as the page shows it (tokens, offsets, tags, trace, outcomes)."""

    trace: dict[str, Any]
    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]] | None  # None: tokens could not be placed in the text
    gold: list[str] | None
    pred: list[str]
    gold_spans: list[TokenSpan] | None = None
    pred_spans: list[TokenSpan] = field(default_factory=list)
    items: list[ErrorItem] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _number(value: Any) -> bool:
    """A JSON number (true/false are not scores, though Python counts bool as int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Every field the page reads has the type a run writes; else one line naming the key."""
    def bad(key: str, want: str) -> ReportError:
        return ReportError(f"{path}: {key!r} should be {want}, got {json.dumps(metrics_get(key))[:40]}")

    def metrics_get(key: str) -> Any:
        value: Any = metrics
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    for key in ("f1", "precision", "recall"):
        if metrics.get(key) is not None and not _number(metrics[key]):
            raise bad(key, "a number or null")
    for key in ("settings", "usage", "per_type"):
        if metrics.get(key) is not None and not isinstance(metrics[key], dict):
            raise bad(key, "an object")
    for label, v in (metrics.get("per_type") or {}).items():
        if not isinstance(v, dict) or not all(_number(v.get(k)) for k in ("precision", "recall", "f1", "support")):
            raise bad(f"per_type.{label}", "an object with numbers precision, recall, f1, support")
    settings = metrics.get("settings") or {}
    labels = settings.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise bad("settings.labels", "a list of strings")
    if settings.get("templates") is not None and not isinstance(settings["templates"], dict):
        raise bad("settings.templates", "an object")
    usage = metrics.get("usage") or {}
    if usage.get("cost_usd") is not None and not _number(usage["cost_usd"]):
        raise bad("usage.cost_usd", "a number or null")


def _tags(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _check_record(rec: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a trace line that a run would never write."""
    for key in ("replies", "templates", "parse_failures", "errors"):
        if rec.get(key) is not None and not isinstance(rec[key], dict):
            raise ValueError(f"{key!r} should be an object")
    for key in ("english_entities", "hallucinated", "unaligned", "unknown_labels"):
        if rec.get(key) is not None and not isinstance(rec[key], list):
            raise ValueError(f"{key!r} should be a list")
    if rec.get("predicted") is not None and not _tags(rec["predicted"]):
        raise ValueError("'predicted' should be a list of tags")
    if rec.get("gold") is not None and not _tags(rec["gold"]):
        raise ValueError("'gold' should be a list of tags or null")
    if "index" in rec and not (isinstance(rec["index"], int) and not isinstance(rec["index"], bool)):
        raise ValueError("'index' should be a whole number")


def _read_trace(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Trace lines by sentence index; a torn last line (a killed run) is skipped with a note."""
    if not path.is_file():
        raise ReportError(f"{path}: not found (is this a tf-prompt run folder?)")
    try:
        lines = physical_lines(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror or e})") from None
    by_index: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("source"), str):
                raise ValueError("not a trace record")
            _check_record(rec)
            idx = int(rec.get("index", n - 1))
        except (ValueError, TypeError) as e:
            if n == len(lines):
                notes.append(f"trace.jsonl: last line {n} is incomplete and was skipped")
                break
            raise ReportError(f"{path}:{n}: invalid trace line ({e})") from None
        by_index[idx] = rec
    return [by_index[i] for i in sorted(by_index)]


def _read_predictions(path: Path) -> list[tuple[list[str], list[str] | None, list[str]]] | None:
    """predictions.conll as (tokens, gold or None, pred) per sentence; None when absent."""
    if not path.is_file():
        return None
    out: list[tuple[list[str], list[str] | None, list[str]]] = []
    toks: list[str] = []
    gold: list[str] = []
    pred: list[str] = []

    def flush() -> None:
        if toks:
            out.append((toks[:], None if all(g == "-" for g in gold) else gold[:], pred[:]))
        toks.clear(), gold.clear(), pred.clear()

    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror or e})") from None
    # The CoNLL reader's rules (tf_prompt/data/conll.py): lines end at \n, \r\n or \r only, columns
    # are split at ASCII spaces and tabs only, so a token holding U+2028 or a form feed stays whole.
    for n, line in enumerate(physical_lines(text), 1):
        cols = conll_columns(line)
        if not cols or line.isspace():
            flush()
            continue
        if len(cols) < 3:
            raise ReportError(f"{path}:{n}: expected 'token GOLD PRED', got {line[:60]!r}")
        toks.append(cols[0])
        gold.append(cols[-2])
        pred.append(cols[-1])
    flush()
    return out


def _place(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Character offsets of each token in `text`, searched left to right; None if one is missing.

    CoNLL sentences are tokens joined by single spaces, raw-text input keeps its own spacing: a
    left-to-right search handles both without knowing which one the run used.
    """
    offsets = []
    pos = 0
    for tok in tokens:
        start = text.find(tok, pos)
        if start < 0:
            return None
        offsets.append((start, start + len(tok)))
        pos = start + len(tok)
    return offsets


def _restrict(tags: Sequence[str], labels: set[str] | None) -> list[str]:
    """Gold of types outside the run's labels becomes O, as in scoring (no false 'missed')."""
    if labels is None:
        return list(tags)
    return [t if t == "O" or t.split("-", 1)[-1] in labels else "O" for t in tags]


def _load_rows(run_dir: Path, labels: set[str] | None, notes: list[str]) -> list[_Row]:
    traces = _read_trace(run_dir / "trace.jsonl", notes)
    conll = _read_predictions(run_dir / "predictions.conll")
    if conll is not None and len(conll) != len(traces):
        notes.append(f"predictions.conll has {len(conll)} sentences, trace.jsonl {len(traces)}: "
                     "tokens matched by text where possible")
        by_text: dict[str, Any] = {}
        for c in conll:
            by_text.setdefault(" ".join(c[0]), c)
        conll_for = [by_text.get(t["source"]) for t in traces]
    elif conll is not None:
        conll_for = list(conll)
    else:
        conll_for = [None] * len(traces)
    disagree = 0
    rows = []
    for t, c in zip(traces, conll_for):
        text = t["source"]
        t_pred = list(t.get("predicted") or [])
        t_gold = t.get("gold")
        if c is not None:
            tokens, gold, pred = c
            disagree += (pred != t_pred) or (t_gold is not None and gold is not None and gold != list(t_gold))
        else:
            tokens = text.split(" ")
            gold = list(t_gold) if t_gold is not None else None
            pred = t_pred
            if len(tokens) != len(pred):
                from tf_prompt.data.conll import tokenize  # raw-text input: the run's own tokenizer

                tokens = [tok for tok, _, _ in tokenize(text)]
        if len(pred) != len(tokens):  # failed sentence with no tags, or a mangled line
            pred = ["O"] * len(tokens)
        if gold is not None and len(gold) != len(tokens):
            gold = None
        offsets = _place(text, tokens)
        if offsets is None:
            text = " ".join(tokens)
            offsets = _place(text, tokens)
        rows.append(_Row(trace=t, text=text, tokens=tokens, offsets=offsets,
                         gold=_restrict(gold, labels) if gold is not None else None, pred=pred))
    if disagree:
        notes.append(f"{disagree} sentence(s) have tags in trace.jsonl that differ from "
                     "predictions.conll; predictions.conll was used")
    for row in rows:
        row.pred_spans = tag_spans(row.pred)
        if row.gold is not None:
            row.gold_spans = tag_spans(row.gold)
            row.items = classify_spans(row.gold_spans, row.pred_spans)
        row.kinds = {it.kind for it in row.items}
        t = row.trace
        for kind, present in (("parse_failure", t.get("parse_failures")), ("hallucinated", t.get("hallucinated")),
                              ("unaligned", t.get("unaligned")), ("failed", t.get("failed"))):
            if present:
                row.kinds.add(kind)
        if not row.kinds & _ERRORS:
            row.kinds.add(CLEAN)
    return rows


# -- rendering ------------------------------------------------------------------------------------

def _e(x: Any) -> str:
    """Escape for attributes (quotes too)."""
    return html.escape(str(x), quote=True)


def _t(x: Any) -> str:
    """Escape for text nodes: quotes are harmless there, and JSON replies are full of them."""
    return html.escape(str(x), quote=False)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}"


_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}
header,main{max-width:1200px;margin:0 auto;padding:12px 20px}
h1{font-size:20px;margin:8px 0}
h2{font-size:16px;margin:14px 0 6px}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:11px;text-transform:uppercase;color:#5b6470;letter-spacing:.04em}
.big{font-size:22px;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dt{color:#5b6470}dd{margin:0;word-break:break-word}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #dde1e6;padding:3px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
.note{background:#fff4ce;border:1px solid #e6c74c;border-radius:6px;padding:6px 10px;margin:6px 0}
#bar{position:sticky;top:0;z-index:2;background:#f6f7f9ee;border-bottom:1px solid #dde1e6;padding:8px 20px}
#bar .in{max-width:1160px;margin:0 auto;display:flex;flex-wrap:wrap;gap:6px;align-items:center}
#bar label{border:1px solid #c5ccd4;border-radius:14px;padding:2px 10px;background:#fff;cursor:pointer;user-select:none}
#bar label:has(input:checked){background:#1f4f8f;color:#fff;border-color:#1f4f8f}
#bar input[type=checkbox]{margin:0 4px 0 0;vertical-align:-1px}
#q{padding:4px 8px;border:1px solid #c5ccd4;border-radius:4px;min-width:220px}
#shown{color:#5b6470;margin-left:auto}
.legend span{margin-right:10px;white-space:nowrap}
.s{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 12px;margin:8px 0}
.s[hidden]{display:none}
.hd{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.ix{font-weight:600;color:#5b6470}
.src{font-size:16px;line-height:2.1;margin:2px 0}
.src span{padding:2px 0}
.tr{color:#333;font-style:italic}
.lists{display:grid;grid-template-columns:max-content 1fr;gap:1px 10px;margin-top:4px;font-size:13px}
.lists>b{color:#5b6470;font-weight:500}
.k{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;color:#fff;background:#5b6470;margin-right:3px}
.k-correct{background:#2b9348}.k-missed{background:#c1121f}.k-spurious{background:#d46a00}
.k-wrong_type{background:#7b2cbf}.k-wrong_boundary{background:#0067a3}.k-parse_failure{background:#444}
.k-hallucinated{background:#a4138f}.k-unaligned{background:#8a8500}
.k-failed{background:#000}.k-clean{background:#2b9348}
.lists i,.lab{font-style:normal;white-space:nowrap;margin-right:8px}
.lists i b,.lab,small{font-size:11px;font-weight:600;color:#444}
details{margin-top:4px}summary{cursor:pointer;color:#1f4f8f}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f4f6;padding:6px;margin:4px 0;font-size:12px}
"""

_JS = """
(function(){
var rows=Array.prototype.slice.call(document.querySelectorAll('#sents>.s'));
var boxes=Array.prototype.slice.call(document.querySelectorAll('#bar input[type=checkbox]'));
var q=document.getElementById('q'),shown=document.getElementById('shown'),hay=null;
function kinds(){return boxes.filter(function(b){return b.checked}).map(function(b){return b.value})}
function apply(){
 var ks=kinds(),term=q.value.trim().toLowerCase(),n=0;
 if(term&&!hay){hay=rows.map(function(r){return r.textContent.toLowerCase()})}
 for(var i=0;i<rows.length;i++){
  var r=rows[i],mine=' '+r.getAttribute('data-k')+' ',ok=!ks.length;
  for(var j=0;j<ks.length&&!ok;j++){if(mine.indexOf(' '+ks[j]+' ')>=0)ok=true}
  if(ok&&term)ok=hay[i].indexOf(term)>=0;
  if(r.hidden===ok)r.hidden=!ok;
  if(ok)n++;
 }
 shown.textContent='showing '+n+' of '+rows.length;
}
function save(){
 var parts=[],ks=kinds();
 if(ks.length)parts.push('filter='+ks.join(','));
 if(q.value)parts.push('q='+encodeURIComponent(q.value));
 try{history.replaceState(null,'',parts.length?'#'+parts.join('&'):location.pathname+location.search)}catch(e){}
}
function load(){
 var h=location.hash.replace(/^#/,''),want=[],term='';
 h.split('&').forEach(function(p){
  var kv=p.split('=');
  if(kv[0]==='filter'&&kv[1])want=decodeURIComponent(kv[1]).split(',');
  if(kv[0]==='q'&&kv[1])term=decodeURIComponent(kv[1]);
 });
 boxes.forEach(function(b){b.checked=want.indexOf(b.value)>=0});
 q.value=term;apply();
}
boxes.forEach(function(b){b.addEventListener('change',function(){apply();save()})});
var timer=null;
q.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(function(){apply();save()},120)});
document.getElementById('clear').addEventListener('click',function(){
 boxes.forEach(function(b){b.checked=false});q.value='';apply();save()});
window.addEventListener('hashchange',load);
load();
})();
"""


class _Renderer:
    """Turns rows into HTML; holds the label -> colour index map shared by CSS and rows."""

    def __init__(self, labels: Iterable[str]):
        self.index: dict[str, int] = {}
        for lab in labels:
            self.index.setdefault(lab, len(self.index))

    def cls(self, label: str) -> int:
        return self.index.setdefault(label, len(self.index)) % len(_PALETTE)

    def css(self) -> str:
        rules = []
        for i, (bg, line) in enumerate(_PALETTE):
            rules.append(f".p{i}{{background:{bg}}}.g{i}{{text-decoration:underline 3px {line};"
                         f"text-underline-offset:5px;text-decoration-skip-ink:none}}"
                         f".sw{i}{{background:{bg};border-bottom:3px solid {line};padding:0 6px}}")
        rules.append(".src .b{box-shadow:inset 2px 0 0 #0006;border-top-left-radius:3px;border-bottom-left-radius:3px}"
                     ".src .e{border-top-right-radius:3px;border-bottom-right-radius:3px}")
        return _CSS + "".join(rules)

    def legend(self) -> str:
        out = "".join(f'<span><span class="sw{self.cls(lab)}">{_e(lab)}</span></span>' for lab in self.index)
        return (f'<div class="legend">{out} — background: predicted type; '
                f'underline: gold type; a dark left edge marks where a predicted entity starts</div>')

    def source(self, row: _Row) -> str:
        """The sentence with predicted spans as backgrounds and gold spans as underlines.

        The text is cut at every entity boundary (gold or predicted) into segments, each one
        <span> with the classes of what covers it: one element per segment, not per token.
        """
        text = row.text
        if row.offsets is None:
            return _e(text)
        pred, gold = row.pred_spans, row.gold_spans or []
        if not pred and not gold:
            return _e(text)
        cuts = {0, len(text)}
        span_chars = []
        for kind, spans in (("p", pred), ("g", gold)):
            for s in spans:
                a, b = row.offsets[s.start][0], row.offsets[s.end - 1][1]
                cuts.update((a, b))
                span_chars.append((kind, a, b, s.label))
        bounds = sorted(cuts)
        out = []
        for a, b in zip(bounds, bounds[1:]):
            classes = []
            for kind, sa, sb, label in span_chars:
                if sa <= a and b <= sb:
                    classes.append(f"{kind}{self.cls(label)}")
                    if kind == "p" and sa == a:
                        classes.append("b")
                    if kind == "p" and sb == b:
                        classes.append("e")
            seg = _t(text[a:b])
            out.append(f'<span class="{" ".join(classes)}">{seg}</span>' if classes else seg)
        return "".join(out)

    def ent(self, tokens: Sequence[str], s: TokenSpan | None) -> str:
        if s is None:
            return ""
        return f'<i>{_t(" ".join(tokens[s.start:s.end]))} <b>{_t(s.label)}</b></i>'

    def mentions(self, items: Sequence[dict[str, Any]] | None) -> str:
        if not items:
            return '<span class="lab">none</span>'
        return "".join(f'<i>{_t(m.get("text", ""))} <b>{_t(m.get("type", ""))}</b></i>'
                       for m in items if isinstance(m, dict))

    def outcome(self, row: _Row) -> str:
        """Errors in sentence order; the two items of a boundary+type pair share one line."""
        lines = []
        seen: dict[tuple, int] = {}
        for it in row.items:
            if it.kind == "correct":
                continue
            key = (it.gold, it.pred)
            badge = f'<span class="k k-{it.kind}">{_KIND_TITLE[it.kind]}</span>'
            if it.gold is not None and it.pred is not None and key in seen:
                lines[seen[key]] = badge + lines[seen[key]]
                continue
            if it.gold is not None and it.pred is not None:
                body = f"gold {self.ent(row.tokens, it.gold)} → predicted {self.ent(row.tokens, it.pred)}"
            elif it.gold is not None:
                body = f"gold {self.ent(row.tokens, it.gold)}"
            else:
                body = f"predicted {self.ent(row.tokens, it.pred)}"
            seen[key] = len(lines)
            lines.append(badge + body)
        return "<br>".join(lines)

    def row(self, row: _Row) -> str:
        t = row.trace
        kinds = sorted(row.kinds)
        badges = "".join(f'<span class="k k-{k}">{_KIND_TITLE[k]}</span>'
                         for k in kinds if k != "correct")
        parts = [f'<section class="s" id="s{_e(t.get("index", ""))}" data-k="{" ".join(kinds)}">',
                 f'<div class="hd"><span class="ix">#{_e(t.get("index", ""))}</span>{badges}</div>',
                 f'<div class="src">{self.source(row)}</div>', '<div class="lists">']
        if t.get("translation") is not None:
            parts.append(f'<b>translation</b><span class="tr">{_t(t["translation"])}</span>')
        if t.get("english_entities") is not None:
            parts.append(f"<b>English entities</b><span>{self.mentions(t['english_entities'])}</span>")
        pred, gold = row.pred_spans, row.gold_spans
        none = '<span class="lab">none</span>'
        if gold == pred:  # the common case: one list instead of two identical ones
            parts.append("<b>gold = predicted</b><span>" + ("".join(self.ent(row.tokens, s) for s in pred) or none)
                         + "</span>")
        else:
            parts.append("<b>predicted</b><span>" + ("".join(self.ent(row.tokens, s) for s in pred) or none)
                         + "</span>")
            if gold is not None:
                parts.append("<b>gold</b><span>" + ("".join(self.ent(row.tokens, s) for s in gold) or none)
                             + "</span>")
        errors = self.outcome(row)
        if errors:
            parts.append(f"<b>errors</b><span>{errors}</span>")
        for key, title in (("hallucinated", "hallucinated"), ("unaligned", "unaligned"),
                           ("unknown_labels", "unknown labels")):
            if t.get(key):
                parts.append(f"<b>{title}</b><span>{self.mentions(t[key])}</span>")
        for key, title in (("parse_failures", "parse failure"), ("errors", "call error")):
            for step, msg in (t.get(key) or {}).items():
                parts.append(f"<b>{title}</b><span>{_t(step)}: {_t(redact_text(str(msg)))}</span>")
        parts.append("</div>")
        replies = t.get("replies") or {}
        if replies:
            templates = t.get("templates") or {}
            body = "".join(f"<b>{_t(step)}</b> <small>{_t(templates.get(step, ''))}</small>"
                           f"<pre>{_t(reply)}</pre>" for step, reply in replies.items())
            parts.append(f"<details><summary>raw replies ({len(replies)})</summary>{body}</details>")
        parts.append("</section>")
        return "".join(parts)


def _header(metrics: dict[str, Any], rows: Sequence[_Row], run_dir: Path) -> str:
    settings = metrics.get("settings") or {}
    templates = settings.get("templates") or {}
    data = settings.get("data_path") or settings.get("data") or "sample"
    info = [("run", str(run_dir)), ("model", settings.get("model")), ("method", settings.get("method")),
            ("style", settings.get("style")), ("data", data), ("language", settings.get("language")),
            ("labels", ", ".join(settings.get("labels") or []) or None), ("shots", settings.get("shots")),
            ("templates", ", ".join(f"{k}: {v}" for k, v in templates.items()) or None)]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in info if v not in (None, ""))
    usage = metrics.get("usage") or {}
    cost = usage.get("cost_usd")
    cards = [("F1", _pct(metrics.get("f1"))), ("precision", _pct(metrics.get("precision"))),
             ("recall", _pct(metrics.get("recall"))), ("sentences", len(rows)),
             ("parse failures", metrics.get("parse_failures",
                                            sum(len(r.trace.get("parse_failures") or {}) for r in rows))),
             ("hallucinated", metrics.get("hallucinated", sum(len(r.trace.get("hallucinated") or []) for r in rows))),
             ("unaligned", metrics.get("unaligned", sum(len(r.trace.get("unaligned") or []) for r in rows))),
             ("failed sentences", metrics.get("failed_sentences", sum(1 for r in rows if r.trace.get("failed"))))]
    if usage:
        cards += [("calls", usage.get("calls")), ("cache hits", usage.get("cache_hits")),
                  ("tokens", f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)}"),
                  ("cost", "unknown" if cost is None else f"${cost:.4f}")]
    card_html = "".join(f'<div class="card"><b>{_e(k)}</b><span class="big">{_e(v)}</span></div>' for k, v in cards)
    return (f"<h1>tf-prompt report</h1><div class=\"grid\"><div class=\"card\"><dl>{dl}</dl></div></div>"
            f"<div class=\"grid\" style=\"margin-top:10px\">{card_html}</div>")


def _per_type(metrics: dict[str, Any]) -> str:
    per = metrics.get("per_type") or {}
    if not per:
        return ""
    body = "".join(f"<tr><td>{_e(name)}</td><td>{_pct(v.get('precision'))}</td><td>{_pct(v.get('recall'))}</td>"
                   f"<td>{_pct(v.get('f1'))}</td><td>{_e(v.get('support', ''))}</td></tr>"
                   for name, v in sorted(per.items()))
    body += (f"<tr><th>micro</th><th>{_pct(metrics.get('precision'))}</th><th>{_pct(metrics.get('recall'))}</th>"
             f"<th>{_pct(metrics.get('f1'))}</th><th>{_e(metrics.get('support', ''))}</th></tr>")
    return ("<h2>Per type</h2><table><tr><th>type</th><th>P</th><th>R</th><th>F1</th><th>support</th></tr>"
            f"{body}</table>")


def _filter_bar(rows: Sequence[_Row]) -> str:
    """Checkboxes labelled 'kind N (M sentences)': N counts entities/events, M sentences shown."""
    items = Counter(it.kind for r in rows for it in r.items)
    for r in rows:
        t = r.trace
        items["parse_failure"] += len(t.get("parse_failures") or {})
        items["hallucinated"] += len(t.get("hallucinated") or [])
        items["unaligned"] += len(t.get("unaligned") or [])
        items["failed"] += bool(t.get("failed"))
        items[CLEAN] += CLEAN in r.kinds
    sentences = Counter(k for r in rows for k in r.kinds)
    boxes = []
    for kind in ENTITY_KINDS + SENTENCE_KINDS + (CLEAN,):
        if kind in ("failed", "unaligned") and not sentences[kind]:
            continue
        count = (f"{sentences[kind]}" if kind == CLEAN else f"{items[kind]} in {sentences[kind]}")
        tip = f"{_KIND_TITLE[kind]}: N in M = N entities (or events) in M sentences; show only those sentences"
        boxes.append(f'<label title="{tip}"><input type="checkbox" value="{kind}">'
                     f'{_KIND_TITLE[kind]} <span class="n" data-kind="{kind}">{count}</span></label>')
    return (f'<div id="bar"><div class="in">{"".join(boxes)}'
            '<input id="q" type="search" placeholder="search text, translation, replies">'
            '<button id="clear" type="button">clear</button><span id="shown"></span></div></div>')


def kind_counts(run_dir: Path) -> dict[str, int]:
    """Sentences per kind (as on the filter bar); handy for tests and scripts."""
    metrics = _read_json(run_dir / "metrics.json") or {}
    _check_metrics(metrics, run_dir / "metrics.json")
    labels = set((metrics.get("settings") or {}).get("labels") or []) or None
    rows = _load_rows(run_dir, labels, [])
    return dict(Counter(k for r in rows for k in r.kinds))


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of a run folder (default RUN_DIR/report.html); returns its path.

    Works on interrupted runs too: metrics.json or predictions.conll may be missing, a torn
    last trace line is skipped, and scores are then recomputed from the trace.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory")
    notes: list[str] = []
    metrics_path = run_dir / "metrics.json"
    metrics = _read_json(metrics_path)
    if metrics is None:
        notes.append("metrics.json is missing (interrupted run?): scores recomputed from trace.jsonl")
        metrics = {}
    else:
        _check_metrics(metrics, metrics_path)
    if metrics and metrics.get("complete") is False:
        notes.append("the run is incomplete: only finished sentences are shown")
    settings = metrics.get("settings") or {}
    labels = settings.get("labels") or None
    rows = _load_rows(run_dir, set(labels) if labels else None, notes)
    if not metrics and rows and all(r.gold is not None for r in rows):
        from tf_prompt.scoring.evaluate import score

        metrics = score([r.gold for r in rows], [r.pred for r in rows])  # type: ignore[misc]
    label_order = list(labels or []) + sorted({s.label for r in rows for s in (r.gold_spans or []) + r.pred_spans})
    renderer = _Renderer(label_order)
    sentences = "".join(renderer.row(r) for r in rows)
    note_html = "".join(f'<div class="note">{_e(n)}</div>' for n in notes)
    title = f"tf-prompt report: {settings.get('method', '')} {settings.get('model', '')} {run_dir.name}"
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{_e(title)}</title><style>{renderer.css()}</style></head><body>'
            f"<header>{_header(metrics, rows, run_dir)}{note_html}{_per_type(metrics)}</header>"
            f"{_filter_bar(rows)}<main>{renderer.legend()}<div id=\"sents\">{sentences}</div></main>"
            f"<script>{_JS}</script></body></html>")
    out = Path(out) if out is not None else run_dir / "report.html"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out, page)   # a kill while writing leaves the old page or the new one
    except OSError as e:
        raise ReportError(f"{out}: cannot write ({e.strerror or e})") from None
    return out


# -- command line ---------------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    """`tf-prompt report`: errors are one line on stderr and exit code 2, like the other commands."""
    try:
        path = build_report(Path(args.run_dir), Path(args.out) if args.out else None)
    except ReportError as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report RUN_DIR [--out FILE] [--open]` on the CLI's subparsers."""
    p = subparsers.add_parser("report", help="write a static HTML page to read a run sentence by sentence")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder written by 'tf-prompt run' (trace.jsonl, ...)")
    p.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/report.html)")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.set_defaults(func=cmd_report)
    return p
