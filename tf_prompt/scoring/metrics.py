"""A run's metrics: its scores (evaluate.py, string_match.py) and the pipeline's counts of what
went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tf_prompt.scoring.evaluate import restrict, score
from tf_prompt.scoring.string_match import score_strings
from tf_prompt.types import Result

#: --scorer choices: which figures are the headline f1/precision/recall/per_type/support.
#: conll: seqeval entity spans (type and exact token boundaries, as the MasakhaNER papers);
#: string: type and case-insensitive string, each gold mention matched once (as GoLLIE, whose
#: scorer the TransFusion paper used); both: conll headline, string match in `string_match`.
SCORERS = ("conll", "string", "both")


def _no_scores() -> dict[str, Any]:
    """The scores of unlabelled data (a fresh dict each time: callers may fill per_type)."""
    return {"f1": None, "precision": None, "recall": None, "per_type": {}}


def compute_metrics(results: Sequence[Result], labels: Sequence[str], scorer: str = "conll") -> dict[str, Any]:
    """Scores (if the data is labelled) and the pipeline's counts of what went wrong.

    `scorer` (SCORERS) picks the headline scores; metrics["scorer"] records it, so a metrics.json
    always says which rules made its f1.

    A sentence whose call failed after all retries has no answer, not an empty one: it is left
    out of the scores instead of counting its entities as missed. `scored_sentences` says how
    many sentences the scores cover (fewer than `n_sentences` when some failed).
    """
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; choose from {', '.join(SCORERS)}")
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
        predicted = [r.tags for r in answered]
        strings: dict[str, Any] | None = None
        if scorer != "conll":   # predictions are tagged on the sentence's own tokens
            tokens = [r.sentence.tokens for r in answered]
            strings = score_strings(gold, tokens, predicted, tokens)
        scores = strings if scorer == "string" and strings is not None else score(gold, predicted)
        metrics = {**scores, **metrics, "scored_sentences": len(answered)}
        if scorer == "both":
            metrics["string_match"] = strings
    else:
        metrics = {**_no_scores(), **metrics, "scored_sentences": 0}
        if scorer == "both":
            metrics["string_match"] = _no_scores()
    metrics["scorer"] = scorer
    return metrics
