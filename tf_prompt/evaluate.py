"""Scoring: seqeval entity-level micro P/R/F1 and per type, plus the pipeline's own error counts.

seqeval in its default (conlleval-compatible) mode is what the MasakhaNER papers report, so the
numbers here are comparable with theirs. Gold tags of types outside the chosen labels are mapped
to O first: scoring MasakhaNER 2.0 without DATE (as the TransFusion paper does) must not count
DATE entities as misses.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

from seqeval.metrics import classification_report


def restrict(tags: Sequence[str], labels: Iterable[str]) -> list[str]:
    """Tags with every type not in `labels` replaced by O."""
    keep = set(labels)
    return [t if t == "O" or t.split("-", 1)[-1] in keep else "O" for t in tags]


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1 (0-1) and per-type figures with support."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    if not gold or not any(t != "O" for s in list(gold) + list(predicted) for t in s):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}, "support": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on types with no gold or no predictions
        report = classification_report([list(s) for s in gold], [list(s) for s in predicted],
                                       output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    per_type = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
               "f1": float(v["f1-score"]), "support": int(v["support"])}
        for name, v in report.items() if not name.endswith(" avg")
    }
    return {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]), "per_type": per_type, "support": int(micro["support"])}
