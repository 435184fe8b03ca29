"""`tf-prompt finetune-data`: supervised examples from labelled CoNLL data, rendered with exactly
the prompts a run sends, each answered in the form the run's parser reads.

Why this shape: a model fine-tuned on these examples is then run with the same method and style,
so every prompt it was trained on must be byte for byte an inference prompt. Rather than
re-implement each method's prompt variables here, the method itself is run on the sentence with
a recording context (`_Recorder`): it renders every step exactly as at inference, and instead of
calling the model it records the prompt and answers with the known answer:

  - direct, fuse, tf1: the gold entities of the sentence (fuse in GoLLIE-TF style also writes
    `result`, the English entities; tf1 also the translation and the English entities);
  - translate: the translation from the --translator component (file:PATH, mt:DIR) or the LLM;
  - annotate: the English entities from the --annotator component (spaCy, file:PATH) or the LLM.

The translation and English entities are obtained first ("teacher pass") with the usual step
code, so LLM calls go through the client: cached, retried and held to --max-cost like a run.

Which steps yield examples: the steps the model answers at inference with the same settings
(Method.llm_steps), one example per step and sentence. With --translator file:/mt: there is no
translate example, with --annotator spacy/file: no annotate example (the model is not asked those
at inference). When the pivot check turns the translation down, the sentence is answered by direct
at inference, so it gets a direct example and no translate example (a rejected translation is
not something to learn). A sentence whose translation or English entities are unreadable is
skipped and listed in the summary.

Every gold answer is read back by the method's own parser during the recording pass; a sentence
whose answer does not give back its gold entities is skipped and listed (none is expected).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_prompt.api import build_pipeline, default_model, load_sentences, make_client
from tf_prompt.data.conll import Sentence
from tf_prompt.llm.cost import PriceTable, tokenizer_for
from tf_prompt.methods.context import (
    Context,
    SentenceRun,
    answer_json,
    code_answer,
    gold_mentions,
    mentions_json,
)
from tf_prompt.methods.pipeline import Pipeline
from tf_prompt.methods.steps import annotate, translate
from tf_prompt.prompting.templates import Prompt
from tf_prompt.settings import RunSettings
from tf_prompt.types import DataError, Mention, SentenceFailed, Trace
from tf_prompt.util.atomic import write_text
from tf_prompt.util.folderlock import FolderBusy, exclusive

#: --format: OpenAI chat fine-tuning ({"messages"}), Hugging Face conversational ({"messages"},
#: what TRL's SFTTrainer reads) or Hugging Face prompt/completion ({"prompt", "completion"}).
FORMATS = ("openai", "hf", "hf-prompt")
#: The methods whose answers can be written from gold data (translate-test's answer is a
#: projection, not a model reply).
METHODS = ("direct", "transfusion", "transfusion-1call")
DEFAULT_VALIDATION_SHARE = 0.1
DEFAULT_EPOCHS = 3
SPLITS = ("train", "validation")
FILES = {"train": "train.jsonl", "validation": "validation.jsonl"}


def split_of(text: str, validation_share: float) -> str:
    """"train" or "validation" for a sentence, from a hash of its text alone: the same sentence
    lands in the same split whatever the order, --limit or other sentences (a repeated sentence
    never sits in both)."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return "validation" if h < validation_share * 2 ** 64 else "train"


@dataclass(frozen=True)
class Example:
    """One supervised example: the prompt of one step for one sentence, and its answer."""

    index: int
    step: str
    template: str          # the template's identity (file @ digest), as a run's metrics.json records it
    messages: list[dict[str, str]]
    answer: str

    def conversation(self) -> list[dict[str, str]]:
        return [*self.messages, {"role": "assistant", "content": self.answer}]

    def line(self, fmt: str) -> dict[str, Any]:
        """The JSONL record in format `fmt` (FORMATS)."""
        if fmt == "hf-prompt":
            return {"prompt": self.messages, "completion": [{"role": "assistant", "content": self.answer}]}
        return {"messages": self.conversation()}


class _KnownTranslator:
    """Stands in for the --translator component in the recording pass: the teacher's translation."""

    def __init__(self, english: str | None):
        self.english = english

    async def translate(self, sentence: Sentence, trace: Trace) -> str | None:
        return self.english


class _KnownAnnotator:
    """Stands in for the --annotator component in the recording pass: the teacher's entities."""

    def __init__(self, mentions: Sequence[Mention] | None):
        self.mentions = mentions

    async def annotate(self, english: str, sentence: Sentence, trace: Trace) -> list[Mention] | None:
        return None if self.mentions is None else list(self.mentions)


@dataclass
class _Recorder(Context):
    """A Context whose model calls render the prompt exactly as at inference, record it, and
    answer with the known answer of the step instead of calling anything."""

    answers: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[str, Prompt, str]] = field(default_factory=list)

    async def ask_single(self, step: str, trace: Trace, standin: str, *, template_step: str | None = None,
                         reply: str | None = None, **variables: Any) -> str:
        prompt = self.templates.render(step, template_step=template_step, **variables)
        trace.templates[step] = prompt.identity
        if step not in self.answers:   # a method asked a step this module has no answer for
            raise DataError(f"finetune-data: no known answer for step {step!r} of this method")
        answer = continued(prompt, self.answers[step])
        self.asked.append((step, prompt, answer))
        trace.replies[step] = answer
        return answer


#: How GoLLIE prompts end: the model continues the code after it.
CODE_OPENING = "result = ["


def continued(prompt: Prompt, answer: str) -> str:
    """The answer as the continuation of the prompt: a GoLLIE prompt already ends with
    `result = [`, so its answer starts after it (as a model continues the code at inference;
    the parser completes the line again, context.complete_code)."""
    last = prompt.messages[-1]["content"] if prompt.messages else ""
    if answer.startswith(CODE_OPENING) and last.rstrip().endswith(CODE_OPENING):
        return answer[len(CODE_OPENING):]
    return answer


def known_answers(style: str, gold: Sequence[Mention], english: str | None,
                  english_mentions: Sequence[Mention] | None) -> dict[str, str]:
    """The answer text of each step, written as the step's parser reads it."""
    if style == "gollie":
        answers = {"direct": code_answer({"result": gold})}
    else:
        answers = {"direct": answer_json(gold), "fuse": answer_json(gold)}
    if english is not None and english_mentions is not None:
        answers["translate"] = english
        answers["annotate"] = (code_answer({"result": english_mentions}) if style == "gollie"
                               else answer_json(english_mentions))
        if style == "gollie":
            answers["fuse"] = code_answer({"result": english_mentions, "final_result": gold})
        answers["tf1"] = json.dumps({"translation": english, "english_entities": mentions_json(english_mentions),
                                     "entities": mentions_json(gold)}, ensure_ascii=False)
    return answers


@dataclass
class SentenceOutcome:
    """What one sentence gave: its examples, or why it was skipped."""

    sentence: Sentence
    examples: list[Example] = field(default_factory=list)
    skipped: str | None = None
    pivot_rejected: bool = False


def _pivots(pipeline: Pipeline) -> bool:
    """Whether the method needs a translation and English entities (to ask or to answer with)."""
    return any(step.name in ("translate", "tf1") for step in pipeline.method.steps)


async def sentence_examples(pipeline: Pipeline, sentence: Sentence) -> SentenceOutcome:
    """The examples of one labelled sentence (see the module docstring)."""
    ctx = pipeline.ctx
    gold = gold_mentions(sentence, ctx.schema.names)
    english: str | None = None
    english_mentions: list[Mention] | None = None
    if _pivots(pipeline):
        teach = SentenceRun(ctx, sentence, Trace(index=sentence.index, source=sentence.text),
                            translator=pipeline.translator, annotator=pipeline.annotator, checks=pipeline.checks)
        try:
            english = await translate(teach)
            if not english:
                return SentenceOutcome(sentence, skipped="no readable translation")
            english_mentions = await annotate(teach, english)
        except SentenceFailed as e:
            return SentenceOutcome(sentence, skipped=f"the {e} call failed after its retries")
        if english_mentions is None:
            return SentenceOutcome(sentence, skipped="no readable English entities")
    recorder = _Recorder(client=ctx.client, templates=ctx.templates, schema=ctx.schema, language=ctx.language,
                         examples=ctx.examples, style=ctx.style, constrain=ctx.constrain,
                         answers=known_answers(ctx.style, gold, english, english_mentions))
    trace = Trace(index=sentence.index, source=sentence.text)
    run = SentenceRun(recorder, sentence, trace,
                      translator=None if pipeline.translator is None else _KnownTranslator(english),
                      annotator=None if pipeline.annotator is None else _KnownAnnotator(english_mentions),
                      combine=pipeline.combine, checks=pipeline.checks, pivot_check=pipeline.pivot_check)
    answer = await pipeline.method.run(run)
    if Counter((m.text, m.label) for m in answer.mentions) != Counter((m.text, m.label) for m in gold):
        return SentenceOutcome(sentence, skipped="the gold answer does not read back as the gold entities")
    rejected = trace.pivot_skipped is not None
    order: dict[str, int] = {step.name: i for i, step in enumerate(pipeline.method.steps)}
    examples = [Example(sentence.index, step, prompt.identity, prompt.messages, answer_text)
                for step, prompt, answer_text in sorted(recorder.asked, key=lambda a: order.get(a[0], len(order)))
                if not (rejected and step == "translate")]
    return SentenceOutcome(sentence, examples, pivot_rejected=rejected)


#: The settings besides method, style, translator and annotator that change what a prompt says:
#: a run of the tuned model must repeat them to be asked what it was trained on.
PROMPT_SETTINGS = ("combine", "checks", "pivot_check", "language", "schema_spec", "labels", "shots", "shots_from",
                   "prompts")


def prompt_settings(settings: RunSettings) -> dict[str, Any]:
    """PROMPT_SETTINGS that differ from their defaults (summary.json, for finetune's run command)."""
    defaults = RunSettings()
    return {name: getattr(settings, name) for name in PROMPT_SETTINGS
            if getattr(settings, name) != getattr(defaults, name)}


def check_options(settings: RunSettings, fmt: str, validation_share: float, epochs: int) -> None:
    """Refuse what finetune-data cannot do, before anything is loaded or paid for."""
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    if settings.method not in METHODS:
        raise DataError(f"--method {settings.method}: finetune-data writes examples for {', '.join(METHODS)}")
    if not 0 <= validation_share < 1:
        raise DataError(f"--validation-share {validation_share}: expected a share from 0 up to (not including) 1")
    if epochs < 1:
        raise DataError(f"--epochs {epochs}: expected at least 1")
    if settings.batch_sentences != 1:
        raise DataError("--batch-sentences: finetune-data writes one-sentence prompts (the numbered prompts "
                        "are not trained on)")
    if settings.out is None:
        raise DataError("finetune-data needs --out DIR")
    if Path(settings.out).exists() and not Path(settings.out).is_dir():
        raise DataError(f"--out {settings.out}: exists and is not a folder")


async def finetune_data_async(settings: RunSettings, *, fmt: str = "openai",
                              validation_share: float = DEFAULT_VALIDATION_SHARE,
                              train_model: str | None = None, epochs: int = DEFAULT_EPOCHS,
                              sentences: Sequence[Sentence] | None = None) -> dict[str, Any]:
    """Write train.jsonl, validation.jsonl and summary.json into settings.out; return the summary.

    `train_model` is the model to be fine-tuned (its tokenizer counts the tokens, its training
    price gives the $ estimate); default: the --model of the settings.
    """
    check_options(settings, fmt, validation_share, epochs)
    data_path: str | None = None
    total = None if sentences is None else len(sentences)
    if sentences is None:
        sentences, data_path, total = load_sentences(settings.data, settings.limit)
    unlabelled = next((s for s in sentences if s.tags is None), None)
    if unlabelled is not None:
        where = unlabelled.path or data_path or "the data"
        line = f":{unlabelled.line}" if unlabelled.line else ""
        raise DataError(f"{where}{line}: no NER tags (one column): finetune-data needs labelled CoNLL data")
    client = make_client(settings)
    try:
        pipeline = build_pipeline(settings, client, sentences, total)
        gate = asyncio.Semaphore(max(1, settings.concurrency or 1))

        async def one(sentence: Sentence) -> SentenceOutcome:
            async with gate:
                return await sentence_examples(pipeline, sentence)

        outcomes = await asyncio.gather(*(one(s) for s in sentences))
    finally:
        try:
            await client.aclose()
        finally:
            if client.cache is not None:
                client.cache.close()
    model = train_model or default_model(settings)[0]
    return write_examples(Path(settings.out or "."), outcomes, fmt=fmt, validation_share=validation_share,
                          # the table the client loaded before any call: read again here, a price file
                          # edited (or a package upgraded) during a long run would fail the finished run
                          train_model=model, epochs=epochs, prices=client.prices,
                          extra={"method": settings.method, "style": settings.style, "data_path": data_path,
                                 "translator": settings.translator, "annotator": settings.annotator,
                                 "prompt_settings": prompt_settings(settings),
                                 "teacher_model": default_model(settings)[0],
                                 "teacher_usage": client.usage.to_dict()})


def write_examples(out: Path, outcomes: Sequence[SentenceOutcome], *, fmt: str, validation_share: float,
                   train_model: str, epochs: int, prices: PriceTable, extra: dict[str, Any]) -> dict[str, Any]:
    """Split, count and write the examples; the summary says what is where and what it costs."""
    tokenizer = tokenizer_for(train_model.removeprefix("openai:"))
    lines: dict[str, list[str]] = {s: [] for s in SPLITS}
    counts = {s: {"sentences": 0, "examples": 0, "tokens": 0} for s in SPLITS}
    by_step: dict[str, dict[str, int]] = {}
    templates: dict[str, str] = {}
    for outcome in sorted(outcomes, key=lambda o: o.sentence.index):
        if outcome.skipped:
            continue
        split = split_of(outcome.sentence.text, validation_share)
        counts[split]["sentences"] += 1
        for ex in outcome.examples:
            lines[split].append(json.dumps(ex.line(fmt), ensure_ascii=False))
            counts[split]["examples"] += 1
            counts[split]["tokens"] += tokenizer.count_messages(ex.conversation())
            by_step.setdefault(ex.step, dict.fromkeys(SPLITS, 0))[split] += 1
            templates.setdefault(ex.step, ex.template)
    price = prices.lookup(train_model)
    per_epoch = prices.training_cost(train_model, counts["train"]["tokens"])
    summary: dict[str, Any] = {
        **extra, "format": fmt, "files": FILES, "validation_share": validation_share,
        "n_sentences": len(outcomes), "split": counts, "by_step": by_step, "templates": templates,
        "skipped": [{"index": o.sentence.index, "reason": o.skipped} for o in outcomes if o.skipped],
        "pivot_rejected": sum(1 for o in outcomes if o.pivot_rejected),
        "train_model": train_model, "tokenizer": tokenizer.name, "tokenizer_note": tokenizer.note,
        "training_price_per_1m": price.training if price is not None else None,
        "prices_date": prices.date, "epochs": epochs,
        "training_cost_usd_per_epoch": per_epoch,
        "training_cost_usd": None if per_epoch is None else per_epoch * epochs,
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        # not under a running `finetune` (it holds the folder) or another finetune-data
        with exclusive(out):
            for split in SPLITS:
                write_text(out / FILES[split], "".join(line + "\n" for line in lines[split]))
            write_text(out / "summary.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    except FolderBusy:
        raise DataError(f"--out {out}: another tf-prompt command (a finetune on this data, or a finetune-data) is "
                        "using this folder: rerun once it has ended (the teacher's replies are cached)") from None
    except OSError as e:   # a full disk, a read-only folder: the teacher's replies are cached, a rerun is free
        raise DataError(f"--out {out}: cannot write ({e.strerror or e}); the teacher's replies are cached: "
                        f"rerun once it can be written") from None
    return summary


def finetune_data(*, fmt: str = "openai", validation_share: float = DEFAULT_VALIDATION_SHARE,
                  train_model: str | None = None, epochs: int = DEFAULT_EPOCHS, **settings: Any) -> dict[str, Any]:
    """Synchronous `finetune_data_async` taking RunSettings fields as keywords."""
    return asyncio.run(finetune_data_async(RunSettings(**settings), fmt=fmt, validation_share=validation_share,
                                           train_model=train_model, epochs=epochs))
