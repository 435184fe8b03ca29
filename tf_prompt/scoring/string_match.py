"""String-match scoring: micro P/R/F1 over (type, entity string) mentions, as GoLLIE scores NER.

The TransFusion paper reports its MasakhaNER figures with GoLLIE's scorer, which compares
entities by type and text, not by token position: a predicted mention is right when a gold
mention of the same type has the same string, case-insensitively, in the same sentence. Each
gold mention can be matched once, so per sentence the true positives are the size of the
multiset intersection of gold and predicted mentions (two predicted "Kano" LOC against one gold
"Kano" LOC give one true positive and one false positive).

Here a mention's string is its tokens joined by a single space, then casefolded
(`str.casefold`, a stricter lowercasing: "Straße" matches "STRASSE"). Tags are decoded into
entities with the same (seqeval, conlleval-compatible) chunking rules as the conll scorer
(evaluate.py), so the two scorers differ only in what makes a match. This scorer forgives
a boundary the conll scorer counts wrong when the string is the same, e.g. the right name
tagged at its other occurrence in the sentence, and it lets gold and predictions be tokenised
differently. Standard library only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from tf_prompt.scoring.evaluate import entities, prf


def mentions(tags: Sequence[str], tokens: Sequence[str]) -> Counter[tuple[str, str]]:
    """The (type, casefolded string) mentions of one sentence, with their counts."""
    if len(tags) != len(tokens):
        raise ValueError(f"{len(tags)} tags but {len(tokens)} tokens")
    return Counter((name, " ".join(tokens[first:last + 1]).casefold())
                   for name, first, last in entities([tags]))


def score_strings(gold_tags: Sequence[Sequence[str]], gold_tokens: Sequence[Sequence[str]],
                  predicted_tags: Sequence[Sequence[str]],
                  predicted_tokens: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1 (0-1) and per-type figures with support (gold mentions), in the
    same shape as evaluate.score, so either can be a run's headline.

    Sentences are paired by position; within a sentence, tags pair with that side's tokens.
    """
    sides = {"gold": (gold_tags, gold_tokens), "predicted": (predicted_tags, predicted_tokens)}
    for side, (tags, tokens) in sides.items():
        if len(tags) != len(tokens):
            raise ValueError(f"{len(tags)} {side} tag sentences but {len(tokens)} token sentences")
    if len(gold_tags) != len(predicted_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(predicted_tags)} predicted")
    tp: Counter[str] = Counter()
    true: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    for i in range(len(gold_tags)):
        try:
            g = mentions(gold_tags[i], gold_tokens[i])
        except ValueError as e:
            raise ValueError(f"sentence {i} (gold): {e}") from None
        try:
            p = mentions(predicted_tags[i], predicted_tokens[i])
        except ValueError as e:
            raise ValueError(f"sentence {i} (predicted): {e}") from None
        for (name, _), n in (g & p).items():   # multiset intersection: each gold mention once
            tp[name] += n
        for (name, _), n in g.items():
            true[name] += n
        for (name, _), n in p.items():
            predicted[name] += n
    if not true and not predicted:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "support": 0}
    per_type: dict[str, dict[str, Any]] = {}
    for name in sorted(set(true) | set(predicted)):
        precision, recall, f1 = prf(tp[name], predicted[name], true[name])
        per_type[name] = {"precision": precision, "recall": recall, "f1": f1, "support": true[name]}
    precision, recall, f1 = prf(sum(tp.values()), sum(predicted.values()), sum(true.values()))
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type,
            "support": sum(true.values())}
