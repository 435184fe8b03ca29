"""Combining several answers for one sentence into one, without another model call.

TransFusion's fusion answer holds more information than the direct one, but a small model can
still do worse with it: a bad translation leads the fusion step astray. Asking the same model
the same question in different ways gives independent-ish views of the sentence:

    direct      entities from the source alone
    projection  the English entities, located in the source by string alignment (translate-test)
    fusion      the fusion step's answer

and an entity that two views agree on is far more likely right than one only a single view
proposes. A rule here turns the views into the final spans; which rule is the default was
measured on the MasakhaNER 2.0 dev splits (see the README), not on test.

A self-check that costs nothing comes with the vote: where the views agree on a span but not on
its type, the majority type wins and a tie drops the span (the model contradicts itself, so
neither answer can be trusted). Other checks are in checks.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from tf_prompt.spans.align import Span

VIEWS = ("fusion", "direct", "projection")


def overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def supported(span: Span, view: Sequence[Span]) -> bool:
    """Whether `view` has a span overlapping `span` (of any type)."""
    return any(overlaps(span, other) for other in view)


def merge(*views: Sequence[Span]) -> list[Span]:
    """Spans of the views in order of preference, skipping any that overlaps one already kept."""
    out: list[Span] = []
    for view in views:
        for span in view:
            if not supported(span, out):
                out.append(span)
    return sorted(out, key=lambda s: s.start)


def vote_type(span: Span, views: Sequence[Sequence[Span]]) -> str | None:
    """The majority type among the views' spans that overlap `span` (None on a tie)."""
    counts = Counter(o.label for view in views for o in view if overlaps(span, o))
    if not counts:
        return span.label
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _retype(spans: Sequence[Span], views: Sequence[Sequence[Span]]) -> list[Span]:
    out = []
    for s in spans:
        label = vote_type(s, views)
        if label is not None:
            out.append(Span(s.start, s.end, label, s.text, s.match))
    return out


Rule = Callable[[Mapping[str, Sequence[Span]]], list[Span]]


def _none(v: Mapping[str, Sequence[Span]]) -> list[Span]:
    return list(v["fusion"])


def _union(v: Mapping[str, Sequence[Span]]) -> list[Span]:
    return _retype(merge(v["fusion"], v["direct"]), [v[name] for name in VIEWS])


def _direct_first(v: Mapping[str, Sequence[Span]]) -> list[Span]:
    return merge(v["direct"], v["fusion"])


def _vote(v: Mapping[str, Sequence[Span]]) -> list[Span]:
    views = [v[name] for name in VIEWS]
    kept = [s for s in merge(*views) if sum(supported(s, view) for view in views) >= 2]
    return _retype(kept, views)


def _confirmed(v: Mapping[str, Sequence[Span]]) -> list[Span]:
    f, d, p = v["fusion"], v["direct"], v["projection"]
    return merge([s for s in f if supported(s, d) or supported(s, p)], [s for s in d if supported(s, p)])


RULES: dict[str, Rule] = {
    "none": _none,            # the fusion answer alone (the paper's TransFusion)
    "direct-first": _direct_first,  # direct, plus fusion spans that do not overlap it
    "union": _union,          # fusion, plus direct spans that do not overlap it; majority type
    "vote": _vote,            # spans at least two of the three views propose, majority type
    "confirmed": _confirmed,  # fusion spans another view confirms, plus direct spans projection confirms
}

#: The rule `--method transfusion` uses unless `--combine` says otherwise (chosen on dev).
DEFAULT = "direct-first"


def combine(rule: str, views: Mapping[str, Sequence[Span]]) -> list[Span]:
    """The final spans of a sentence under `rule`."""
    if rule not in RULES:
        raise ValueError(f"unknown combination rule {rule!r}; choose from {', '.join(RULES)}")
    return RULES[rule](views)
