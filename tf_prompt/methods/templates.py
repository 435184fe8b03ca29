"""Which prompt templates a run may render, for given settings: the one list that metrics.json,
`estimate` and the sweep's resume fingerprint all read.

A finished sweep cell is skipped when its fingerprint is unchanged, so a template missing from
this list is one that can be edited without the cell noticing (its stale results are kept). The
list therefore errs on the side of "may": every template the pipeline can load for these
settings, including the single-sentence templates a batched run falls back to and the `direct`
question of transfusion's combination rule. tests/test_trust_sweep.py checks it against what
runs really render.

Names are template names as TemplateSet loads them (`direct` -> the highest `direct.vN.jinja`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tf_prompt.settings import RunSettings
    from tf_prompt.prompting.templates import TemplateSet

#: Model calls (steps) of each method in the json style, in pipeline order.
STEPS_OF: dict[str, list[str]] = {"direct": ["direct"], "translate-test": ["translate", "annotate"],
                                  "transfusion": ["translate", "annotate", "fuse"], "transfusion-1call": ["tf1"]}
#: The template a step renders when it is not its own name (pipeline.py's `template_step=`).
_JSON_TEMPLATE = {"tf1": "transfusion_1call"}
_GOLLIE_TEMPLATE = {"direct": "gollie_direct", "annotate": "gollie_direct", "fuse": "gollie_tf",
                    "tf1": "transfusion_1call"}


def steps_of(settings: "RunSettings") -> list[str]:
    """The steps that ask the LLM: the method's steps, minus translation and annotation done by
    another component (--translator file:/mt:, --annotator spacy), plus `direct` when the
    combination rule needs its answer. GoLLIE-TF has no separate English annotation call."""
    steps = list(STEPS_OF[settings.method])
    if settings.method in ("translate-test", "transfusion"):
        if settings.translator != "llm":
            steps.remove("translate")
        if settings.annotator != "llm" or (settings.style == "gollie" and settings.method == "transfusion"):
            steps.remove("annotate")
    if settings.method == "transfusion" and settings.combine_rule() != "none":
        steps.append("direct")
    return steps


def templates_of(settings: "RunSettings") -> list[str]:
    """Every template a run with `settings` may render, in a stable order."""
    batched = settings.style == "json" and settings.batch_sentences > 1   # as run_async batches
    out: list[str] = []
    for step in steps_of(settings):
        table = _GOLLIE_TEMPLATE if settings.style == "gollie" else _JSON_TEMPLATE
        single = table.get(step, step)
        if batched:
            out.append(f"batch_{step}")   # batching.py: the numbered prompt of the step
        out.append(single)                # the one-sentence prompt (also a batch's fallback)
    return list(dict.fromkeys(out))


def template_identities(settings: "RunSettings", templates: "TemplateSet") -> dict[str, str]:
    """{template name: identity (file name @ digest of its source)} of every template the run may
    render; a template that is edited changes its identity."""
    return {name: templates.identity(name) for name in templates_of(settings)}
