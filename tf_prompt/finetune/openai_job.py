"""`tf-prompt finetune --provider openai`: fine-tune an OpenAI model on a `finetune-data` folder.

Upload train.jsonl (and validation.jsonl), create the fine-tuning job, follow it with progress,
and print the `ft:...` model id to pass to `tf-prompt run --model`.

Paid work is never lost and never paid twice: a job is the one costly thing here, so a folder's
data and settings get exactly one job, whatever is killed when.

  - A state file in the data folder (STATE_FILE, written atomically before and after every step)
    records what this data and these settings were given: file ids, the job id, its status. A
    rerun of the same command follows the recorded job instead of starting another; after the
    job succeeded it prints the model id again without a call.
  - Its key is a digest of train.jsonl and validation.jsonl (content), the base model, the
    hyperparameters and the endpoint. Another key while a job is recorded is refused in one line
    naming what changed; `--restart` starts anew (the earlier job is not cancelled).
  - The kill windows between a request and the state write are closed at the provider: a file
    is uploaded under a name made of its content digest, and before uploading, the provider's
    file list is searched for that name; before creating a job, the provider's job list is
    searched for a job on that training file carrying this key in its metadata. A process killed
    after an upload or a job creation but before recording it finds them again on the rerun.
  - One run per folder at a time (util/folderlock.py): two runs listing at the same moment
    would both find nothing and both create a job.
  - The SDK's own retries are off: a create retried after a lost answer could make a second
    job. A failed request that may be retried is retried here, after looking again.

The API key is read only from the variable named (`--api-key-env`, read_api_key) and goes only to
the endpoint; neither the state file nor any message holds it, and the endpoint is recorded with
its credentials masked (redact.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import openai

from tf_prompt.backends.base import BackendError
from tf_prompt.backends.openai_compat import DEFAULT_KEY_ENV, OpenAIBackend, translate_error
from tf_prompt.types import DataError
from tf_prompt.util import atomic, jsontext
from tf_prompt.util.folderlock import FolderBusy, exclusive
from tf_prompt.util.redact import redact_text

#: The state file in the data folder.
STATE_FILE: Final = "finetune-openai.json"
_STATE_VERSION: Final = 1
#: The base model when neither --model nor summary.json names one.
DEFAULT_BASE_MODEL: Final = "gpt-4o-mini-2024-07-18"
#: Fine-tuning takes dated snapshots, not the aliases chat requests accept (as of 2025-2026:
#: OpenAI's fine-tuning guide lists these snapshots as fine-tunable).
SNAPSHOTS: Final = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
#: OpenAI refuses a training file with fewer examples.
MIN_TRAIN_EXAMPLES: Final = 10
MAX_SUFFIX: Final = 64
ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})
FINAL: Final = frozenset({"succeeded", "failed", "cancelled"})
#: A request that failed and may be retried (5xx, 429 rate limit, timeout) is tried this often.
ATTEMPTS: Final = 4
#: Seconds before the first retry (doubled for each next one); the tests lower it.
RETRY_INITIAL = 1.0
#: Seconds a status request may take even when --max-wait has (nearly) passed; the tests lower it.
MIN_POLL_WAIT = 10.0
#: Items per page when listing files and jobs (the SDK follows the pages).
PAGE = 100
#: Jobs created this many seconds before their training file was (clock skew) are still looked at.
_SKEW: Final = 600
SPLIT_FILES: Final = {"train": "train.jsonl", "validation": "validation.jsonl"}
#: Model-string prefixes of the other backends (api.BACKEND_KINDS): their models are not OpenAI's to tune.
OTHER_BACKENDS: Final = frozenset({"gguf", "hf", "gemini", "azure", "anthropic"})


class FineTunePending(BackendError):
    """--max-wait passed while the job was still running; the job goes on, a rerun follows it."""


@dataclass(frozen=True)
class JobSpec:
    """What one job is made of, and the key that names it."""

    folder: Path
    base_model: str
    epochs: int | None              # None: the provider chooses ("auto")
    suffix: str | None
    base_url: str | None            # as given (may hold credentials): used to connect only
    endpoint: str                   # as recorded: credentials masked
    data: dict[str, bytes]          # split -> file content (validation may be absent)
    examples: dict[str, int]
    summary: dict[str, Any]

    def settings(self) -> dict[str, Any]:
        """Everything the key covers, as the state file records it (no secret in it)."""
        digest = {split: hashlib.sha256(data).hexdigest() for split, data in self.data.items()}
        return {"base_model": self.base_model, "epochs": self.epochs, "suffix": self.suffix,
                "endpoint": self.endpoint, "train_sha256": digest["train"],
                "validation_sha256": digest.get("validation")}

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()

    def file_name(self, split: str) -> str:
        """The upload's name: the content digest makes a rerun able to find it again."""
        return f"tf-prompt-{hashlib.sha256(self.data[split]).hexdigest()[:24]}-{SPLIT_FILES[split]}"


# -- the data ---------------------------------------------------------------------------------------

def validate_chat_file(path: Path, data: bytes) -> int:
    """The number of examples in an OpenAI chat fine-tuning file; a DataError naming file:line of
    the first line that is not one (checked before anything is uploaded or paid for)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        at = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{at}: not UTF-8 text (byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, record in enumerate(lines, 1):
        problem = _line_problem(record)
        if problem:
            raise DataError(f"{path}:{n}: {problem} (OpenAI chat fine-tuning wants one "
                            f'{{"messages": [{{"role": ..., "content": ...}}, ...]}} per line)')
    return len(lines)


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _line_problem(line: str) -> str | None:
    if not line.strip():
        return "an empty line"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return f"not JSON ({e.msg} at column {e.colno})"
    if not isinstance(record, dict):
        return "not a JSON object"
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        if "prompt" in record and "completion" in record:
            return "a prompt/completion record (finetune-data --format hf-prompt); write --format openai"
        return 'no "messages" list'
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] is not an object"
        role = message.get("role")
        if role not in ROLES:
            return f"messages[{i}]: role {role!r} is not one of {', '.join(sorted(ROLES))}"
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (role == "assistant" and message.get("tool_calls")):
            return f"messages[{i}] ({role}): content is not text"
        lone = _LONE_SURROGATE.search(content) if isinstance(content, str) else None
        if lone:   # JSON can escape half a surrogate pair; it is no character, and no UTF-8
            return f"messages[{i}] ({role}): content holds a lone surrogate \\u{ord(lone.group()):04x}"
    if not any(m.get("role") == "assistant" for m in messages):
        return "no assistant message (nothing to learn)"
    return None


def read_summary(folder: Path) -> dict[str, Any]:
    """summary.json of finetune-data ({} when absent: the folder may have been made by hand)."""
    path = folder / "summary.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    return value if isinstance(value, dict) else {}


def base_model_of(model: str | None, summary: dict[str, Any]) -> tuple[str, str | None]:
    """The model to fine-tune (--model, else the train_model finetune-data recorded, else
    DEFAULT_BASE_MODEL), as the dated snapshot fine-tuning takes; and a note when it was mapped."""
    chosen = model or summary.get("train_model") or DEFAULT_BASE_MODEL
    chosen = str(chosen).removeprefix("openai:")
    snapshot = SNAPSHOTS.get(chosen)
    if snapshot is None:
        return chosen, None
    return snapshot, f"fine-tuning {snapshot}, the snapshot of {chosen} that fine-tuning takes"


def make_spec(folder: str | Path, *, model: str | None, epochs: int | None, suffix: str | None,
              base_url: str | None, endpoint: str) -> tuple[JobSpec, str | None]:
    """Read and check the data folder and options (nothing is sent); the spec and a note."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--data {folder}: not a folder (make one with tf-prompt finetune-data --out DIR)")
    if epochs is not None and epochs < 1:
        raise DataError(f"--epochs {epochs}: expected at least 1")
    if suffix is not None and not 0 < len(suffix) <= MAX_SUFFIX:
        raise DataError(f"--suffix: expected 1 to {MAX_SUFFIX} characters, got {len(suffix)}")
    summary = read_summary(folder)
    if summary.get("format") == "hf-prompt":
        raise DataError(f"{folder / 'summary.json'}: the data was written with --format hf-prompt; OpenAI "
                        f"fine-tuning needs chat examples: rerun finetune-data with --format openai")
    data: dict[str, bytes] = {}
    examples: dict[str, int] = {}
    for split, name in SPLIT_FILES.items():
        path = folder / name
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            if split == "train":
                raise DataError(f"{path}: not found (make it with tf-prompt finetune-data --out {folder})") from None
            continue
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
        count = validate_chat_file(path, content)
        if split == "train" and count < MIN_TRAIN_EXAMPLES:
            raise DataError(f"{path}: {count} examples; OpenAI fine-tuning needs at least {MIN_TRAIN_EXAMPLES}")
        if count:   # an empty validation file (--validation-share 0) is not uploaded
            data[split], examples[split] = content, count
    if epochs is None and isinstance(summary.get("epochs"), int):
        epochs = summary["epochs"]   # what finetune-data's $ estimate assumed
    base, note = base_model_of(model, summary)
    if base.partition(":")[0] in OTHER_BACKENDS:
        where = "--model" if model else f"train_model in {folder / 'summary.json'}"
        raise DataError(f"{where}: {base} is no OpenAI model the fine-tuning API can tune: give an OpenAI base "
                        f"such as --model gpt-4o-mini (LoRA on a local model is --provider hf)")
    return JobSpec(folder, base, epochs, suffix, base_url, endpoint, data, examples, summary), note


# -- the state file ---------------------------------------------------------------------------------

class StateFile:
    """The folder's fine-tuning state, replaced whole on every save (atomic.py)."""

    def __init__(self, folder: Path):
        self.path = folder / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{self.path}: cannot read the fine-tuning state ({e}); if no job was started "
                            f"from this folder, remove the file") from None
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise DataError(f"{self.path}: not a fine-tuning state this version of tf-prompt writes")
        return state

    def save(self, state: dict[str, Any]) -> None:
        state["updated_at"] = time.time()
        try:
            atomic.write_text(self.path, jsontext.dumps(state, indent=2) + "\n")
        except OSError as e:   # a full disk, a read-only data folder: the old state file is whole
            raise DataError(f"{self.path}: cannot write the fine-tuning state ({e.strerror or e}); make room or "
                            f"make the folder writable and rerun (an upload or job made meanwhile is found "
                            f"again at the provider, not made twice)") from None


def _changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two recorded settings, in a few words."""
    said = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key.endswith("_sha256"):
            said.append(f"{key.removesuffix('_sha256')}.jsonl changed")
        else:
            said.append(f"{key.replace('_', ' ')} {old.get(key)} -> {new.get(key)}")
    return ", ".join(said) or "the settings changed"


# -- the job ----------------------------------------------------------------------------------------

def make_api(base_url: str | None, api_key_env: str | None, *, timeout: float = 300.0) -> tuple[Any, str]:
    """The SDK client for the endpoint (retries off, see the module docstring) and the endpoint as
    recorded. The URL is checked and the key read exactly as for chat requests (OpenAIBackend)."""
    backend = OpenAIBackend(model="fine-tuning", base_url=base_url, api_key_env=api_key_env or DEFAULT_KEY_ENV,
                            timeout=timeout)
    options = {**backend._client_options, "max_retries": 0}
    return openai.AsyncOpenAI(**options), backend.endpoint


class FineTuneJob:
    """Upload, create (or find again), follow one job; every step saved to the state file."""

    def __init__(self, spec: JobSpec, api: Any, *, poll_interval: float = 30.0, max_wait: float | None = None,
                 say: Callable[[str], None] | None = None):
        self.spec = spec
        self.api = api
        self.poll_interval = poll_interval
        self.deadline = None if max_wait is None else time.monotonic() + max_wait
        self.say = say or (lambda msg: print(f"tf-prompt: {msg}", file=sys.stderr, flush=True))
        self.store = StateFile(spec.folder)
        self.state: dict[str, Any] = {}

    # -- the state ----------------------------------------------------------------------------
    def _open(self, restart: bool) -> None:
        """This spec's state: the recorded one if it is the same key; else a new one, refused
        while another key's job is recorded (unless `restart`)."""
        old = self.store.load()
        spec = self.spec
        if old is not None and old.get("key") == spec.key and not restart:
            self.state = old
            return
        previous: list[dict[str, Any]] = list(old.get("previous", [])) if old else []
        if old is not None and (old.get("job_id") or old.get("creating")):
            if not restart:
                job = old.get("job_id") or "(being created when the last run stopped)"
                raise DataError(
                    f"{self.store.path}: fine-tuning job {job} ({old.get('status') or 'unknown'}) was started "
                    f"from this folder with other data or settings: "
                    f"{_changes(old.get('settings', {}), spec.settings())}; rerun with --restart to start a "
                    f"new job (the earlier one is not cancelled), or restore the data and settings to follow it")
            previous.append({k: old.get(k) for k in ("job_id", "status", "fine_tuned_model", "settings")})
            if old.get("job_id") and old.get("status") not in FINAL:
                self.say(f"--restart: job {old['job_id']} ({old.get('status')}) is left running at the provider; "
                         f"cancel it there if it is not wanted")
        files = old.get("files", {}) if old else {}
        self.state = {"version": _STATE_VERSION, "provider": "openai", "key": spec.key,
                      "settings": spec.settings(), "created_at": time.time(),
                      # an upload is content: the same file is reused under new settings
                      "files": {split: rec for split, rec in files.items()
                                if split in spec.data and rec.get("name") == spec.file_name(split)},
                      "job_id": None, "status": None, "fine_tuned_model": None, "previous": previous}
        self.store.save(self.state)

    def _save(self, **changes: Any) -> None:
        self.state.update(changes)
        self.store.save(self.state)

    # -- requests -----------------------------------------------------------------------------
    async def _request(self, what: str, call: Callable[[], Any]) -> Any:
        """A request that is safe to repeat (a GET): retried while the error says it may be."""
        delay = RETRY_INITIAL
        for attempt in range(ATTEMPTS):
            try:
                return await call()
            except openai.OpenAIError as e:
                err = translate_error(e, self.spec.base_url)
            if not err.retryable or attempt == ATTEMPTS - 1:
                raise err from None
            self.say(f"{what} failed ({err}); trying again in {err.retry_after or delay:.0f} s")
            await asyncio.sleep(err.retry_after or delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def _made_once(self, what: str, find: Callable[[], Any], make: Callable[[], Any]) -> tuple[Any, bool]:
        """(the object, found) from `find`, or else `make` it; a retryable failure of `make` (its
        answer may be lost after it was done) looks again before trying again."""
        delay = RETRY_INITIAL
        for attempt in range(ATTEMPTS):
            found = await find()
            if found is not None:
                return found, True
            try:
                return await make(), False
            except openai.OpenAIError as e:
                err = translate_error(e, self.spec.base_url)
            if not err.retryable or attempt == ATTEMPTS - 1:
                raise err from None
            self.say(f"{what} failed ({err}); looking again in {err.retry_after or delay:.0f} s")
            await asyncio.sleep(err.retry_after or delay)
            delay *= 2
        raise AssertionError("unreachable")

    # -- the steps ----------------------------------------------------------------------------
    async def _upload(self, split: str) -> dict[str, Any]:
        """The uploaded file of a split (found by its name, or uploaded now)."""
        spec = self.spec
        record = self.state["files"].get(split)
        if record and record.get("id"):
            return record
        name, data = spec.file_name(split), spec.data[split]

        async def find() -> Any:
            async def scan() -> Any:
                async for f in self.api.files.list(purpose="fine-tune", order="desc", limit=PAGE):
                    if f.filename == name and f.bytes == len(data) and f.status != "error":
                        return f
                return None
            return await self._request("listing files", scan)

        async def make() -> Any:
            return await self.api.files.create(file=(name, data, "application/jsonl"), purpose="fine-tune")

        self._save(files={**self.state["files"], split: {"name": name, "id": None}})
        uploaded, found = await self._made_once(f"uploading {SPLIT_FILES[split]}", find, make)
        record = {"name": name, "id": uploaded.id, "created_at": uploaded.created_at, "bytes": len(data)}
        self._save(files={**self.state["files"], split: record})
        self.say(f"{SPLIT_FILES[split]} ({spec.examples[split]} examples): "
                 + (f"already uploaded as {uploaded.id}" if found else f"uploaded as {uploaded.id}"))
        return record

    async def _create(self, train: dict[str, Any], validation: dict[str, Any] | None) -> str:
        spec = self.spec
        key = spec.key[:32]
        skip = {p.get("job_id") for p in self.state.get("previous", [])}

        async def find() -> Any:
            async def scan() -> Any:
                async for job in self.api.fine_tuning.jobs.list(limit=PAGE):
                    if job.created_at < (train.get("created_at") or 0) - _SKEW:
                        return None   # the list is newest first: older jobs cannot use this file
                    if job.id in skip or job.training_file != train["id"]:
                        continue
                    if job.validation_file != (validation or {}).get("id"):
                        continue
                    if (job.metadata or {}).get("tf_prompt_key", key) == key:
                        return job
                return None
            return await self._request("listing fine-tuning jobs", scan)

        async def make() -> Any:
            params: dict[str, Any] = {"model": spec.base_model, "training_file": train["id"],
                                      "metadata": {"tf_prompt_key": key}}
            if validation is not None:
                params["validation_file"] = validation["id"]
            if spec.suffix:
                params["suffix"] = spec.suffix
            if spec.epochs is not None:
                params["method"] = {"type": "supervised",
                                    "supervised": {"hyperparameters": {"n_epochs": spec.epochs}}}
            return await self.api.fine_tuning.jobs.create(**params)

        self._save(creating=True)
        try:
            job, found = await self._made_once("creating the fine-tuning job", find, make)
        except BackendError as e:
            if not e.retryable:   # refused (4xx): no job was made, so none is pending
                self._save(creating=False)
            raise
        self._save(job_id=job.id, status=job.status, creating=False)
        self.say(f"job {job.id}: " + ("found, created for this data by an earlier run" if found else "created")
                 + f" ({spec.base_model}, {'auto' if spec.epochs is None else spec.epochs} epochs)")
        return str(job.id)

    async def _follow(self, job_id: str) -> Any:
        """Poll until the job ends (or --max-wait passes), saying what changed."""
        started = time.monotonic()
        seen: str | None = self.state.get("last_event")
        last_status = None
        while True:
            try:
                job = await self._bounded(self._request(f"checking job {job_id}",
                                                        lambda: self.api.fine_tuning.jobs.retrieve(job_id)))
                page = await self._bounded(self._request(
                    f"reading the events of {job_id}", lambda: self.api.fine_tuning.jobs.list_events(job_id, limit=50)))
            except TimeoutError:   # the endpoint did not answer before --max-wait: the job goes on
                self._check_deadline(job_id, self.state.get("status") or "unknown", force=True)
                raise AssertionError("unreachable") from None
            except BackendError as e:   # the job runs for hours: an outage of the endpoint is waited out
                if not e.retryable:
                    raise
                self.say(f"job {job_id}: cannot check it now ({e}); still waiting")
                self._check_deadline(job_id, self.state.get("status") or "unknown")
                await self._pause()
                continue
            fresh = []
            for event in page.data:   # newest first
                if event.id == seen:
                    break
                fresh.append(event)
            for event in reversed(fresh):
                self.say(f"job {job_id}: {_describe(event)}")
            if fresh:
                seen = fresh[0].id
            if job.status != last_status:
                last_status = job.status
                self.say(f"job {job_id}: {job.status}, {time.monotonic() - started:.0f} s")
            step = next((e.data for e in fresh if e.type == "metrics" and isinstance(e.data, dict)), None)
            self._save(status=job.status, last_event=seen, fine_tuned_model=job.fine_tuned_model,
                       trained_tokens=job.trained_tokens,
                       **({"progress": {k: step.get(k) for k in ("step", "total_steps")}} if step else {}),
                       error=job.error.model_dump() if job.error else None)
            if job.status in FINAL:
                return job
            self._check_deadline(job_id, job.status)
            await self._pause()

    async def _bounded(self, request: Any) -> Any:
        """A status request, given up (TimeoutError) once --max-wait has passed: a hanging endpoint
        would otherwise hold the command for the SDK's timeout times the retries. Each request
        still gets MIN_POLL_WAIT seconds, so that --max-wait 0 checks the status once."""
        if self.deadline is None:
            return await request
        return await asyncio.wait_for(request, max(self.deadline - time.monotonic(), MIN_POLL_WAIT))

    async def _pause(self) -> None:
        """The wait between two polls, cut short at --max-wait (then the last poll tells the status)."""
        pause = self.poll_interval
        if self.deadline is not None:
            pause = min(pause, max(0.0, self.deadline - time.monotonic()))
        await asyncio.sleep(pause)

    def _check_deadline(self, job_id: str, status: str, *, force: bool = False) -> None:
        """FineTunePending once --max-wait has passed (`force`: it has)."""
        if not force and (self.deadline is None or time.monotonic() < self.deadline):
            return
        progress = self.state.get("progress") or {}
        at = f", step {progress['step']}/{progress['total_steps']}" if progress.get("step") else ""
        raise FineTunePending(f"job {job_id} is still {status}{at} after --max-wait; it keeps running at the "
                              f"provider: rerun the same command to follow it (state: {self.store.path})")

    async def run(self, *, restart: bool = False) -> dict[str, Any]:
        """Make sure the spec's job exists and has ended; the state (with `fine_tuned_model`).

        A job that failed or was cancelled is a BackendError with the provider's message. The
        folder is locked for the whole run: a second run on it (which could list, find nothing
        and create a second paid job at the same moment as this one) is refused in one line."""
        try:
            with exclusive(self.spec.folder):
                return await self._run(restart)
        except FolderBusy:
            raise DataError(f"--data {self.spec.folder}: another tf-prompt finetune is running on this folder "
                            f"(uploading, creating or following its job): wait for it, or stop it and rerun") from None

    async def _run(self, restart: bool) -> dict[str, Any]:
        self._open(restart)
        spec = self.spec
        if self.state.get("status") == "succeeded" and self.state.get("fine_tuned_model"):
            self.say(f"job {self.state['job_id']} already succeeded (recorded in {self.store.path})")
            return self.state
        job_id = self.state.get("job_id")
        if not job_id:
            train = await self._upload("train")
            validation = await self._upload("validation") if "validation" in spec.data else None
            job_id = await self._create(train, validation)
        else:
            self.say(f"job {job_id}: following the job started earlier from this folder")
        job = await self._follow(job_id)
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise BackendError(failure_line(job_id, job.status, self.state.get("error")))
        return self.state


def failure_line(job_id: str, status: str, error: dict[str, Any] | None) -> str:
    """One line for a job that ended without a model, with the provider's own message."""
    error = error or {}
    said = " ".join(str(error.get("message") or "no reason given").split())[:300]
    code = f" [{error['code']}{', ' + str(error['param']) if error.get('param') else ''}]" if error.get("code") else ""
    return redact_text(f"fine-tuning job {job_id} {status}: {said}{code}; fix the data and rerun (changed data "
                       f"is refused while this job is recorded: add --restart to start a new job)")


def _describe(event: Any) -> str:
    """An event in a few words: metrics as step/total and loss, other events as their message."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "metrics" and "step" in data:
        loss = data.get("train_loss")
        total = f"/{data['total_steps']}" if data.get("total_steps") else ""
        return f"step {data['step']}{total}" + (f", train loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
    return " ".join(str(event.message).split())[:200]
