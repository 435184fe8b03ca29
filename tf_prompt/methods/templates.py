"""Which prompt templates a run may render, for given settings: the one list that metrics.json,
`estimate` and the sweep's resume fingerprint all read.

A finished sweep cell is skipped when its fingerprint is unchanged, so a template missing from
this list is one that can be edited without the cell noticing (its stale results are kept). The
list therefore errs on the side of "may": every template the pipeline can load for these
settings, including the single-sentence templates a batched run falls back to and the `direct`
question of transfusion's combination rule. tests/test_trust_sweep.py checks it against what
runs really render.

Names are template names as TemplateSet loads them (`direct` -> the highest `direct.vN.jinja`).
Everything is read from the methods' declarations (registry.py): a step's one-sentence and
numbered templates per style (base.Prompting), and which steps call the LLM for given settings
(Method.llm_steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tf_prompt.methods.registry import get_method

if TYPE_CHECKING:
    from tf_prompt.prompting.templates import TemplateSet
    from tf_prompt.settings import RunSettings


def steps_of(settings: RunSettings) -> list[str]:
    """The steps that ask the LLM, as the method declares them (Method.llm_steps): its steps,
    minus translation and annotation done by another component (--translator file:/mt:,
    --annotator spacy/file:), plus `direct` when transfusion's combination rule needs its answer.
    GoLLIE-TF has no separate English annotation call."""
    return [step.name for step in get_method(settings.method).llm_steps(settings)]


def templates_of(settings: RunSettings) -> list[str]:
    """Every template a run with `settings` may render, in a stable order: for each step its
    numbered template when sentences are batched (json style, as run_async batches), then its
    one-sentence template (also a batch's fallback)."""
    batched = settings.style == "json" and settings.batch_sentences > 1
    out: list[str] = []
    for step in get_method(settings.method).llm_steps(settings):
        prompting = step.prompting(settings.style)
        if batched and prompting.batch_template:
            out.append(prompting.batch_template)
        out.append(prompting.template)
    return list(dict.fromkeys(out))


def template_identities(settings: RunSettings, templates: TemplateSet) -> dict[str, str]:
    """{template name: identity (file name @ digest of its source)} of every template the run may
    render; a template that is edited changes its identity."""
    return {name: templates.identity(name) for name in templates_of(settings)}

