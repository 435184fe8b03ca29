"""The `tf-prompt` command line: `tf-prompt run ...` (more subcommands join as they are built).

Every expected failure (bad data, bad schema, template error, API error) ends as one line on
stderr, `tf-prompt: error: ...`, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from tf_prompt import __version__
from tf_prompt.backends.base import BackendError
from tf_prompt.components.translators import ComponentError
from tf_prompt.data.conll import DataError
from tf_prompt.data.schema import SchemaError
from tf_prompt.finetune.gguf_export import GGUFExportError
from tf_prompt.finetune.lora import LoraError
from tf_prompt.llm.cache import CacheError
from tf_prompt.llm.client import BudgetExceeded
from tf_prompt.llm.cost import PriceError
from tf_prompt.llm.presets import ModelError
from tf_prompt.methods import METHODS, STYLES
from tf_prompt.prompting.constraints import MODES as CONSTRAIN_MODES
from tf_prompt.runs.summary import format_summary
from tf_prompt.scoring.metrics import SCORERS
from tf_prompt.settings import RunSettings
from tf_prompt.spans.combine import DEFAULT as DEFAULT_COMBINE
from tf_prompt.spans.combine import RULES as COMBINE_RULES
from tf_prompt.types import TemplateError
from tf_prompt.util.formatting import money
from tf_prompt.util.validation import first_problem

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INCOMPLETE = 3


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="gpt-4o, openai:NAME, gemini:MODEL (key $GEMINI_API_KEY or $GOOGLE_API_KEY), "
                                   "azure:DEPLOYMENT (key $AZURE_OPENAI_API_KEY, endpoint --base-url or "
                                   "$AZURE_OPENAI_ENDPOINT), gguf:PATH_OR_PRESET, hf:DIR_OR_REPO (default: "
                                   "gpt-4o-mini with an API key or --base-url, else the embedded "
                                   "gguf:qwen2.5-coder-1.5b)")
    g.add_argument("--n-threads", type=int, help="CPU threads of a local model (default: all cores)")
    g.add_argument("--n-ctx", type=int, help="context size of a gguf model (default: 4096)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; for gemini: "
                                      "the API root; for azure: the resource endpoint "
                                      "(default: $OPENAI_BASE_URL or OpenAI)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (default: %(default)s; for gemini: "
                        "GEMINI_API_KEY or GOOGLE_API_KEY, for azure: AZURE_OPENAI_API_KEY)")
    g.add_argument("--api-version", help="azure: the Azure OpenAI API version (default: $OPENAI_API_VERSION, "
                                         "else 2024-10-21)")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--max-tokens", type=int, default=1024,
                   help="cap on completion tokens per call (default: %(default)s; bounds the worst case of --max-cost)")
    g.add_argument("--seed", type=int, help="sampling seed sent to the API (where supported)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    d = p.add_argument_group("data")
    d.add_argument("--data", "--dataset", dest="data",
                   help="CoNLL file, or masakhaner2:LANG[:SPLIT], or 'sample' (default: the shipped sample)")
    d.add_argument("--lang", dest="language", help="source language code or name (default: guessed from --data)")
    d.add_argument("--limit", type=int, help="use only the first N sentences")
    t = p.add_argument_group("task")
    t.add_argument("--method", default="transfusion", choices=METHODS)
    t.add_argument("--style", default="json", choices=STYLES,
                   help="prompt style: json (chat instructions) or gollie (Python code, GoLLIE/GoLLIE-TF)")
    t.add_argument("--combine", choices=list(COMBINE_RULES),
                   help="transfusion: how its answer is made from the fusion, direct and projected answers "
                        f"(default: {DEFAULT_COMBINE}; none = the fusion answer alone, as in the paper)")
    t.add_argument("--no-checks", dest="checks", action="store_false",
                   help="keep answers as the model gave them: no number/name-shape/title/prefix/date checks")
    t.add_argument("--pivot-check", dest="pivot_check", action=argparse.BooleanOptionalAction, default=None,
                   help="transfusion: answer a sentence whose translation echoes the source or is not English "
                        "with the direct view, without asking annotate and fuse (default: on with a "
                        "combination rule, off with --combine none)")
    t.add_argument("--constrain", default="none", choices=list(CONSTRAIN_MODES),
                   help="answers that can only be well formed: json (the answer's JSON schema, types from the "
                        "labels) or spans (json, and each entity one of the sentence's word n-grams); the "
                        "translation stays free text; not with --style gollie (default: %(default)s)")
    t.add_argument("--scorer", default="conll", choices=list(SCORERS),
                   help="the headline scores: conll (seqeval: type and exact token span, as MasakhaNER), string "
                        "(type and case-insensitive string, each gold mention matched once, as GoLLIE scores "
                        "the TransFusion paper's figures) or both (conll headline, string match beside it); "
                        "changes no reply: rerun into the same --out to re-score (default: %(default)s)")
    t.add_argument("--batch-sentences", type=int, default=1, metavar="K",
                   help="K sentences per prompt for every step (json style); lost items fall back to single calls")
    t.add_argument("--translator", default="llm",
                   help="llm (default) | file:PATH (one translation per sentence, or .jsonl) "
                        "| mt:DIR (local NLLB/M2M100)")
    t.add_argument("--annotator", default="llm",
                   help="English NER: llm (default) | spacy[:MODEL] | file:PATH (known English entities, "
                        ".jsonl with {\"index\"|\"source\", \"english_entities\"}, e.g. project-data's "
                        "translations.jsonl)")
    t.add_argument("--schema", help="built-in schema name (masakhaner) or a YAML/JSON schema file")
    t.add_argument("--labels", help="comma-separated subset of labels, e.g. PER,ORG,LOC")
    t.add_argument("--shots", type=int, default=0, help="number of few-shot examples (default: 0)")
    t.add_argument("--shots-from", help="labelled CoNLL file (or dataset) to take examples from")
    t.add_argument("--prompts", help="directory of .jinja templates overriding the packaged ones")
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=8,
                   help="sentences in flight (default: %(default)s; transfusion asks direct beside its pivot)")
    r.add_argument("--rpm", type=float, help="at most this many requests per minute")
    r.add_argument("--tpm", type=float, help="at most this many tokens per minute")
    r.add_argument("--max-retries", type=int, default=5,
                   help="retries of a 429/5xx/timeout/connection error per call (default: %(default)s)")
    r.add_argument("--retry-initial", type=float, default=1.0, help=argparse.SUPPRESS)
    r.add_argument("--max-cost", type=float, metavar="USD",
                   help="hard cap: no call is sent that could take the run past it")
    r.add_argument("--prices", help="JSON price table overriding/adding to the packaged one")
    r.add_argument("--cache-dir", help="reply cache (default: $TF_PROMPT_CACHE or ~/.cache/tf-prompt)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the reply cache")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    r.add_argument("--out", help="output directory (default: runs/<data>-<method>); the same settings continue "
                                 "the run in it, different ones are refused unless --overwrite")
    r.add_argument("--overwrite", action="store_true",
                   help="replace a different earlier run in --out (its outputs stay until a sentence is answered)")


def _settings(args: argparse.Namespace) -> RunSettings:
    labels = args.labels.split(",") if args.labels else None
    out = args.out
    if out is None:
        stem = (args.data or "sample").replace(":", "-").replace("/", "_").strip("._") or "data"
        out = f"runs/{stem}-{args.method}"
    return RunSettings(
        model=args.model, base_url=args.base_url, api_key_env=args.api_key_env, api_version=args.api_version,
        method=args.method,
        style=args.style, combine=args.combine, checks=args.checks, n_threads=args.n_threads, n_ctx=args.n_ctx,
        translator=args.translator, constrain=args.constrain, pivot_check=args.pivot_check,
        scorer=args.scorer,
        annotator=args.annotator, batch_sentences=args.batch_sentences,
        data=args.data, language=args.language, schema=args.schema, labels=labels, shots=args.shots,
        shots_from=args.shots_from, prompts=args.prompts, limit=args.limit, concurrency=args.concurrency,
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed, timeout=args.timeout,
        out=out, cache_dir=args.cache_dir, no_cache=args.no_cache, max_retries=args.max_retries,
        retry_initial=args.retry_initial, rpm=args.rpm, tpm=args.tpm, max_cost=args.max_cost,
        prices=args.prices, progress=args.progress, overwrite=args.overwrite,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from tf_prompt.api import default_model, run_async

    settings = _settings(args)
    _, note = default_model(settings)
    if note:
        print(f"tf-prompt: {note}", file=sys.stderr)
    if settings.data is None:
        print("tf-prompt: no --data given: running on the shipped sample (12 sentences)", file=sys.stderr)
    if args.via == "batch":
        from tf_prompt.batch_api import run_via_batch

        summary = asyncio.run(run_via_batch(settings, poll_interval=args.poll_interval, max_wait=args.max_wait))
    else:
        summary = asyncio.run(run_async(settings))
    print(format_summary(summary.metrics))
    if summary.kept:
        print(f"tf-prompt: {summary.kept}", file=sys.stderr)
    else:
        print(f"outputs: {summary.out_dir}")
    failed = sum(1 for r in summary.results if r.trace.failed)
    if failed:
        why = ("got no reply from the Batch API" if args.via == "batch"
               else f"failed after {settings.max_retries} retries")
        print(f"tf-prompt: {failed} sentence(s) {why} (see 'errors' in trace.jsonl); rerun the same command "
              f"to retry them: received replies are cached", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from tf_prompt.api import estimate_async

    settings = _settings(args)
    est = asyncio.run(estimate_async(settings))
    if args.json:
        print(json.dumps(est, ensure_ascii=False))
        return 0
    approx = ", approximate counts" if est.get("tokenizer_note") else ""
    print(f"estimate for {est['n_sentences']} sentences, {est['method']} with {est['model']} "
          f"(tokenizer {est['tokenizer']}{approx}, prices of {est['prices_date']}); nothing was sent")
    print(f"{'step':<11}{'calls':>8}{'prompt tok':>13}{'compl. tok':>13}{'cost $':>12}")
    for step, s in est["by_step"].items():
        print(f"{step:<11}{s['calls']:>8}{s['prompt_tokens']:>13}{s['completion_tokens']:>13}"
              f"{money(s['cost_usd'] if est['cost_usd'] is not None else None):>12}")
    print(f"{'total':<11}{est['calls']:>8}{est['prompt_tokens']:>13}{est['completion_tokens']:>13}"
          f"{money(est['cost_usd']):>12}")
    print(f"already cached (free): {est['cached_calls']} calls")
    read, write = est.get("cache_read_tokens") or 0, est.get("cache_write_tokens") or 0
    plain = est.get("cost_usd_without_prompt_cache")
    if (read or write) and plain is not None and est["cost_usd"] is not None:
        saved = f", saving {100 * (1 - est['cost_usd'] / plain):.0f}%" if plain else ""
        print(f"provider prompt cache (assumed for each template's shared prefix once the first "
              f"--concurrency calls sent it): {read} prompt tokens read from it, {write} written; "
              f"without it ${money(plain)}{saved}")
    if est.get("tokenizer_note"):
        print(f"note: {est['tokenizer_note']}")
    if est.get("cost_usd_batch_api") is not None:
        print(f"through the Batch API (--via batch): ${est['cost_usd_batch_api']:.4f}")
    single = est.get("unbatched")
    if single:
        tokens = est["prompt_tokens"] + est["completion_tokens"]
        single_tokens = single["prompt_tokens"] + single["completion_tokens"]
        print(f"one sentence per prompt instead: {single['calls']} calls, {single_tokens} tokens, "
              f"${money(single['cost_usd'])}; --batch-sentences {est['batch_sentences']} saves "
              f"{100 * (1 - tokens / single_tokens):.0f}% of the tokens" if single_tokens else "")
    return 0


def cmd_finetune_data(args: argparse.Namespace) -> int:
    from tf_prompt.finetune.data import finetune_data_async

    if args.out is None:
        stem = (args.data or "sample").replace(":", "-").replace("/", "_").strip("._") or "data"
        args.out = f"finetune/{stem}-{args.method}-{args.style}"
    settings = _settings(args)
    summary = asyncio.run(finetune_data_async(settings, fmt=args.format, validation_share=args.validation_share,
                                              train_model=args.train_model, epochs=args.epochs))
    for split in ("train", "validation"):
        c = summary["split"][split]
        print(f"{split:<11}{c['sentences']:>6} sentences{c['examples']:>7} examples{c['tokens']:>10} tokens")
    print("examples per step: " + ", ".join(f"{step} {sum(n.values())}" for step, n in summary["by_step"].items()))
    cost = summary["training_cost_usd"]
    price = (f"${money(cost)} for {summary['epochs']} epochs (${money(summary['training_cost_usd_per_epoch'])} "
             f"an epoch, training prices of {summary['prices_date']})" if cost is not None
             else f"unknown: no training price for {summary['train_model']} in the price table")
    print(f"fine-tuning {summary['train_model']} (tokenizer {summary['tokenizer']}): {price}")
    if summary["tokenizer_note"]:
        print(f"note: {summary['tokenizer_note']}")
    if summary["skipped"]:
        print(f"tf-prompt: {len(summary['skipped'])} sentence(s) skipped (see 'skipped' in summary.json)",
              file=sys.stderr)
    print(f"outputs: {settings.out}")
    return 0


def cmd_project_data(args: argparse.Namespace) -> int:
    from tf_prompt.finetune.project import BUDGET, FILES, NO_ENTITIES, project_data_async

    out = args.out
    if out is None:   # .../uner-en-ewt/dev.txt -> projected/uner-en-ewt-dev-hau
        from pathlib import Path

        where = Path(args.english)
        stem = "-".join(p for p in (where.parent.name, where.stem) if p).replace(":", "-").strip("._") or "data"
        out = f"projected/{stem}-{args.language}"
    settings = RunSettings(
        model=args.model, base_url=args.base_url, api_key_env=args.api_key_env, n_threads=args.n_threads,
        n_ctx=args.n_ctx, language=args.language, prompts=args.prompts, limit=args.limit,
        concurrency=args.concurrency, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
        timeout=args.timeout, out=out, cache_dir=args.cache_dir, no_cache=args.no_cache,
        max_retries=args.max_retries, retry_initial=args.retry_initial, rpm=args.rpm, tpm=args.tpm,
        max_cost=args.max_cost, prices=args.prices, progress=args.progress, overwrite=args.overwrite)
    labels = [lab for lab in args.labels.split(",") if lab] if args.labels else None
    summary = asyncio.run(project_data_async(settings, args.english, labels=labels,
                                             only_with_entities=args.only_with_entities, dry_run=args.estimate))
    usage = summary["usage"]
    cost = f"${usage['cost_usd']:.4f}" if usage["cost_usd"] is not None else "$? (no price for the model)"
    if summary.get("estimate"):
        skipped = "".join(f"; {n} not sent: {r}" for r, n in summary["not_sent"].items())
        print(f"estimate for {summary['sentences_in']} sentences into {summary['language']} with {summary['model']}: "
              f"{usage['calls']} calls, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion "
              f"tokens (replies assumed as long as the English), {cost} (prices of {summary['prices_date']}); "
              f"already cached (free): {usage['cache_hits']}{skipped}; nothing was sent")
        if summary["tokenizer_note"]:
            print(f"note: {summary['tokenizer_note']}")
        return 0
    print(f"{summary['sentences_in']} English sentences -> {summary['kept']} {summary['language']} sentences kept, "
          f"{summary['dropped']} dropped; {summary['entities']['kept']} entities, {summary['tokens_kept']} tokens")
    for reason, n in summary["dropped_by_reason"].items():
        print(f"  dropped: {n:>6}  {reason}")
    print(f"calls {usage['calls']} (cached {usage['cache_hits']}), tokens "
          f"{usage['prompt_tokens'] + usage['completion_tokens']}, {cost}")
    print(f"outputs: {out}/{FILES['conll']} (and {FILES['translations']}, {FILES['dropped']}, {FILES['summary']})")
    pending = {r: n for r, n in summary["not_done"].items() if r != NO_ENTITIES}
    if pending:
        why = ", ".join(f"{n} {r}" for r, n in pending.items())
        hint = " (raise --max-cost)" if BUDGET in pending else ""
        print(f"tf-prompt: {sum(pending.values())} sentence(s) not translated yet ({why}); rerun the same "
              f"command{hint} to do them: received replies are cached", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _add_project_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--english", required=True, metavar="CONLL",
                   help="labelled English CoNLL file (token TAG, IOB2), e.g. UNER English-EWT")
    g.add_argument("--lang", dest="language", required=True,
                   help="target language: a code (hau, yor, ...) or a name")
    g.add_argument("--labels", help="comma-separated entity types to mark, e.g. PER,ORG,LOC (default: every "
                                    "type in the file; the others become O)")
    g.add_argument("--only-with-entities", action="store_true",
                   help="translate only sentences with at least one entity (saves the calls for the rest)")
    g.add_argument("--limit", type=int, help="use only the first N sentences")
    g.add_argument("--estimate", action="store_true",
                   help="print the calls, tokens and $ it would take, without sending or writing anything")
    m = p.add_argument_group("model")
    m.add_argument("--model", help="the translating model: gpt-4o, openai:NAME, gguf:PATH_OR_PRESET, hf:DIR_OR_REPO")
    m.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or OpenAI)")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (default: %(default)s)")
    m.add_argument("--n-threads", type=int, help="CPU threads of a local model (default: all cores)")
    m.add_argument("--n-ctx", type=int, help="context size of a gguf model (default: 4096)")
    m.add_argument("--temperature", type=float, default=0.0)
    m.add_argument("--max-tokens", type=int, default=1024, help="cap on completion tokens per call")
    m.add_argument("--seed", type=int, help="sampling seed sent to the API (where supported)")
    m.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    m.add_argument("--prompts", help="directory of .jinja templates overriding the packaged project.vN.jinja")
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=8, help="sentences in flight (default: %(default)s)")
    r.add_argument("--rpm", type=float, help="at most this many requests per minute")
    r.add_argument("--tpm", type=float, help="at most this many tokens per minute")
    r.add_argument("--max-retries", type=int, default=5, help="retries of a transient error per call")
    r.add_argument("--retry-initial", type=float, default=1.0, help=argparse.SUPPRESS)
    r.add_argument("--max-cost", type=float, metavar="USD",
                   help="hard cap: no call is sent that could take the run past it")
    r.add_argument("--prices", help="JSON price table overriding/adding to the packaged one")
    r.add_argument("--cache-dir", help="reply cache (default: $TF_PROMPT_CACHE or ~/.cache/tf-prompt)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the reply cache")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    r.add_argument("--out", help="output folder (default: projected/<folder>-<file>-<lang>); a rerun with the same "
                                 "settings rebuilds it from cached replies, other settings are refused")
    r.add_argument("--overwrite", action="store_true", help="replace the outputs of other settings in --out")


def cmd_cache(args: argparse.Namespace) -> int:
    from tf_prompt.llm.cache import ReplyCache

    if args.action == "clear":   # also works on a corrupt cache, which cannot be opened
        n, where = ReplyCache.clear_directory(args.cache_dir)
        print(f"removed {n} cached replies from {where}" if n is not None
              else f"removed the corrupt cache at {where / 'replies'}")
        return 0
    cache = ReplyCache(args.cache_dir)
    try:
        st = cache.stats()
        print(f"cache: {st['directory']}")
        print(f"entries: {st['entries']}  size: {st['size_bytes'] / 1e6:.2f} MB")
        last = st.get("last_run")
        if last:
            total = last["hits"] + last["misses"]
            rate = f" ({100 * last['hits'] / total:.0f}% hits)" if total else ""
            print(f"last run: {last['hits']} hits, {last['misses']} misses{rate}, {last['calls']} calls")
        else:
            print("last run: none recorded")
        return 0
    finally:
        cache.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf-prompt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tf-prompt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a method on a dataset and score it")
    _add_run_args(run)
    run.add_argument("--via", choices=["sync", "batch"], default="sync",
                     help="batch: send uncached requests through the OpenAI Batch API (half price, within 24 h; "
                          "rerun the same command to resume)")
    run.add_argument("--poll-interval", type=float, default=30.0, metavar="S",
                     help="--via batch: seconds between status checks")
    run.add_argument("--max-wait", type=float, default=None, metavar="S",
                     help="--via batch: stop waiting after S seconds (the batch stays pending; rerun to pick it up)")
    run.set_defaults(func=cmd_run)
    est = sub.add_parser("estimate", help="calls, tokens and $ a run would cost, without calling any API")
    _add_run_args(est)
    est.add_argument("--json", action="store_true", help="print one JSON object")
    est.set_defaults(func=cmd_estimate)
    ft = sub.add_parser("finetune-data", help="supervised fine-tuning examples from labelled data, rendered with "
                                              "the prompts a run sends")
    _add_run_args(ft)
    for action in ft._actions:   # the run options that mean something else, or nothing, here
        if action.dest == "out":
            action.help = ("output directory for train.jsonl, validation.jsonl and summary.json, replaced if "
                           "present (default: finetune/<data>-<method>-<style>)")
        elif action.dest in ("overwrite", "progress", "batch_sentences"):
            action.help = argparse.SUPPRESS
    ft.add_argument("--format", default="openai", choices=["openai", "hf", "hf-prompt"],
                    help="openai: chat fine-tuning JSONL (default); hf: {messages} JSONL; "
                         "hf-prompt: {prompt, completion} JSONL")
    ft.add_argument("--validation-share", type=float, default=0.1, metavar="P",
                    help="share of sentences in validation.jsonl, chosen by a hash of the sentence text "
                         "(default: %(default)s)")
    ft.add_argument("--train-model", help="the model to be fine-tuned: its tokenizer and training price "
                                          "(default: --model)")
    ft.add_argument("--epochs", type=int, default=3, help="epochs for the $ estimate (default: %(default)s)")
    ft.set_defaults(func=cmd_finetune_data)
    proj = sub.add_parser("project-data", help="labelled data in a target language: translate labelled English "
                                               "with its entities in [ ] markers, keep the replies whose markers "
                                               "survived (EasyProject)")
    _add_project_args(proj)
    proj.set_defaults(func=cmd_project_data)
    cache = sub.add_parser("cache", help="inspect or clear the reply cache")
    cache.add_argument("action", choices=["stats", "clear"])
    cache.add_argument("--cache-dir", help="default: $TF_PROMPT_CACHE or ~/.cache/tf-prompt")
    cache.set_defaults(func=cmd_cache)
    from tf_prompt.finetune.cli import add_finetune_parser

    add_finetune_parser(sub)
    from tf_prompt.experiments.sweep import add_sweep_parser

    add_sweep_parser(sub)
    from tf_prompt.experiments.report import add_report_parser

    add_report_parser(sub)
    from tf_prompt.llm.presets_cli import add_models_parser
    add_models_parser(sub)
    return parser


def _error(message: object) -> None:
    """Print an error as the one line the user gets (a message from a library may span lines)."""
    print(f"tf-prompt: error: {' '.join(str(message).splitlines())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DataError, SchemaError, TemplateError, PriceError, ComponentError, CacheError) as e:
        _error(e)
        return EXIT_USAGE
    except ValidationError as e:   # the settings' own words: `field: what is wrong`, or a check naming its options
        _error(first_problem(e).line())
        return EXIT_USAGE
    # ModelError: a local model file is missing or unreadable; LoraError: a LoRA run cannot start or go on
    except (BackendError, BudgetExceeded, ModelError, LoraError, GGUFExportError) as e:
        _error(e)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tf-prompt: interrupted; outputs written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
