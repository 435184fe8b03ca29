"""The step machinery every method shares: ask a step, read entities from its reply, know what
the prompt showed.

`Context` is per run (client, templates, schema, language, few-shot examples, prompt style);
`SentenceRun` is per sentence (its trace, the chunk's batcher if any, the translator and
annotator components) and is what a method's `run` works through. The batcher is carried here,
explicitly, rather than found in a global: a sentence's calls go to the batcher it was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tf_prompt.backends.base import BackendError
from tf_prompt.backends.blocked import block_reason, describe
from tf_prompt.data.conll import Sentence
from tf_prompt.data.schema import Schema
from tf_prompt.parsing import parse_entities
from tf_prompt.prompting.batching import Call, ChunkBatcher
from tf_prompt.prompting.constraints import NONE, constraint
from tf_prompt.spans.align import bio_to_spans, locate
from tf_prompt.types import Annotator, Mention, ParseFailure, SentenceFailed, Trace, Translator

if TYPE_CHECKING:
    from tf_prompt.llm.client import ModelClient
    from tf_prompt.methods.base import Step
    from tf_prompt.prompting.templates import TemplateSet

#: GoLLIE class names of the MasakhaNER labels; other labels are CamelCased.
CLASS_NAMES = {"PER": "Person", "ORG": "Organization", "LOC": "Location", "DATE": "Date", "MISC": "Miscellaneous"}
#: Similarity threshold for projecting English entities onto the source (translate-test, the
#: fusion hints, the projection view of --combine): names are often respelled across languages
#: (Nigeria / Najeriya), so exact matching is too strict.
PROJECTION_THRESHOLD = 0.75


def class_name(label: str) -> str:
    """The Python class a label becomes in GoLLIE-style prompts ("work_of_art" -> "WorkOfArt")."""
    if label in CLASS_NAMES:
        return CLASS_NAMES[label]
    parts = [p for p in label.replace("-", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:].lower() for p in parts) or "Entity"


def mentions_json(mentions: Sequence[Mention]) -> list[dict[str, str]]:
    """Mentions as the traces and templates show them."""
    return [{"text": m.text, "type": m.label} for m in mentions]


def evidence(source: str, english: Sequence[Mention]) -> list[dict[str, str]]:
    """The English entities as evidence for the fusion step: each with the source words it was
    aligned to (`found`, "" if none), as translate-test would project it.

    Small models copy an English list into their answer; marking which hints the source confirms
    lets the prompt tell them to answer with source words and to doubt the rest.
    """
    out = []
    for m in english:
        spans = locate(source, [m], fuzzy=PROJECTION_THRESHOLD).spans
        out.append({"text": m.text, "type": m.label, "found": spans[0].text if spans else ""})
    return out


def answer_json(mentions: Sequence[Mention]) -> str:
    """The answer format the default templates ask for, used for few-shot examples."""
    return json.dumps({"entities": mentions_json(mentions)}, ensure_ascii=False)


def code_answer(lists: Mapping[str, Sequence[Mention]]) -> str:
    """A GoLLIE-style answer (`result = [Person(span="...")]`), used as the dry-run stand-in."""
    return "\n".join(
        f"{var} = [" + ", ".join(f"{class_name(m.label)}(span={json.dumps(m.text, ensure_ascii=False)})"
                                  for m in mentions) + "]"
        for var, mentions in lists.items())


_RESULT_LINE = re.compile(r"(?m)^\s*result\s*=")


def complete_code(reply: str) -> str:
    """GoLLIE prompts end with `result = [`: a model that continues the code does not repeat it."""
    return reply if _RESULT_LINE.search(reply) else "result = [" + reply.lstrip("[")


def gold_mentions(sentence: Sentence, labels: Sequence[str]) -> list[Mention]:
    """The gold entities of a labelled sentence as mentions (for examples and oracles)."""
    assert sentence.tags is not None
    spans = bio_to_spans(sentence.text, sentence.offsets, sentence.tags)
    return [Mention(s.text, s.label) for s in spans if s.label in labels]


@dataclass
class Context:
    """What every step needs: the model client, templates, schema, language and examples."""

    client: ModelClient
    templates: TemplateSet
    schema: Schema
    language: str | None = None
    examples: list[Sentence] = field(default_factory=list)
    style: str = "json"
    #: --constrain: "none", "json" or "spans" (prompting/constraints.py)
    constrain: str = "none"
    _memo: dict[str, tuple[tuple[Any, ...], Any]] = field(default_factory=dict, init=False, repr=False,
                                                          compare=False)
    _shown: dict[tuple[str, str], list[str]] = field(default_factory=dict, init=False, repr=False)

    def _memoized(self, name: str, inputs: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """`build()`, computed again only when one of `inputs` is another object than last time.

        The label and example variables go into every prompt; rebuilding them (a pydantic dump
        per label, a BIO decode and JSON dump per example) on each call was a visible share of
        a cached rerun. Keyed by identity, so assigning another schema or examples is seen."""
        hit = self._memo.get(name)
        if hit is not None and len(hit[0]) == len(inputs) and all(a is b for a, b in zip(hit[0], inputs, strict=True)):
            return hit[1]
        value = build()
        self._memo[name] = (inputs, value)
        return value

    @property
    def label_vars(self) -> list[dict[str, Any]]:
        return self._memoized(
            "labels", (self.schema, *self.schema.labels),
            lambda: [{**label.model_dump(), "class_name": class_name(label.name)} for label in self.schema.labels])

    @property
    def example_vars(self) -> list[dict[str, str]]:
        return self._memoized(
            "examples", (self.schema, *self.examples),
            lambda: [{"text": ex.text, "answer": answer_json(gold_mentions(ex, self.schema.names))}
                     for ex in self.examples])

    async def ask_single(self, step: str, trace: Trace, standin: str, *, template_step: str | None = None,
                         reply: str | None = None, **variables: Any) -> str:
        """One call for one sentence with the step's one-sentence template.

        `standin` is the reply assumed when estimating cost without calling (dry run). `reply` is
        the step's reply format: with --constrain, an entity answer is sent with its JSON schema
        (the spans of `text`, the text the step annotates), recorded in the trace. A call that
        still fails after its retries raises SentenceFailed: the sentence stops there, so no
        later step is paid for on top of a missing answer."""
        prompt = self.templates.render(step, template_step=template_step, **variables)
        trace.templates[step] = prompt.identity
        limit = (constraint(self.constrain, step, reply, self.schema.names, variables.get("text"))
                 if reply is not None else NONE)
        if limit.params:
            trace.constraints[step] = limit.note
        try:
            completion = await self.client.ask(prompt, standin=standin, params=limit.params or None)
        except BackendError as e:
            if not e.retryable:
                raise
            trace.errors[step] = str(e)
            raise SentenceFailed(step) from None
        blocked = block_reason(completion.finish_reason)
        if blocked is not None:   # a safety filter withheld it: this sentence fails, the run goes on
            trace.errors[step] = describe(blocked)
            raise SentenceFailed(step)
        trace.replies[step] = completion.text
        return completion.text

    def expected(self, sentence: Sentence) -> list[Mention]:
        """The gold entities of a labelled sentence (none for unlabelled data): the size of the
        stand-in answers a dry run (estimate) assumes."""
        return gold_mentions(sentence, self.schema.names) if sentence.tags else []

    def shown(self, step: Step, variables: dict[str, Any]) -> list[str]:
        """The step's one-sentence prompt without this sentence's own data (the step's per-item
        variables: text, translation, English entities, hints): what is left shows the example
        answers (format, worked and few-shot examples). A reply that only repeats one is a parse
        failure (parsing); one that copies its input, e.g. the English entities, is an answer. The
        same for every sentence of a run, so rendered once per step. GoLLIE prompts show no
        example answers."""
        if self.style != "json":
            return []
        template = step.prompting(self.style).template
        key = (step.name, template)
        if key not in self._shown:
            blank = {k: v for k, v in step.item_vars.items() if k in variables}
            rendered = self.templates.render(step.name, template_step=template, **{**variables, **blank})
            self._shown[key] = [m["content"] for m in rendered.messages]
        return self._shown[key]


@dataclass
class SentenceRun:
    """One sentence going through a method: its trace, the components, and the chunk's batcher.

    `translator` / `annotator` are other components that replace the LLM's translate / annotate
    steps (None: the LLM). `batcher` groups this sentence's calls with the rest of its chunk
    (--batch-sentences); None sends each call on its own.
    """

    ctx: Context
    sentence: Sentence
    trace: Trace
    translator: Translator | None = None
    annotator: Annotator | None = None
    combine: str = "none"
    checks: bool = True
    batcher: ChunkBatcher | None = None
    #: --pivot-check (methods/pivot_check.py), for the methods that pivot and check it
    pivot_check: bool = False

    @property
    def text(self) -> str:
        return self.sentence.text

    async def ask(self, step: Step, standin: str, **variables: Any) -> str:
        """Render `step` in the run's style, call the model, record the reply (a failed call
        raises SentenceFailed). Inside a chunk the call goes to the chunk's batcher, which
        groups it with the same step of the chunk's other sentences."""
        prompting = step.prompting(self.ctx.style)
        if self.batcher is None or prompting.batch_template is None:
            return await self.ctx.ask_single(step.name, self.trace, standin, template_step=prompting.template,
                                             reply=prompting.reply, **variables)
        call = Call(step=step.name, trace=self.trace, standin=standin, template=prompting.template,
                    variables=variables, batch_template=prompting.batch_template,
                    item_vars=tuple(step.item_vars), text_reply=prompting.reply == "translation",
                    reply=prompting.reply, constrain=self.ctx.constrain, labels=tuple(self.ctx.schema.names))
        try:
            return await self.batcher.ask(call)
        except BackendError as e:
            if not e.retryable:
                raise
            self.trace.errors[step.name] = str(e)
            raise SentenceFailed(step.name) from None

    async def entities(self, step: Step, **variables: Any) -> list[Mention] | None:
        """Ask `step` for entities (JSON, or GoLLIE code in that style); None, and a recorded
        parse failure, if the reply is unreadable."""
        gold = self.ctx.expected(self.sentence)
        schema = self.ctx.schema
        if step.prompting(self.ctx.style).reply == "code":
            reply = complete_code(await self.ask(step, code_answer({"result": gold}), **variables))
        else:
            reply = await self.ask(step, answer_json(gold), **variables)
        try:
            result = parse_entities(reply, schema.names, schema.aliases,
                                    prompt=lambda: self.ctx.shown(step, variables), source=variables.get("text"))
        except ParseFailure as e:
            self.trace.parse_failures[step.name] = str(e)
            return None
        self.trace.unknown_labels += mentions_json(result.unknown)
        return result.mentions
