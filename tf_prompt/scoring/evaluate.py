"""Scoring: seqeval entity-level micro P/R/F1 and per type, plus the pipeline's own error counts.

seqeval in its default (conlleval-compatible) mode is what the MasakhaNER papers report, so the
numbers here are comparable with theirs. They are computed here with seqeval's chunking rules
rather than by calling it: importing seqeval's metrics imports scikit-learn and SciPy (about
0.8 s, half of a cached run's whole-process time), for a decoder of twenty lines. The tests
check the figures are bit-identical to seqeval's classification_report. Gold tags of types
outside the chosen labels are mapped to O first: scoring MasakhaNER 2.0 without DATE (as the
TransFusion paper does) must not count
DATE entities as misses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


def restrict(tags: Sequence[str], labels: Iterable[str]) -> list[str]:
    """Tags with every type not in `labels` replaced by O."""
    keep = set(labels)
    return [t if t == "O" or t.split("-", 1)[-1] in keep else "O" for t in tags]


def prf(tp: int, predicted: int, true: int) -> tuple[float, float, float]:
    """Precision, recall and F1 as seqeval computes them with zero_division=0 (same float
    operations, so the figures are bit-identical to its classification_report)."""
    p = tp / predicted if predicted else 0.0
    r = tp / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _split(tag: str) -> tuple[str, str]:
    """(prefix letter, type) of a tag as seqeval reads it: "B-PER" -> ("B", "PER"), "O" -> ("O", "_")."""
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval's end_of_chunk: whether a chunk ended between the previous tag and this one."""
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval's start_of_chunk: whether a chunk starts at this tag."""
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def entities(sequences: Sequence[Sequence[str]]) -> list[tuple[str, int, int]]:
    """(type, first, last) of every entity, positions counted over the sentences joined with an
    O between them: seqeval's get_entities in its default, lenient (conlleval) mode, where an
    I- tag that does not continue an entity starts one."""
    flat = [t for s in sequences for t in [*s, "O"]]
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[tuple[str, int, int]] = []
    for i, chunk in enumerate([*flat, "O"]):
        tag, type_ = _split(chunk)
        if _ends(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1 (0-1) and per-type figures with support.

    Each side is decoded once (seqeval's classification_report decodes both ten times over, for
    per type, micro, macro and weighted figures: the largest item of a cached rerun's profile).
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    if not gold or not any(t != "O" for s in list(gold) + list(predicted) for t in s):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "support": 0}
    true_by_type: dict[str, set[tuple[int, int]]] = defaultdict(set)
    pred_by_type: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for name, start, end in entities(gold):
        true_by_type[name].add((start, end))
    for name, start, end in entities(predicted):
        pred_by_type[name].add((start, end))
    per_type: dict[str, dict[str, Any]] = {}
    tp_all = pred_all = true_all = 0
    for name in sorted(set(true_by_type) | set(pred_by_type)):
        t, p_ = true_by_type.get(name, set()), pred_by_type.get(name, set())
        tp = len(t & p_)
        precision, recall, f1 = prf(tp, len(p_), len(t))
        per_type[name] = {"precision": precision, "recall": recall, "f1": f1, "support": len(t)}
        tp_all, pred_all, true_all = tp_all + tp, pred_all + len(p_), true_all + len(t)
    precision, recall, f1 = prf(tp_all, pred_all, true_all)
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type, "support": true_all}
