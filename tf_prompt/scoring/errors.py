"""Entity-level error classes of one sentence: correct, missed, spurious, wrong type, wrong boundary.

The scores (evaluate.py) say how many entities were right; these classes say what went wrong with
the others, entity by entity, for the HTML report and for scripts. Entities are decoded with the
scorer's rules, so a class never contradicts the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tf_prompt.spans.align import bio_to_spans

__all__ = ["ENTITY_KINDS", "ErrorItem", "TokenSpan", "classify_errors", "classify_spans", "tag_spans"]

#: Entity-level kinds produced by classify_errors, in display order.
ENTITY_KINDS = ("correct", "missed", "spurious", "wrong_type", "wrong_boundary")


@dataclass(frozen=True, order=True)
class TokenSpan:
    """An entity as token indices ``[start, end)`` and a label."""

    start: int
    end: int
    label: str

    def overlaps(self, other: TokenSpan) -> bool:
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
