"""transfusion-1call: TransFusion in one call.

    source --(tf1: translation, English entities, source entities in one JSON object)--> entities

The model translates, annotates its translation and gives the source's entities in one reply (the
GoLLIE-TF idea in a chat/JSON form). Missing parts are recorded in the trace (`missing`); only the
source entities are needed for the prediction.
"""

from __future__ import annotations

import json

from tf_prompt.methods.base import Answer, Method, Prompting, Step
from tf_prompt.methods.context import SentenceRun, mentions_json
from tf_prompt.parsing import parse_entities, parse_json_value
from tf_prompt.spans.align import locate
from tf_prompt.types import Mention, ParseFailure

TF1 = Step("tf1", {
    "json": Prompting("transfusion_1call", "fused", batch_template="batch_tf1"),
    "gollie": Prompting("transfusion_1call", "fused"),   # no code form: the same JSON prompt
})
#: The parts of the reply, in the order the template asks for them.
PARTS = ("translation", "english_entities", "entities")


class OneCall(Method):
    """Translation, English entities and source entities from one JSON reply."""

    name = "transfusion-1call"
    summary = "source --(tf1: translation + English entities + source entities in one JSON)--> entities"
    steps = (TF1,)

    async def run(self, run: SentenceRun) -> Answer:
        mentions = await self._one_call(run) or []
        return Answer(mentions, locate(run.text, mentions))

    async def _one_call(self, run: SentenceRun) -> list[Mention] | None:
        ctx, trace = run.ctx, run.trace
        gold = ctx.expected(run.sentence)
        standin = json.dumps({"translation": run.text, "english_entities": mentions_json(gold),
                              "entities": mentions_json(gold)}, ensure_ascii=False)
        variables = dict(text=run.text, language=ctx.language, labels=ctx.label_vars, examples=ctx.example_vars)
        reply = await run.ask(TF1, standin, **variables)
        value = parse_json_value(reply)
        if not isinstance(value, dict):
            trace.parse_failures[TF1.name] = "no JSON object in the reply"
            return None
        parts = {str(k).lower(): v for k, v in value.items()}
        missing = [k for k in PARTS if k not in parts]
        if missing:
            trace.missing = missing
        if isinstance(parts.get("translation"), str):
            trace.translation = parts["translation"]
        names, aliases = ctx.schema.names, ctx.schema.aliases
        if "english_entities" in parts:
            try:
                english = parse_entities(json.dumps({"entities": parts["english_entities"]}), names, aliases)
                trace.english_entities = mentions_json(english.mentions)
            except ParseFailure:
                pass
        if "entities" not in parts:
            trace.parse_failures[TF1.name] = "the reply has no 'entities'"
            return None
        try:
            result = parse_entities(json.dumps({"entities": parts["entities"]}, ensure_ascii=False), names, aliases,
                                    prompt=lambda: ctx.shown(TF1, variables), source=run.text)
        except ParseFailure as e:
            trace.parse_failures[TF1.name] = str(e)
            return None
        trace.unknown_labels += mentions_json(result.unknown)
        return result.mentions


METHOD = OneCall()
