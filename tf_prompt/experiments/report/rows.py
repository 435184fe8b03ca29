"""A run folder read as the report shows it: one row per sentence with its tokens placed in the
text, gold and predicted tags, entity-level outcomes and the kinds the filter bar offers.

Works on interrupted runs too: predictions.conll may be missing (tags then come from the trace)
or disagree with the trace (a note says so, and predictions.conll wins).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_prompt.runs.outputs import read_metrics, read_predictions, read_trace
from tf_prompt.scoring.errors import ENTITY_KINDS, ErrorItem, TokenSpan, classify_spans, tag_spans
from tf_prompt.scoring.evaluate import restrict

#: Sentence-level kinds read from the trace (not derivable from tags).
SENTENCE_KINDS = ("parse_failure", "hallucinated", "unaligned", "failed")
#: Sentence-level notes the filter offers that are no error: transfusion answered with the direct
#: view, its translation turned down by the pivot check.
NOTE_KINDS = ("pivot_skipped",)
#: Pseudo-kind for the filter: sentences with none of the error kinds.
CLEAN = "clean"
_ERRORS = frozenset(ENTITY_KINDS[1:] + SENTENCE_KINDS)


@dataclass
class Row:
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


def load_rows(run_dir: Path, labels: set[str] | None, notes: list[str]) -> list[Row]:
    """The run's sentences in order; gold of types outside the run's `labels` becomes O, as in
    scoring (no false 'missed'). Notes for the page are appended to `notes`."""
    traces = read_trace(run_dir, notes)
    conll = read_predictions(run_dir)
    if conll is not None and len(conll) != len(traces):
        notes.append(f"predictions.conll has {len(conll)} sentences, trace.jsonl {len(traces)}: "
                     "tokens matched by text where possible")
        by_text: dict[str, Any] = {}
        for c in conll:
            by_text.setdefault(" ".join(c[0]), c)
        conll_for: list[Any] = [by_text.get(t["source"]) for t in traces]
    elif conll is not None:
        conll_for = list(conll)
    else:
        conll_for = [None] * len(traces)
    disagree = 0
    rows = []
    for t, c in zip(traces, conll_for, strict=True):
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
        if gold is not None and labels is not None:
            gold = restrict(gold, labels)
        rows.append(Row(trace=t, text=text, tokens=tokens, offsets=offsets, gold=gold, pred=pred))
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
                              ("unaligned", t.get("unaligned")), ("failed", t.get("failed")),
                              ("pivot_skipped", t.get("pivot_skipped"))):
            if present:
                row.kinds.add(kind)
        if not row.kinds & _ERRORS:
            row.kinds.add(CLEAN)
    return rows


def kind_counts(run_dir: Path) -> dict[str, int]:
    """Sentences per kind (as on the filter bar); handy for tests and scripts."""
    metrics = read_metrics(run_dir) or {}
    labels = set((metrics.get("settings") or {}).get("labels") or []) or None
    rows = load_rows(Path(run_dir), labels, [])
    return dict(Counter(k for r in rows for k in r.kinds))
