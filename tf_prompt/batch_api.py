"""`tf-prompt run --via batch`: the same run, with every uncached request sent through the OpenAI
Batch API (half price, answered within 24 h instead of at once).

The steps of a method depend on each other (translate -> annotate -> fuse), so requests go in
waves: the pipeline runs over all sentences with a client that answers from the reply cache and,
on a miss, notes the request and stops that sentence. The notes of one wave become one batch
(JSONL of chat requests, `custom_id` = the reply-cache key); when it completes, every answer is
written to the reply cache under that key, exactly as a normal call would have stored it, and the
next wave sees more of each sentence. When a wave has nothing left to ask, the normal pipeline
runs over the now complete cache and writes the usual outputs. So a normal rerun afterwards makes
no call, and a `--via batch` run never sends a synchronous (full price) request.

Everything is resumable: each submitted batch has a state file under `<cache_dir>/batches/`
(written atomically before and after each step), so a process killed while a batch is pending,
restarted with the same command, re-attaches to that batch instead of uploading and paying again;
a batch completed but not downloaded is downloaded. Finished batches move to `batches/done/`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import openai

from tf_prompt.api import build_pipeline, default_model, load_sentences, make_backend, run_async, run_record
from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.openai_compat import OpenAIBackend, read_api_key, schema_rejection, translate_error
from tf_prompt.data.conll import Sentence, physical_lines
from tf_prompt.llm.cache import ReplyCache
from tf_prompt.llm.client import BudgetExceeded, ClientOptions, ModelClient
from tf_prompt.llm.cost import PriceTable, request_tokens
from tf_prompt.methods.scheduler import run_pipeline
from tf_prompt.prompting.templates import Prompt
from tf_prompt.runs.outputs import write_metrics
from tf_prompt.runs.rundir import RunFolder, check_out_path, identity_of
from tf_prompt.runs.summary import RunSummary
from tf_prompt.settings import RunSettings
from tf_prompt.util import atomic, jsontext

__all__ = [
    "NEEDS_BATCH_API",
    "BatchPending",
    "BatchRequest",
    "BatchUsage",
    "CollectingClient",
    "run_dataset_via_batch",
    "run_via_batch",
]

NEEDS_BATCH_API = "--via batch needs an OpenAI(-compatible) API with the Batch endpoints"
ENDPOINT: Final = "/v1/chat/completions"
#: The Batch API's limits per batch (requests, and bytes of the input file, kept below 200 MB).
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 190 * 1024 * 1024
#: A request that failed in this many batches is not submitted again by this process: its
#: sentence is marked failed and a rerun (batch or normal) tries it again. Bounds the waves.
MAX_BATCH_ATTEMPTS = 2
_FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_STATE_VERSION = 1


class BatchPending(BackendError):
    """A batch was not finished within `max_wait`; its state is on disk, a rerun re-attaches."""


class _Deferred(BackendError):
    """Raised for a cache miss while collecting: retryable, so Context.ask turns it into
    SentenceFailed and only that sentence stops (the collecting pass's results are discarded)."""

    def __init__(self) -> None:
        super().__init__("reply deferred to the Batch API", retryable=True)


@dataclass
class BatchRequest:
    """One chat request of a wave, with what its cache record needs besides the reply."""

    key: str
    messages: list[dict[str, str]]
    step: str
    template: str
    prompt_tokens: int
    params: dict[str, Any] = field(default_factory=dict)   # what the call sends (a constrained answer's schema)


class CollectingClient(ModelClient):
    """A ModelClient that never sends: cached replies are returned, misses are collected."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.collected: dict[str, BatchRequest] = {}

    async def _fetch(self, prompt: Prompt, key: str, params: dict[str, Any] | None = None) -> Completion:
        params = self.params if params is None else params
        if key not in self.collected:
            self.collected[key] = BatchRequest(key, prompt.messages, prompt.step, prompt.identity,
                                               request_tokens(self.tokenizer, prompt.messages, params), params)
        raise _Deferred()


class _CacheOnlyBackend(Backend):
    """The backend of the final pass: same identity as the real one (so the same cache keys),
    but it refuses to send, so nothing left unanswered by the batches is paid at full price."""

    def __init__(self, inner: Backend, why: str):
        super().__init__(model=inner.model)
        self.kind = inner.kind
        self.inner = inner
        self.why = why
        self.refused = 0

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def tokenizer(self) -> Any | None:
        return self.inner.tokenizer()

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        self.refused += 1
        raise BackendError(self.why, retryable=True)


@dataclass
class BatchUsage:
    """What the batches of this process did and cost; `metrics["usage"]["batch"]`."""

    waves: int = 0
    batches: int = 0
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    errors: list[str] = field(default_factory=list)   # the first few failure messages

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_usd"] = round(self.cost_usd, 6) if self.cost_usd is not None else None
        return d


class BatchStore:
    """State files of submitted batches: `<dir>/<name>.json` while open, `<dir>/done/` after."""

    def __init__(self, directory: Path):
        self.directory = directory
        (directory / "done").mkdir(parents=True, exist_ok=True)

    def save(self, state: dict[str, Any]) -> None:
        """Write atomically (temp file + os.replace): a kill leaves the old or the new state."""
        state["updated_at"] = time.time()
        path = self.directory / f"{state['name']}.json"
        atomic.write_text(path, jsontext.dumps(state))

    def close(self, state: dict[str, Any]) -> None:
        """Move a finished batch's state out of the open set (kept for the record)."""
        self.save(state)
        done = self.directory / "done" / f"{state['name']}-{state.get('batch_id') or 'none'}.json"
        os.replace(self.directory / f"{state['name']}.json", done)

    def open_batches(self, keys: set[str]) -> list[dict[str, Any]]:
        """Unfinished batches that were uploaded and ask for any of `keys` (oldest first)."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if state.get("input_file_id") and keys & set(state.get("requests", {})):
                found.append(state)
        return sorted(found, key=lambda s: s.get("created_at", 0))


class BatchRunner:
    """Uploads, creates, polls and downloads batches; writes every answer to the reply cache."""

    def __init__(self, api: openai.AsyncOpenAI, backend: OpenAIBackend, params: dict[str, Any],
                 cache: ReplyCache, store: BatchStore, prices: PriceTable, client: ModelClient, *,
                 poll_interval: float, deadline: float | None, verbose: bool):
        self.api = api
        self.backend = backend
        self.params = params
        self.cache = cache
        self.store = store
        self.prices = prices
        self.client = client              # for its tokenizer, when a reply reports no usage
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.verbose = verbose
        self.usage = BatchUsage()
        #: a line refused because of its JSON schema (--constrain): the run stops with this one line
        #: once the batch's answers are stored, instead of sending the same refused lines again
        self.rejected: BackendError | None = None

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"tf-prompt: {message}", file=sys.stderr, flush=True)

    def _line(self, request: BatchRequest) -> str:
        body = {"model": self.backend.model, "messages": request.messages, **self.params, **request.params}
        # ASCII JSON: a token holding U+2028 or U+0085 stays inside its line for any JSONL reader.
        return json.dumps({"custom_id": request.key, "method": "POST", "url": ENDPOINT, "body": body})

    async def submit(self, requests: Sequence[BatchRequest], wave: int) -> dict[str, Any]:
        """Upload the requests and create their batch, saving the state after each step."""
        lines = [self._line(r) for r in requests]
        name = hashlib.sha256("\n".join(sorted(r.key for r in requests)).encode()).hexdigest()[:32]
        state: dict[str, Any] = {
            "version": _STATE_VERSION, "name": name, "wave": wave, "backend": self.backend.identity(),
            "status": "uploading", "input_file_id": None, "batch_id": None, "created_at": time.time(),
            "requests": {r.key: {"step": r.step, "template": r.template, "prompt_tokens": r.prompt_tokens}
                         for r in requests},
        }
        self.store.save(state)
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            uploaded = await self.api.files.create(file=(f"tf-prompt-{name}.jsonl", data, "application/jsonl"),
                                                   purpose="batch")
        except openai.OpenAIError as e:
            raise translate_error(e, self.backend.base_url) from None
        state.update(input_file_id=uploaded.id, status="uploaded")
        self.store.save(state)
        await self._create(state)
        return state

    async def _create(self, state: dict[str, Any]) -> None:
        try:
            batch = await self.api.batches.create(input_file_id=state["input_file_id"], endpoint=ENDPOINT,
                                                  completion_window="24h",
                                                  metadata={"tf_prompt_state": state["name"]})
        except openai.OpenAIError as e:
            raise translate_error(e, self.backend.base_url) from None
        state.update(batch_id=batch.id, status=batch.status)
        self.store.save(state)
        self.say(f"batch {batch.id}: {len(state['requests'])} requests submitted (wave {state['wave']})")

    async def finish(self, state: dict[str, Any]) -> list[str]:
        """Wait for a batch, store its answers, close its state; the keys that got no answer."""
        if not state.get("batch_id"):   # uploaded, then stopped before the batch was created
            await self._create(state)
        batch = await self._wait(state)
        failed = await self._download(state, batch)
        self.store.close(state)
        return failed

    async def _wait(self, state: dict[str, Any]) -> Any:
        started = time.monotonic()
        last: tuple[Any, ...] | None = None
        while True:
            try:
                batch = await self.api.batches.retrieve(state["batch_id"])
            except openai.OpenAIError as e:
                err = translate_error(e, self.backend.base_url)
                if not err.retryable:
                    raise err from None
                self.say(f"batch {state['batch_id']}: polling failed ({err}); trying again")
                batch = None
            if batch is not None:
                counts = batch.request_counts
                done, failed, total = ((counts.completed, counts.failed, counts.total) if counts
                                       else (0, 0, len(state["requests"])))
                now = (batch.status, done, failed)
                if now != last:
                    last = now
                    state.update(status=batch.status, request_counts={"total": total, "completed": done,
                                                                      "failed": failed})
                    self.store.save(state)
                    self.say(f"batch {batch.id}: {batch.status} {done}/{total} done, {failed} failed, "
                             f"{time.monotonic() - started:.0f}s")
                if batch.status in _FINAL:
                    return batch
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise BatchPending(
                    f"batch {state['batch_id']} is still {state.get('status')} "
                    f"({(state.get('request_counts') or {}).get('completed', 0)}/{len(state['requests'])} done); "
                    f"rerun the same command to pick it up (state: {self.store.directory / state['name']}.json)")
            await asyncio.sleep(self.poll_interval)

    async def _download(self, state: dict[str, Any], batch: Any) -> list[str]:
        """Write each answer to the cache before anything else; count and report the rest."""
        requests: dict[str, dict[str, Any]] = state["requests"]
        answered: set[str] = set()
        errors: list[str] = []
        p_sum = c_sum = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                content = await self.api.files.content(file_id)
            except openai.OpenAIError as e:
                raise translate_error(e, self.backend.base_url) from None
            for raw in physical_lines(content.text):   # a reply may hold U+2028 raw
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except ValueError:
                    item = None
                if not isinstance(item, dict):   # a broken line costs its request, not the batch
                    errors.append(f"batch file {file_id}: a line that is not a JSON object: {raw[:60]!r}")
                    continue
                key = item.get("custom_id")
                meta = requests.get(key) if isinstance(key, str) else None
                if meta is None or key in answered:
                    continue
                record = self._record(item, meta)
                if isinstance(record, str):
                    errors.append(record)
                    continue
                assert isinstance(key, str)   # it named one of our requests
                self.cache.set(key, record)
                answered.add(key)
                p_sum += record["prompt_tokens"]
                c_sum += record["completion_tokens"]
        if batch.status == "failed" and batch.errors and batch.errors.data:
            errors += [f"batch failed: {e.message}" for e in batch.errors.data[:3]]
        failed = [k for k in requests if k not in answered]
        cost = self.prices.cost(self.backend.model, p_sum, c_sum, batch=True)
        u = self.usage
        u.batches += 1
        u.requests += len(requests)
        u.succeeded += len(answered)
        u.failed += len(failed)
        u.prompt_tokens += p_sum
        u.completion_tokens += c_sum
        u.cost_usd = None if cost is None or u.cost_usd is None else u.cost_usd + cost
        u.errors += errors[: max(0, 5 - len(u.errors))]
        state.update(status=batch.status, succeeded=len(answered), failed=len(failed), errors=errors[:5])
        if failed:
            reason = errors[0] if errors else f"batch {batch.status}"
            self.say(f"batch {batch.id}: {len(failed)} of {len(requests)} requests got no answer ({reason}); "
                     f"they are retried in the next wave")
        return failed

    def _record(self, item: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | str:
        """The cache record of an output line (the same fields ModelClient._fetch stores), or a
        one-line description of why the line is a failure."""
        # Every field is checked for its type: a malformed line (an "error" that is a string, a
        # "response" that is not an object) is that request's failure, not a crash of the batch.
        response = _object(item.get("response"))
        error = item.get("error")
        body = _object(response.get("body"))
        status = response.get("status_code")
        if error or status != 200:
            if self.rejected is None and isinstance(status, int):
                self.rejected = schema_rejection(status, body or None, self.backend.base_url)
            message = _message(error) or _message(body.get("error")) or "no response"
            return f"HTTP {status}: {message}" if status else str(message)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            return "HTTP 200: reply had no choices"
        choice = _object(choices[0])
        content = _object(choice.get("message")).get("content")
        text = content if isinstance(content, str) else ""
        usage = _object(body.get("usage"))
        p_tok = usage.get("prompt_tokens")
        c_tok = usage.get("completion_tokens")
        return {"text": text,
                "prompt_tokens": p_tok if isinstance(p_tok, int) else meta["prompt_tokens"],
                "completion_tokens": c_tok if isinstance(c_tok, int) else self.client.tokenizer.count(text),
                "finish_reason": choice.get("finish_reason"), "model": body.get("model"),
                "template": meta["template"], "step": meta["step"]}


def _object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (a batch output line is not trusted)."""
    return value if isinstance(value, dict) else {}


def _message(error: Any) -> str | None:
    """The message of an error field: {"message": ...} as the API writes it, or a bare string."""
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message else None
    return error if isinstance(error, str) and error else None


def _chunks(requests: Sequence[BatchRequest], lines: Sequence[int]) -> Iterator[list[BatchRequest]]:
    """Split a wave into batches within the API's request and file-size limits."""
    chunk: list[BatchRequest] = []
    size = 0
    for request, n in zip(requests, lines, strict=True):
        if chunk and (len(chunk) >= MAX_REQUESTS_PER_BATCH or size + n > MAX_BYTES_PER_BATCH):
            yield chunk
            chunk, size = [], 0
        chunk.append(request)
        size += n
    if chunk:
        yield chunk


def _openai_backend(settings: RunSettings) -> OpenAIBackend:
    """The run's backend, refusing (before anything is loaded) models that cannot batch."""
    model, _ = default_model(settings)
    kind, _, rest = model.partition(":")
    if kind in ("gguf", "hf") and rest:
        raise BackendError(f"{NEEDS_BATCH_API}; {model!r} runs locally")
    if kind in ("gemini", "azure") and rest:   # before their keys are read: no key is needed to say no
        raise BackendError(f"{NEEDS_BATCH_API}; {model!r} is a {kind} model")
    backend = make_backend(settings)
    if not isinstance(backend, OpenAIBackend):
        raise BackendError(f"{NEEDS_BATCH_API}; {model!r} is a {backend.kind} model")
    return backend


def _worst_case(requests: Sequence[BatchRequest], client: ModelClient, prices: PriceTable,
                max_tokens: int) -> float | None:
    """A wave's highest possible cost at batch prices: every prompt (+15% when the count is
    approximate) plus `max_tokens` of output per request."""
    margin = 1.0 if client.tokenizer.exact else 1.15
    prompt = sum(int(r.prompt_tokens * margin) + 1 for r in requests)
    return prices.cost(client.backend.model, prompt, max_tokens * len(requests), batch=True)


async def run_via_batch(settings: RunSettings, sentences: Sequence[Sentence] | None = None, *,
                        poll_interval: float = 10.0, max_wait: float | None = None) -> RunSummary:
    """Run `settings` with every uncached request sent through the Batch API, then write the
    outputs exactly as `run_async` does (plus `metrics["usage"]["batch"]`).

    `max_wait` bounds the seconds spent waiting for batches in this call: when it passes,
    BatchPending is raised and the batch stays on disk for a rerun to re-attach to.
    """
    out_dir = check_out_path(settings.out) if settings.out is not None else None   # before anything is read
    backend = _openai_backend(settings)
    if settings.no_cache:
        raise BackendError("--via batch stores its replies in the reply cache: drop --no-cache")
    todo = list(sentences) if sentences is not None else None
    total = None if todo is None else len(todo)
    data_path = None
    if todo is None:
        todo, data_path, total = load_sentences(settings.data, settings.limit)
    prices = PriceTable.load(settings.prices)
    if settings.max_cost is not None and prices.cost(backend.model, 1, 1, batch=True) is None:
        raise BudgetExceeded(f"--max-cost needs a price for model {backend.model!r}: add it to a prices file "
                             f"(--prices FILE, with input/output USD per 1M tokens)")
    cache = ReplyCache(settings.cache_dir)
    client = CollectingClient(backend, settings.decoding_params(), cache=cache, prices=prices,
                              options=ClientOptions(max_retries=0))
    key = read_api_key(settings.api_key_env or None, backend.base_url)   # the named variable only
    api = openai.AsyncOpenAI(base_url=backend.base_url, api_key=key, max_retries=2,
                             timeout=max(settings.timeout, 300.0))
    runner = BatchRunner(api, backend, settings.decoding_params(), cache, BatchStore(cache.directory / "batches"),
                         prices, client, poll_interval=poll_interval,
                         deadline=None if max_wait is None else time.monotonic() + max_wait,
                         verbose=settings.progress is not False)
    failures: collections.Counter[str] = collections.Counter()
    folder: RunFolder | None = None
    try:
        pipeline = build_pipeline(settings, client, todo, total)
        if out_dir is not None:
            # The folder is refused (another run's, without --overwrite) before anything is uploaded,
            # and stays locked while the batches are pending; the final pass opens it again to write.
            folder = RunFolder(out_dir, identity_of(run_record(settings, pipeline, client, todo, data_path)),
                               overwrite=settings.overwrite)
            folder.open()
        while True:
            client.collected.clear()
            # Same chunking as the final pass (--batch-sentences), so it builds the same prompts.
            await run_pipeline(pipeline, todo, concurrency=64,
                               batch_size=settings.batch_sentences if settings.style == "json" else 1)
            missing = {k: r for k, r in client.collected.items() if failures[k] < MAX_BATCH_ATTEMPTS}
            if not missing:
                break
            runner.usage.waves += 1
            pending = runner.store.open_batches(set(missing))
            if pending:   # a batch submitted before (by a killed run): collect it, then look again
                for state in pending:
                    failures.update(await runner.finish(state))
                if runner.rejected is not None:
                    raise runner.rejected
                continue
            wave = list(missing.values())
            if settings.max_cost is not None:
                spent = runner.usage.cost_usd or 0.0
                worst = _worst_case(wave, client, prices, settings.max_tokens or 4096) or 0.0
                if spent + worst > settings.max_cost + 1e-12:
                    raise BudgetExceeded(
                        f"budget reached: ${spent:.4f} spent of --max-cost ${settings.max_cost:.4f}; the next "
                        f"batch ({len(wave)} requests) could cost up to ${worst:.4f} at batch prices. Replies so "
                        f"far are cached; raise --max-cost and rerun")
            sizes = [len(runner._line(r).encode("utf-8")) + 1 for r in wave]
            states = [await runner.submit(chunk, runner.usage.waves) for chunk in _chunks(wave, sizes)]
            for state in states:
                failures.update(await runner.finish(state))
            if runner.rejected is not None:   # sending the same schema again cannot help
                raise runner.rejected
    finally:
        if folder is not None:
            folder.close()
        await api.close()
        await client.aclose()
        cache.close()
    return await _final_pass(settings, sentences, backend, runner.usage, failures)


async def _final_pass(settings: RunSettings, sentences: Sequence[Sentence] | None, backend: OpenAIBackend,
                      usage: BatchUsage, failures: collections.Counter[str]) -> RunSummary:
    """The normal run over the filled cache, which writes the outputs; it sends nothing."""
    gave_up = sum(1 for n in failures.values() if n >= MAX_BATCH_ATTEMPTS)
    offline = _CacheOnlyBackend(backend, f"no reply from the Batch API after {MAX_BATCH_ATTEMPTS} batches: "
                                         f"rerun to try again (received replies are cached)")
    quiet = settings.model_copy(update={"max_retries": 0})   # a refusal is final: no backoff
    summary = await run_async(quiet, sentences, backend=offline)
    metrics = summary.metrics
    metrics["settings"]["max_retries"] = settings.max_retries
    metrics["settings"]["via"] = "batch"
    metrics["usage"]["attempts"] -= offline.refused   # refused requests were never sent
    metrics["usage"]["batch"] = {**usage.to_dict(), "unanswered": gave_up}
    if summary.out_dir is not None:
        write_metrics(summary.out_dir, metrics)
    return summary


def run_dataset_via_batch(*, poll_interval: float = 10.0, max_wait: float | None = None,
                          **settings: Any) -> RunSummary:
    """Synchronous `run_via_batch` taking RunSettings fields as keywords (like `run_dataset`)."""
    return asyncio.run(run_via_batch(RunSettings(**settings), poll_interval=poll_interval, max_wait=max_wait))
