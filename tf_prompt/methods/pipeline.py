"""The methods, one sentence at a time: direct, translate-test, transfusion, transfusion-1call.

    direct             source --(direct)--> entities of the source
    translate-test     source --(translate)--> English --(annotate)--> English entities
                       --(projection by string alignment, no model call)--> entities of the source
    transfusion        source --(translate)--> English --(annotate)--> English entities
                       --(fuse: source + English + English entities)--> entities of the source
    transfusion-1call  source --(tf1: translation, English entities, source entities in one JSON)
    --style gollie     code prompts; transfusion becomes translate + GoLLIE-TF (result, final_result)

Every method ends the same way: entity strings are located in the source text (align.locate) and
turned into BIO tags on the dataset's own tokens. A reply that cannot be parsed is recorded in
the sentence's trace and counted; it never stops the run.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from tf_prompt.prompting import batching
from tf_prompt.spans.align import Alignment, Span, bio_to_spans, locate, spans_to_bio
from tf_prompt.backends.base import BackendError
from tf_prompt.spans.checks import check_english, check_spans
from tf_prompt.llm.client import ModelClient
from tf_prompt.spans.combine import RULES as COMBINE_RULES, combine as combine_views
from tf_prompt.data.conll import Sentence
from tf_prompt.parsing import parse_code_assignments, parse_entities, parse_json_value, parse_translation
from tf_prompt.types import Mention, ParseFailure
from tf_prompt.data.schema import Schema
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.types import Annotator, Result, SentenceFailed, Trace, Translator

METHODS = ("direct", "translate-test", "transfusion", "transfusion-1call")
#: Prompt styles: "json" (chat instructions, JSON answer) or "gollie" (Python code, GoLLIE/GoLLIE-TF).
STYLES = ("json", "gollie")
#: GoLLIE class names of the MasakhaNER labels; other labels are CamelCased.
CLASS_NAMES = {"PER": "Person", "ORG": "Organization", "LOC": "Location", "DATE": "Date", "MISC": "Miscellaneous"}


def class_name(label: str) -> str:
    """The Python class a label becomes in GoLLIE-style prompts ("work_of_art" -> "WorkOfArt")."""
    if label in CLASS_NAMES:
        return CLASS_NAMES[label]
    parts = [p for p in label.replace("-", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:].lower() for p in parts) or "Entity"


#: Similarity threshold for projecting English entities onto the source in translate-test:
#: names are often respelled across languages (Nigeria / Najeriya), so exact matching is too strict.
PROJECTION_THRESHOLD = 0.75


def _mentions_json(mentions: Sequence[Mention]) -> list[dict[str, str]]:
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
    return json.dumps({"entities": _mentions_json(mentions)}, ensure_ascii=False)


def code_answer(lists: dict[str, Sequence[Mention]]) -> str:
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
    _memo: dict[str, tuple[tuple[Any, ...], Any]] = field(default_factory=dict, init=False, repr=False,
                                                          compare=False)

    def _memoized(self, name: str, inputs: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """`build()`, computed again only when one of `inputs` is another object than last time.

        The label and example variables go into every prompt; rebuilding them (a pydantic dump
        per label, a BIO decode and JSON dump per example) on each call was a visible share of
        a cached rerun. Keyed by identity, so assigning another schema or examples is seen."""
        hit = self._memo.get(name)
        if hit is not None and len(hit[0]) == len(inputs) and all(a is b for a, b in zip(hit[0], inputs)):
            return hit[1]
        value = build()
        self._memo[name] = (inputs, value)
        return value
    _shown: dict[tuple[str, str | None], list[str]] = field(default_factory=dict, init=False, repr=False)

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

    async def ask(self, step: str, trace: Trace, standin: str, *, template_step: str | None = None,
                  **variables: Any) -> str:
        """Render `step`, call the model, record the reply.

        `standin` is the reply assumed when estimating cost without calling (dry run). A call that
        still fails after its retries raises SentenceFailed: the sentence stops there, so no
        later step is paid for on top of a missing answer. Inside a chunk of `--batch-sentences`,
        the call is grouped with the same step of the chunk's other sentences (batching.py).
        """
        batcher = batching.current.get()
        if batcher is not None and self.style == "json":
            try:
                return await batcher.ask(step, trace, standin, template_step, variables)
            except BackendError as e:
                if not e.retryable:
                    raise
                trace.errors[step] = str(e)
                raise SentenceFailed(step) from None
        return await self.ask_single(step, trace, standin, template_step=template_step, **variables)

    async def ask_single(self, step: str, trace: Trace, standin: str, *, template_step: str | None = None,
                         **variables: Any) -> str:
        """One call for one sentence with the step's normal template."""
        prompt = self.templates.render(step, template_step=template_step, **variables)
        trace.templates[step] = prompt.identity
        try:
            completion = await self.client.ask(prompt, standin=standin)
        except BackendError as e:
            if not e.retryable:
                raise
            trace.errors[step] = str(e)
            raise SentenceFailed(step) from None
        trace.replies[step] = completion.text
        return completion.text

    def expected(self, sentence: Sentence) -> list[Mention]:
        """The gold entities of a labelled sentence (none for unlabelled data): the size of the
        stand-in answers a dry run (estimate) assumes."""
        return gold_mentions(sentence, self.schema.names) if sentence.tags else []

    async def entities(self, step: str, trace: Trace, sentence: Sentence, **variables: Any) -> list[Mention] | None:
        """Ask for entities; None (and a recorded parse failure) if the reply is unreadable."""
        gold = self.expected(sentence)
        if self.style == "gollie":
            reply = await self.ask(step, trace, code_answer({"result": gold}), template_step="gollie_direct",
                                   **variables)
            reply = complete_code(reply)
        else:
            reply = await self.ask(step, trace, answer_json(gold), **variables)
        try:
            result = parse_entities(reply, self.schema.names, self.schema.aliases,
                                    prompt=lambda: self.shown(step, None, variables), source=variables.get("text"))
        except ParseFailure as e:
            trace.parse_failures[step] = str(e)
            return None
        trace.unknown_labels += _mentions_json(result.unknown)
        return result.mentions

    def shown(self, step: str, template_step: str | None, variables: dict[str, Any]) -> list[str]:
        """The step's one-sentence prompt without this sentence's own data (text, translation,
        English entities, hints): what is left shows the example answers (format, worked and
        few-shot examples). A reply that only repeats one is a parse failure (parse.py); one that
        copies its input, e.g. the English entities, is an answer. The same for every sentence of
        a run, so rendered once per step. GoLLIE prompts show no example answers."""
        if self.style != "json":
            return []
        key = (step, template_step)
        if key not in self._shown:
            blank = {k: [] if k in ("english_entities", "hints") else "" for k in (*batching.ITEM_VARS, "hints")}
            rendered = self.templates.render(step, template_step=template_step,
                                             **{**variables, **{k: v for k, v in blank.items() if k in variables}})
            self._shown[key] = [m["content"] for m in rendered.messages]
        return self._shown[key]


@dataclass
class LLMTranslator:
    """Translation by the LLM with the `translate` template."""

    ctx: Context

    async def translate(self, sentence: Sentence, trace: Trace) -> str | None:
        reply = await self.ctx.ask("translate", trace, sentence.text, text=sentence.text,
                                   language=self.ctx.language)
        try:
            english = parse_translation(reply)
        except ParseFailure as e:
            trace.parse_failures["translate"] = str(e)
            return None
        # Small models often echo the template's source label ("Hausa: ..."); it is not part of
        # the translation.
        language = self.ctx.language
        if language and english.lower().startswith(language.lower() + ":"):
            english = english[len(language) + 1:].strip()
        return english or None


@dataclass
class LLMAnnotator:
    """English NER by the LLM with the `annotate` template."""

    ctx: Context

    async def annotate(self, english: str, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        return await self.ctx.entities("annotate", trace, sentence, text=english, labels=self.ctx.label_vars)


class Pipeline:
    """Runs one method on one sentence at a time; safe to call concurrently."""

    def __init__(self, method: str, ctx: Context, *, translator: Translator | None = None,
                 annotator: Annotator | None = None, combine: str = "none", checks: bool = True):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combination rule {combine!r}; choose from {', '.join(COMBINE_RULES)}")
        self.method = method
        self.combine = combine
        self.checks = checks
        self.ctx = ctx
        self.translator = translator or LLMTranslator(ctx)
        self.annotator = annotator or LLMAnnotator(ctx)

    async def run(self, sentence: Sentence) -> Result:
        trace = Trace(index=sentence.index, source=sentence.text,
                      gold=list(sentence.tags) if sentence.tags is not None else None)
        try:
            return await self._run(sentence, trace)
        except SentenceFailed:
            trace.failed = True
            return self._finish(sentence, trace, [], Alignment([], [], []))

    async def _run(self, sentence: Sentence, trace: Trace) -> Result:
        if self.method == "direct":
            mentions = await self._direct(sentence, trace)
            alignment = locate(sentence.text, mentions or [])
        elif self.method == "translate-test":
            _, mentions = await self._pivot(sentence, trace)
            alignment = locate(sentence.text, mentions or [], fuzzy=PROJECTION_THRESHOLD)
            # Projection failures are not the model inventing text: the English entity just
            # has no counterpart the aligner can find.
            alignment = Alignment(alignment.spans, [], alignment.unaligned + alignment.hallucinated)
        elif self.method == "transfusion-1call":
            mentions = await self._one_call(sentence, trace)
            alignment = locate(sentence.text, mentions or [])
        else:
            if self.combine == "none":
                english_mentions, mentions = await self._fusion(sentence, trace)
                alignment = locate(sentence.text, mentions or [])
            else:
                # The direct question is asked alongside the pivot, not after the fusion: a run
                # waits no longer, and --via batch sends it in the first wave.
                fused, direct = await asyncio.gather(self._fusion(sentence, trace), self._direct(sentence, trace),
                                                     return_exceptions=True)
                for outcome in (fused, direct):
                    if isinstance(outcome, BaseException):
                        raise outcome
                english_mentions, mentions = fused
                alignment = self._combined(sentence, trace, locate(sentence.text, mentions or []),
                                           english_mentions or [], direct or [])
        return self._finish(sentence, trace, mentions or [], alignment)

    async def _fusion(self, sentence: Sentence, trace: Trace) -> tuple[list[Mention] | None, list[Mention] | None]:
        """(English entities, fused source entities): translate, annotate, fuse (or GoLLIE-TF)."""
        if self.ctx.style == "gollie":
            return await self._gollie_tf(sentence, trace)
        english, english_mentions = await self._pivot(sentence, trace)
        mentions = await self.ctx.entities(
            "fuse", trace, sentence, text=sentence.text, language=self.ctx.language,
            translation=english or "(not available)",
            english_entities=_mentions_json(english_mentions or []),
            hints=evidence(sentence.text, english_mentions or []),
            labels=self.ctx.label_vars, label_names=self.ctx.schema.names,
            examples=self.ctx.example_vars)
        return english_mentions, mentions

    async def _direct(self, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        return await self.ctx.entities(
            "direct", trace, sentence, text=sentence.text, language=self.ctx.language,
            labels=self.ctx.label_vars, label_names=self.ctx.schema.names, examples=self.ctx.example_vars)

    def _combined(self, sentence: Sentence, trace: Trace, fusion: Alignment, english: Sequence[Mention],
                  direct: Sequence[Mention]) -> Alignment:
        """The three views of the sentence combined by the rule (combine.py) into the answer."""
        views = {"fusion": fusion.spans,
                 "direct": locate(sentence.text, direct).spans,
                 "projection": locate(sentence.text, english, fuzzy=PROJECTION_THRESHOLD).spans}
        if self.checks:   # a span the checks would drop must not block another view's span
            views = {name: check_spans(spans, sentence.text, self.ctx.schema) for name, spans in views.items()}
        trace.views = {name: [{"start": s.start, "end": s.end, "type": s.label, "text": s.text} for s in spans]
                       for name, spans in views.items()}
        trace.combine = self.combine
        return Alignment(combine_views(self.combine, views), fusion.hallucinated, fusion.unaligned)

    async def _one_call(self, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        """TransFusion in one call: translation, English entities and source entities in one JSON
        reply. Missing parts are recorded in the trace (`missing`); only the source entities are
        needed for the prediction."""
        gold = self.ctx.expected(sentence)
        standin = json.dumps({"translation": sentence.text, "english_entities": _mentions_json(gold),
                              "entities": _mentions_json(gold)}, ensure_ascii=False)
        variables = dict(text=sentence.text, language=self.ctx.language, labels=self.ctx.label_vars,
                         examples=self.ctx.example_vars)
        reply = await self.ctx.ask("tf1", trace, standin, template_step="transfusion_1call", **variables)
        value = parse_json_value(reply)
        if not isinstance(value, dict):
            trace.parse_failures["tf1"] = "no JSON object in the reply"
            return None
        parts = {str(k).lower(): v for k, v in value.items()}
        missing = [k for k in ("translation", "english_entities", "entities") if k not in parts]
        if missing:
            trace.missing = missing
        if isinstance(parts.get("translation"), str):
            trace.translation = parts["translation"]
        names, aliases = self.ctx.schema.names, self.ctx.schema.aliases
        if "english_entities" in parts:
            try:
                english = parse_entities(json.dumps({"entities": parts["english_entities"]}), names, aliases)
                trace.english_entities = _mentions_json(english.mentions)
            except ParseFailure:
                pass
        if "entities" not in parts:
            trace.parse_failures["tf1"] = "the reply has no 'entities'"
            return None
        try:
            result = parse_entities(json.dumps({"entities": parts["entities"]}, ensure_ascii=False), names, aliases,
                                    prompt=lambda: self.ctx.shown("tf1", "transfusion_1call", variables),
                                    source=sentence.text)
        except ParseFailure as e:
            trace.parse_failures["tf1"] = str(e)
            return None
        trace.unknown_labels += _mentions_json(result.unknown)
        return result.mentions

    async def _gollie_tf(self, sentence: Sentence, trace: Trace) -> tuple[list[Mention] | None, list[Mention] | None]:
        """GoLLIE-TF: translate, then one generation writes `result` (English entities) and
        `final_result` (source entities). The English annotation is not a separate call."""
        english = await self.translator.translate(sentence, trace)
        trace.translation = english
        gold = self.ctx.expected(sentence)
        reply = await self.ctx.ask("fuse", trace, code_answer({"result": gold, "final_result": gold}),
                                   template_step="gollie_tf", text=sentence.text, language=self.ctx.language,
                                   translation=english or "", labels=self.ctx.label_vars)
        lists = parse_code_assignments(complete_code(reply), self.ctx.schema.names, self.ctx.schema.aliases)
        if "result" in lists:
            if self.checks:
                lists["result"] = check_english(lists["result"], self.ctx.schema.names)
            trace.english_entities = _mentions_json(lists["result"])
        if "final_result" not in lists:
            trace.parse_failures["fuse"] = ("no final_result in the reply" if lists
                                            else "no result/final_result lists in the reply")
            return lists.get("result"), None
        return lists.get("result"), lists["final_result"]

    async def _pivot(self, sentence: Sentence, trace: Trace) -> tuple[str | None, list[Mention] | None]:
        """Translate into English and annotate the translation (shared by both pivot methods)."""
        english = await self.translator.translate(sentence, trace)
        trace.translation = english
        if not english:
            return None, None
        english_mentions = await self.annotator.annotate(english, sentence, trace)
        if english_mentions is not None:
            english_mentions = (check_english(english_mentions, self.ctx.schema.names) if self.checks
                                else english_mentions)
            trace.english_entities = _mentions_json(english_mentions)
        return english, english_mentions

    def _finish(self, sentence: Sentence, trace: Trace, mentions: Sequence[Mention],
                alignment: Alignment) -> Result:
        spans = check_spans(alignment.spans, sentence.text, self.ctx.schema) if self.checks else alignment.spans
        alignment = Alignment(spans, alignment.hallucinated, alignment.unaligned)
        tags = spans_to_bio(sentence.offsets, alignment.spans)
        trace.parsed = _mentions_json(mentions)
        trace.spans = [{"start": s.start, "end": s.end, "type": s.label, "text": s.text, "match": s.match}
                       for s in alignment.spans]
        trace.hallucinated = _mentions_json(alignment.hallucinated)
        trace.unaligned = _mentions_json(alignment.unaligned)
        trace.predicted = tags
        return Result(sentence=sentence, tags=tags, spans=list(alignment.spans), trace=trace)
