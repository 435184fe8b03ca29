"""The Files-list and fine-tuning endpoints of the loopback server, for `tf-prompt finetune`.

The real `openai` SDK talks to these over HTTP, as it would to OpenAI: upload a file (the
server's own file store, shared with the Batch API), list files, create / list / retrieve /
cancel fine-tuning jobs and list a job's events, with the cursor pagination (`after`, `limit`,
`has_more`) the SDK's pages follow.

A job walks validating_files -> queued -> running -> succeeded, one state further each
`polls_per_state` retrievals of that job (None: it stays where it is, for a test that wants a
job pending), and while running it logs one `metrics` event (step, total_steps, train_loss) per
retrieval. Test hooks:

  - `fault(method, route)` -> Fault: that request fails instead (401 bad key, 429 quota...);
    route is one of ROUTES;
  - `hold[route] = seconds`: the request is done (file stored, job created), then its answer
    waits; a test kills the client in that window to check that a rerun finds what was made;
  - `fail_with = {"code", "message", "param"}`: jobs fail when their files are validated.

Counters (`uploads` on the server, `jobs_created`, `job_polls`, `list_calls`) let a test prove
that a rerun made no second upload or job; `authorizations` holds each request's bearer key, so a
test can check a key went to its endpoint.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tf_prompt.testing import Fault, LoopbackServer

#: Routes a fault or hold may name.
ROUTES = ("upload", "files", "create", "jobs", "job", "events", "cancel")
STATES = ("validating_files", "queued", "running", "succeeded")
FINAL = frozenset({"succeeded", "failed", "cancelled"})


class FineTuningAPI:
    """The fine-tuning side of a LoopbackServer (`server.fine_tuning`)."""

    def __init__(self, server: LoopbackServer, polls_per_state: int | None = 1, total_steps: int = 4):
        self.server = server
        self.polls_per_state = polls_per_state
        self.total_steps = total_steps
        self.fault: Any = None                 # (method, route) -> Fault | None
        self.hold: dict[str, float] = {}
        self.fail_with: dict[str, Any] | None = None
        self.jobs: dict[str, dict[str, Any]] = {}      # id -> job object (plus private "_" keys), in creation order
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.create_bodies: list[dict[str, Any]] = []  # every job creation request body
        self.jobs_created = 0
        self.job_polls = 0
        self.list_calls: dict[str, int] = {"files": 0, "jobs": 0, "events": 0}
        self.authorizations: list[str] = []
        self._lock = threading.Lock()

    # -- dispatch ---------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[str, list[str]] | None:
        """(route, ids in the path) for the requests this module serves; None for any other."""
        parts = [p for p in urlsplit(path).path.split("/") if p]
        if "fine_tuning" in parts:
            rest = parts[parts.index("fine_tuning") + 1:]
            if rest[:1] != ["jobs"]:
                return None
            rest = rest[1:]
            if not rest:
                return ("create" if method == "POST" else "jobs"), []
            if len(rest) == 1 and method == "GET":
                return "job", rest
            if len(rest) == 2 and rest[1] == "events" and method == "GET":
                return "events", rest[:1]
            if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
                return "cancel", rest[:1]
            return None
        if parts[-1:] == ["files"]:
            return ("upload" if method == "POST" else "files"), []
        return None

    def handle(self, handler: Any, method: str, path: str, raw: bytes) -> bool:
        """Serve the request if it is one of ROUTES; False (nothing sent) if it is not."""
        found = self.route(method, path)
        if found is None:
            return False
        name, ids = found
        with self._lock:
            self.authorizations.append(str(handler.headers.get("authorization", "")).removeprefix("Bearer "))
        fault: Fault | None = self.fault(method, name) if self.fault else None
        if fault is not None:
            time.sleep(fault.delay)
            handler._send(fault.status, fault.body or {"error": {"message": f"injected HTTP {fault.status}",
                                                                 "type": "server_error", "code": None}},
                          fault.headers)
            return True
        query = {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}
        status, payload = self._serve(name, ids, query, handler, raw)
        if status == 0:   # the upload refused the form and answered itself
            return True
        if self.hold.get(name):
            time.sleep(self.hold[name])
        handler._send(status, payload)
        return True

    def _serve(self, name: str, ids: list[str], query: dict[str, str], handler: Any,
               raw: bytes) -> tuple[int, dict[str, Any]]:
        if name == "upload":
            record = self.server._upload_record(handler, raw)
            return (0, {}) if record is None else (200, record)
        if name == "files":
            return 200, self._list_files(query)
        if name == "create":
            return self._create(raw)
        if name == "jobs":
            with self._lock:
                self.list_calls["jobs"] += 1
                items = [self._public(j) for j in reversed(list(self.jobs.values()))]
            return 200, _page(items, query, default_limit=20)
        job = self.jobs.get(ids[0])
        if job is None:
            return 404, {"error": {"message": f"fine-tuning job {ids[0]} not found", "code": "not_found",
                                   "type": "invalid_request_error", "param": None}}
        if name == "job":
            return 200, self._poll(job)
        if name == "events":
            with self._lock:
                self.list_calls["events"] += 1
                items = list(reversed(self.events[job["id"]]))
            return 200, _page(items, query, default_limit=20)
        return 200, self._cancel(job)

    # -- files ------------------------------------------------------------------------------
    def _list_files(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.list_calls["files"] += 1
            items = [self.server._file_object(fid) for fid in self.server.files]
        if query.get("purpose"):
            items = [f for f in items if f["purpose"] == query["purpose"]]
        if query.get("order", "desc") == "desc":
            items.reverse()
        return _page(items, query, default_limit=10_000)

    # -- jobs -------------------------------------------------------------------------------
    def _create(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {"error": {"message": "invalid JSON", "code": "invalid_request"}}
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if key == "validation_file" and fid is None:
                continue
            record = self.server.files.get(fid) if isinstance(fid, str) else None
            if record is None or record["purpose"] != "fine-tune":
                return 400, {"error": {"message": f"invalid {key}: {fid!r} is not a file uploaded for fine-tune",
                                       "type": "invalid_request_error", "param": key, "code": "invalid_file"}}
        if not isinstance(body.get("model"), str):
            return 400, {"error": {"message": "model is required", "param": "model", "code": None}}
        supervised = ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        hyper = {"n_epochs": supervised.get("n_epochs", (body.get("hyperparameters") or {}).get("n_epochs", "auto")),
                 "batch_size": "auto", "learning_rate_multiplier": "auto"}
        now = int(time.time())
        with self._lock:
            self.create_bodies.append(body)
            self.jobs_created += 1
            job_id = f"ftjob-loopback{len(self.jobs)}"
            self.jobs[job_id] = {
                "id": job_id, "object": "fine_tuning.job", "created_at": now, "error": None,
                "fine_tuned_model": None, "finished_at": None, "hyperparameters": hyper, "model": body["model"],
                "organization_id": "org-loopback", "result_files": [], "seed": body.get("seed") or 42,
                "status": "validating_files", "trained_tokens": None, "training_file": body["training_file"],
                "validation_file": body.get("validation_file"), "estimated_finish": None, "integrations": [],
                "metadata": body.get("metadata"), "suffix": body.get("suffix"),
                "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
                "_polls": 0, "_step": 0,
            }
            self.events[job_id] = []
            self._event(job_id, f"Validating training file: {body['training_file']}")
            job = self._public(self.jobs[job_id])
        return 200, job

    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "suffix"}

    def _event(self, job_id: str, message: str, data: dict[str, Any] | None = None, level: str = "info") -> None:
        """Log an event (the lock is held)."""
        events = self.events[job_id]
        events.append({"id": f"ftevent-{job_id}-{len(events)}", "object": "fine_tuning.job.event",
                       "created_at": int(time.time()), "level": level, "message": message,
                       "data": data, "type": "metrics" if data else "message"})

    def _poll(self, job: dict[str, Any]) -> dict[str, Any]:
        """One retrieval: the job moves on when its time has come (see the module docstring)."""
        with self._lock:
            self.job_polls += 1
            job["_polls"] += 1
            if job["status"] == "running" and job["_step"] < self.total_steps:
                job["_step"] += 1
                self._event(job["id"], f"Step {job['_step']}/{self.total_steps}: training loss={1 / job['_step']:.4f}",
                            {"step": job["_step"], "total_steps": self.total_steps,
                             "train_loss": round(1 / job["_step"], 4)})
            needed = self.polls_per_state
            if job["status"] not in FINAL and needed is not None and job["_polls"] >= needed:
                job["_polls"] = 0
                self._advance(job)
            return self._public(job)

    def _advance(self, job: dict[str, Any]) -> None:
        now = int(time.time())
        status = job["status"]
        if status == "validating_files" and self.fail_with is not None:
            job.update(status="failed", finished_at=now, error=dict(self.fail_with))
            self._event(job["id"], f"Job failed: {self.fail_with.get('message')}", level="error")
            return
        if status == "running" and job["_step"] < self.total_steps:
            return   # still training
        job["status"] = STATES[STATES.index(status) + 1]
        if job["status"] == "queued":
            self._event(job["id"], "Files validated, moving job to queued state")
        elif job["status"] == "running":
            job["estimated_finish"] = now + 60
            self._event(job["id"], "Fine-tuning job started")
        else:
            data = self.server.files[job["training_file"]]["data"]
            epochs = job["hyperparameters"]["n_epochs"]
            tokens = self.server.count_tokens(data.decode("utf-8")) * (epochs if isinstance(epochs, int) else 3)
            suffix = job.get("suffix") or ""
            job.update(finished_at=now, trained_tokens=tokens, estimated_finish=None,
                       fine_tuned_model=f"ft:{job['model']}:loopback:{suffix}:{job['id'][-8:]}")
            self._event(job["id"], f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._event(job["id"], "The job has successfully completed")

    def _cancel(self, job: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if job["status"] not in FINAL:
                job.update(status="cancelled", finished_at=int(time.time()))
                self._event(job["id"], "Fine-tuning job cancelled")
            return self._public(job)


def _page(items: list[dict[str, Any]], query: dict[str, str], *, default_limit: int) -> dict[str, Any]:
    """A cursor page: the items after the one named by `after`, at most `limit` of them."""
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    try:
        limit = max(1, int(query.get("limit", default_limit)))
    except ValueError:
        limit = default_limit
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}
