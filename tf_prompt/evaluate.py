"""Scoring: seqeval entity-level micro P/R/F1 and per type, plus the pipeline's own error counts.

seqeval in its default (conlleval-compatible) mode is what the MasakhaNER papers report, so the
numbers here are comparable with theirs. Gold tags of types outside the chosen labels are mapped
to O first: scoring MasakhaNER 2.0 without DATE (as the TransFusion paper does) must not count
DATE entities as misses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Sequence


def restrict(tags: Sequence[str], labels: Iterable[str]) -> list[str]:
    """Tags with every type not in `labels` replaced by O."""
    keep = set(labels)
    return [t if t == "O" or t.split("-", 1)[-1] in keep else "O" for t in tags]


def _prf(tp: int, predicted: int, true: int) -> tuple[float, float, float]:
    """Precision, recall and F1 as seqeval computes them with zero_division=0 (same float
    operations, so the figures are bit-identical to its classification_report)."""
    p = tp / predicted if predicted else 0.0
    r = tp / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1 (0-1) and per-type figures with support.

    The entities are decoded by seqeval's own conlleval-compatible chunker, once for gold and
    once for predictions; seqeval's classification_report decodes both sides four times over
    (per type, micro, macro, weighted) and was the largest item of a cached rerun's profile.
    seqeval is imported here, not at module level: it pulls in scikit-learn, about 0.8 s of
    start-up that a run only needs once it scores.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    if not gold or not any(t != "O" for s in list(gold) + list(predicted) for t in s):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "support": 0}
    from seqeval.metrics.sequence_labeling import get_entities

    true_by_type: dict[str, set[tuple[int, int]]] = defaultdict(set)
    pred_by_type: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for name, start, end in get_entities([list(s) for s in gold]):
        true_by_type[name].add((start, end))
    for name, start, end in get_entities([list(s) for s in predicted]):
        pred_by_type[name].add((start, end))
    per_type: dict[str, dict[str, Any]] = {}
    tp_all = pred_all = true_all = 0
    for name in sorted(set(true_by_type) | set(pred_by_type)):
        t, p_ = true_by_type.get(name, set()), pred_by_type.get(name, set())
        tp = len(t & p_)
        precision, recall, f1 = _prf(tp, len(p_), len(t))
        per_type[name] = {"precision": precision, "recall": recall, "f1": f1, "support": len(t)}
        tp_all, pred_all, true_all = tp_all + tp, pred_all + len(p_), true_all + len(t)
    precision, recall, f1 = _prf(tp_all, pred_all, true_all)
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type, "support": true_all}
