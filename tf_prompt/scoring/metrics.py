"""A run's metrics: its scores (evaluate.py) and the pipeline's counts of what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tf_prompt.scoring.evaluate import restrict, score
from tf_prompt.types import Result


def compute_metrics(results: Sequence[Result], labels: Sequence[str]) -> dict[str, Any]:
    """Scores (if the data is labelled) and the pipeline's counts of what went wrong.

    A sentence whose call failed after all retries has no answer, not an empty one: it is left
    out of the scores instead of counting its entities as missed. `scored_sentences` says how
    many sentences the scores cover (fewer than `n_sentences` when some failed).
    """
    traces = [r.trace for r in results]
    metrics: dict[str, Any] = {
        "n_sentences": len(results),
        "parse_failures": sum(len(t.parse_failures) for t in traces),
        "parse_failures_by_step": {},
        "sentences_with_parse_failure": sum(1 for t in traces if t.parse_failures),
        "failed_sentences": sum(1 for t in traces if t.failed),
        "hallucinated": sum(len(t.hallucinated) for t in traces),
        "unaligned": sum(len(t.unaligned) for t in traces),
        "unknown_labels": sum(len(t.unknown_labels) for t in traces),
        "predicted_entities": sum(len(r.spans) for r in results),
        # transfusion --pivot-check: sentences answered with the direct view, their translation
        # turned down (an echo of the source, or not English)
        "pivot_skipped": sum(1 for t in traces if t.pivot_skipped),
    }
    for t in traces:
        for step in t.parse_failures:
            metrics["parse_failures_by_step"][step] = metrics["parse_failures_by_step"].get(step, 0) + 1
    answered = [r for r in results if not r.trace.failed]
    labelled = [r for r in answered if r.sentence.tags is not None]
    if labelled and len(labelled) == len(answered):
        gold = [restrict(r.sentence.tags or [], labels) for r in answered]
        scores = score(gold, [r.tags for r in answered])
        metrics = {**scores, **metrics, "scored_sentences": len(answered)}
    else:
        metrics = {"f1": None, "precision": None, "recall": None, "per_type": {}, **metrics,
                   "scored_sentences": 0}
    return metrics
