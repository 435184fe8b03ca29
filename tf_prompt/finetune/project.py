"""`tf-prompt project-data`: labelled sentences in a language that has none, by translating English
labelled sentences with their entities in markers (the TransFusion paper's recipe, EasyProject
style). See markers.py for how a reply is read and why one is refused.

Why a command of its own, writing a CoNLL file, rather than an option of `finetune-data`: the
projected data is an artefact worth reading and reusing on its own (a CoNLL file any NER
trainer takes; `finetune-data --data` then renders it for any method, style and format), and
the drops are a property of the translation, counted once here.

Every translation is one call of the `project` template through the model client, so the reply
cache, retries, rate limits, --max-cost, --concurrency and the progress line apply as in a run,
and a rerun into the same folder costs nothing for the sentences already answered. The outputs are
rebuilt from the replies on each run and each is written atomically; a folder holding the outputs
of other settings (another English file, language, model or template) is refused unless
--overwrite, as `run` refuses one. The folder is locked while a run works in it
(util/folderlock.py): a second run into it is refused instead of replacing the first one's outputs.

Outputs in --out:
  projected.conll    `token TAG` lines of the target sentences kept (IOB2), blank line between;
  translations.jsonl {"source": target sentence, "translation": original English, "english_line",
                     "english_entities": its gold entities} per kept sentence:
                     `--translator file:translations.jsonl` gives finetune-data (or a run) the
                     original English as the translation, `--annotator file:translations.jsonl`
                     its gold entities as the English entities, with no further call;
  dropped.jsonl      every sentence not kept: its English line, the reason, the reply;
  summary.json       sentences in, kept, dropped by reason, not done, entities, calls/tokens/$.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_prompt.api import default_model, load_sentences, make_client
from tf_prompt.backends.base import BackendError
from tf_prompt.data.conll import Sentence, physical_lines
from tf_prompt.data.languages import language_name
from tf_prompt.finetune.markers import (
    DUPLICATE,
    NO_TRANSLATION,
    REASONS,
    Dropped,
    Marked,
    Projected,
    mark,
    project,
)
from tf_prompt.llm.client import BudgetExceeded
from tf_prompt.llm.progress import Progress
from tf_prompt.parsing.translation import parse_translation
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.runs.rundir import data_digest
from tf_prompt.settings import RunSettings
from tf_prompt.types import DataError, ParseFailure
from tf_prompt.util.atomic import write_text
from tf_prompt.util.folderlock import FolderBusy, exclusive

STEP = "project"
FILES = {"conll": "projected.conll", "translations": "translations.jsonl", "dropped": "dropped.jsonl",
         "summary": "summary.json"}
#: Why a sentence has no outcome yet: a rerun does it (cached replies are free).
BUDGET = "budget reached (--max-cost)"
CALL_FAILED = "the translation call failed"
NO_ENTITIES = "no entities (--only-with-entities)"


@dataclass
class Outcome:
    """What one English sentence gave: a target sentence, a drop (with its reason), or nothing
    yet (`not_done`: the call failed or the budget stopped it)."""

    english: Sentence
    marked: Marked | None = None
    reply: str | None = None
    result: Projected | Dropped | None = None
    not_done: str | None = None
    error: str | None = None


def _reply_text(reply: str, language: str) -> str:
    """The translation in a reply, without fences, preambles, quotes or a `Hausa:` label. A reply
    that repeats the prompt's `English: ...` line before its `Hausa: ...` one is read from the
    latter (the English line would otherwise bring its own markers)."""
    label = f"{language}:"
    lines = physical_lines(reply.strip())
    at = next((i for i, line in enumerate(lines) if i and line.strip().casefold().startswith(label.casefold())), None)
    if at is not None and any(line.strip().casefold().startswith("english:") for line in lines[:at]):
        reply = "\n".join(lines[at:])
    text = parse_translation(reply)
    if text[: len(label)].casefold() == label.casefold():
        text = text[len(label):].strip()
    return text


async def _one(sentence: Sentence, *, client: Any, templates: TemplateSet, language: str,
               labels: Sequence[str] | None, only_with_entities: bool) -> Outcome:
    marked = mark(sentence, labels)
    if isinstance(marked, Dropped):
        return Outcome(sentence, result=marked)
    if only_with_entities and not marked.entities:
        return Outcome(sentence, marked, not_done=NO_ENTITIES)
    prompt = templates.render(STEP, text=marked.text, language=language)
    try:
        completion = await client.ask(prompt, standin=marked.text)
    except BudgetExceeded:
        return Outcome(sentence, marked, not_done=BUDGET)
    except BackendError as e:
        return Outcome(sentence, marked, not_done=CALL_FAILED, error=str(e))
    try:
        text = _reply_text(completion.text, language)
    except ParseFailure:
        return Outcome(sentence, marked, completion.text, Dropped(NO_TRANSLATION))
    return Outcome(sentence, marked, completion.text, project(text, marked))


def _check_folder(out: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Refuse a folder holding another projection's outputs (unless --overwrite)."""
    summary = out / FILES["summary"]
    if overwrite or not summary.is_file():
        return
    try:
        earlier = json.loads(summary.read_text(encoding="utf-8")).get("identity")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier != identity:
        changed = sorted(k for k in identity if not isinstance(earlier, dict) or earlier.get(k) != identity[k])
        raise DataError(f"--out {out}: holds the outputs of another projection (different "
                        f"{', '.join(changed) or 'summary'}); choose another --out or add --overwrite")


def _drop_duplicates(outcomes: Sequence[Outcome]) -> None:
    """A target sentence that two different English sentences gave would have two translations in
    translations.jsonl (file: refuses that): the later one is dropped."""
    seen: dict[str, str] = {}
    for o in outcomes:
        if isinstance(o.result, Projected):
            key = " ".join(o.result.tokens)
            english = " ".join(o.english.tokens)
            if seen.setdefault(key, english) != english:
                o.result = Dropped(DUPLICATE)


async def project_data_async(settings: RunSettings, english: str, *, labels: Sequence[str] | None = None,
                             only_with_entities: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Translate the labelled English sentences of `english` into settings.language with their
    entities marked; write the outputs (module docstring) into settings.out; return the summary.

    `dry_run` (--estimate): nothing is sent and nothing written; each uncached call is counted
    and priced with a reply as long as the marked English, and the summary says what it would
    cost (`usage`: calls, cache_hits, tokens, cost_usd)."""
    if not settings.language:
        raise DataError("--lang: the target language is needed (a code such as hau, or a name)")
    if settings.out is None:
        raise DataError("project-data needs --out DIR")
    if Path(settings.out).exists() and not Path(settings.out).is_dir():
        raise DataError(f"--out {settings.out}: exists and is not a folder")
    language = language_name(settings.language) or settings.language
    sentences, path, _ = load_sentences(english, settings.limit)
    unlabelled = next((s for s in sentences if s.tags is None), None)
    if unlabelled is not None:
        raise DataError(f"{unlabelled.path or path}:{unlabelled.line or 1}: no NER tags (one column): "
                        f"project-data needs labelled English CoNLL data")
    if labels is not None:
        types = sorted({tag[2:] for s in sentences for tag in s.tags or () if tag != "O"})
        unknown = [lab for lab in labels if lab not in types]
        if unknown:
            raise DataError(f"--labels {','.join(labels)}: {', '.join(unknown)} is no entity type of {path} "
                            f"(its types: {', '.join(types) or 'none'})")
    templates = TemplateSet(settings.prompts)
    out = Path(settings.out)
    identity = {"english": str(Path(path).resolve()), "language": language, "model": default_model(settings)[0],
                "template": templates.identity(STEP), "labels": None if labels is None else sorted(labels),
                "decoding": settings.decoding_params(), "only_with_entities": only_with_entities}
    with contextlib.ExitStack() as hold:
        if not dry_run:   # one run per folder: a second would replace this one's outputs with its own
            try:
                out.mkdir(parents=True, exist_ok=True)
                hold.enter_context(exclusive(out))
            except FolderBusy:
                raise DataError(f"--out {out}: another tf-prompt project-data is writing this folder: wait for "
                                "it, or choose another --out") from None
            except OSError as e:
                raise DataError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
            _check_folder(out, identity, settings.overwrite)
        client = make_client(settings, dry_run=dry_run)
        progress = Progress(len(sentences), client.usage, settings.progress, desc=STEP)
        gate = asyncio.Semaphore(max(1, settings.concurrency or 1))

        async def one(sentence: Sentence) -> Outcome:
            async with gate:
                outcome = await _one(sentence, client=client, templates=templates, language=language,
                                     labels=labels, only_with_entities=only_with_entities)
            progress.advance()
            return outcome

        started = time.perf_counter()
        try:
            outcomes = await asyncio.gather(*(one(s) for s in sentences))
        finally:
            client.usage.wall_seconds = time.perf_counter() - started
            progress.close()
            try:
                await client.aclose()
            finally:
                if client.cache is not None:
                    client.cache.close()
        if dry_run:
            return {"estimate": True, "sentences_in": len(outcomes), "language": language,
                    "model": identity["model"], "template": identity["template"],
                    "not_sent": dict(Counter(o.result.reason if isinstance(o.result, Dropped) else o.not_done
                                             for o in outcomes if o.reply is None and (o.result or o.not_done))),
                    "tokenizer": client.tokenizer_name, "tokenizer_note": client.tokenizer_note,
                    "prices_date": client.prices.date, "usage": client.usage.to_dict()}
        _drop_duplicates(outcomes)
        summary = write_outputs(out, outcomes, extra={
            "english_path": path, "english_sha256": data_digest([(s.tokens, s.tags) for s in sentences]),
            "limit": settings.limit, "language": language, "model": identity["model"], "template": identity["template"],
            "labels": identity["labels"], "identity": identity, "usage": client.usage.to_dict()})
        if client.stopped is not None:   # auth, quota...: outputs so far are written, then the one-line error
            raise client.stopped
        return summary


def write_outputs(out: Path, outcomes: Sequence[Outcome], *, extra: dict[str, Any]) -> dict[str, Any]:
    """Write projected.conll, translations.jsonl, dropped.jsonl and summary.json (last)."""
    conll: list[str] = []
    translations: list[str] = []
    dropped: list[str] = []
    kept = [o for o in outcomes if isinstance(o.result, Projected)]
    for o in kept:
        assert isinstance(o.result, Projected) and o.marked is not None
        conll.append("".join(f"{tok} {tag}\n" for tok, tag in zip(o.result.tokens, o.result.tags, strict=True)) + "\n")
        translations.append(json.dumps({
            "source": " ".join(o.result.tokens), "translation": o.marked.plain,
            "english_line": o.english.line, "english_entities": [
                {"text": text, "type": e.label} for text, e in zip(o.marked.entity_texts, o.marked.entities,
                                                                   strict=True)]},
            ensure_ascii=False) + "\n")
    for o in outcomes:
        if isinstance(o.result, Dropped) or o.not_done:
            dropped.append(json.dumps({
                "english_line": o.english.line, "english": o.marked.text if o.marked else o.english.text,
                "reason": o.result.reason if isinstance(o.result, Dropped) else o.not_done,
                "dropped": isinstance(o.result, Dropped), "reply": o.reply, "error": o.error},
                ensure_ascii=False) + "\n")
    by_reason = Counter(o.result.reason for o in outcomes if isinstance(o.result, Dropped))
    not_done = Counter(o.not_done for o in outcomes if o.not_done)
    summary: dict[str, Any] = {
        **extra, "files": FILES,
        "sentences_in": len(outcomes), "kept": len(kept), "dropped": sum(by_reason.values()),
        "dropped_by_reason": {r: by_reason[r] for r in REASONS if by_reason[r]},
        "not_done": dict(not_done),
        "entities": {"english_marked": sum(len(o.marked.entities) for o in outcomes if o.marked is not None),
                     "kept": sum(len(o.marked.entities) for o in kept if o.marked is not None)},
        "tokens_kept": sum(len(o.result.tokens) for o in kept if isinstance(o.result, Projected)),
        "types_matched_by_name_out_of_order": sum(1 for o in kept if isinstance(o.result, Projected)
                                                  and o.result.reordered),
        "markers_inside_a_word_widened": sum(o.result.widened for o in kept if isinstance(o.result, Projected)),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / FILES["conll"], "".join(conll))
        write_text(out / FILES["translations"], "".join(translations))
        write_text(out / FILES["dropped"], "".join(dropped))
        write_text(out / FILES["summary"], json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    except OSError as e:   # a full disk, a read-only folder: the replies are cached, a rerun is free
        raise DataError(f"--out {out}: cannot write ({e.strerror or e}); the replies are cached: rerun once "
                        f"it can be written") from None
    return summary


def project_data(english: str, *, labels: Sequence[str] | None = None, only_with_entities: bool = False,
                 **settings: Any) -> dict[str, Any]:
    """Synchronous `project_data_async` taking RunSettings fields as keywords."""
    return asyncio.run(project_data_async(RunSettings(**settings), english, labels=labels,
                                          only_with_entities=only_with_entities))
