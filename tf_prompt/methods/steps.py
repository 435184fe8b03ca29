"""The steps several methods share: translate into English, annotate the English, ask directly.

Each is declared once (name, template per style, batch template, per-item variables, reply
format) and comes with the function that asks it and reads its reply, so translate-test,
transfusion and any new method that pivots through English use the same code and prompts.
"""

from __future__ import annotations

from tf_prompt.methods.base import Prompting, Step
from tf_prompt.methods.context import SentenceRun, mentions_json
from tf_prompt.parsing import parse_translation
from tf_prompt.spans.checks import check_english
from tf_prompt.types import Mention, ParseFailure

TRANSLATE = Step("translate", {
    "json": Prompting("translate", "translation", batch_template="batch_translate"),
    "gollie": Prompting("translate", "translation"),   # GoLLIE has no translation prompt of its own
})
ANNOTATE = Step("annotate", {
    "json": Prompting("annotate", "entities", batch_template="batch_annotate"),
    "gollie": Prompting("gollie_direct", "code"),   # the same code prompt as direct, on the English
})
DIRECT = Step("direct", {
    "json": Prompting("direct", "entities", batch_template="batch_direct"),
    "gollie": Prompting("gollie_direct", "code"),
})


async def translate(run: SentenceRun) -> str | None:
    """The English translation of the sentence (by the --translator component, else the LLM),
    recorded in the trace; None if the reply is unreadable."""
    if run.translator is not None:
        english = await run.translator.translate(run.sentence, run.trace)
    else:
        english = await _llm_translate(run)
    run.trace.translation = english
    return english


async def _llm_translate(run: SentenceRun) -> str | None:
    language = run.ctx.language
    reply = await run.ask(TRANSLATE, run.text, text=run.text, language=language)
    try:
        english = parse_translation(reply)
    except ParseFailure as e:
        run.trace.parse_failures[TRANSLATE.name] = str(e)
        return None
    # Small models often echo the template's source label ("Hausa: ..."); it is not part of
    # the translation.
    if language and english.lower().startswith(language.lower() + ":"):
        english = english[len(language) + 1:].strip()
    return english or None


async def annotate(run: SentenceRun, english: str) -> list[Mention] | None:
    """The entities of the English translation (by the --annotator component, else the LLM),
    after the English checks; recorded in the trace."""
    if run.annotator is not None:
        mentions = await run.annotator.annotate(english, run.sentence, run.trace)
    else:
        mentions = await run.entities(ANNOTATE, text=english, labels=run.ctx.label_vars)
    if mentions is not None:
        mentions = check_english(mentions, run.ctx.schema.names) if run.checks else mentions
        run.trace.english_entities = mentions_json(mentions)
    return mentions


async def pivot(run: SentenceRun) -> tuple[str | None, list[Mention] | None]:
    """Translate into English and annotate the translation (translate-test, transfusion)."""
    english = await translate(run)
    if not english:
        return None, None
    return english, await annotate(run, english)


async def direct(run: SentenceRun) -> list[Mention] | None:
    """The entities of the source sentence, asked directly."""
    ctx = run.ctx
    return await run.entities(DIRECT, text=run.text, language=ctx.language, labels=ctx.label_vars,
                              label_names=ctx.schema.names, examples=ctx.example_vars)
