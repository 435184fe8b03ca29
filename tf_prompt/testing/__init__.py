"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests, demos and benchmarks.

The real `openai` client talks to it over real HTTP, so the network path (serialisation, status
codes, headers, timeouts) is exercised exactly as against a provider. A `responder` function
decides each reply from the request body; a `fault` function can make any attempt fail with a
status code, headers, or a hang. The server counts what it served.

It also speaks the Files and Batches endpoints the SDK uses for the Batch API (upload a JSONL file,
create a batch, poll it, download its output and error files). A batch runs each of its lines
through the same `responder` (and `batch_fault`, for per-line errors) when it completes; when that
happens is controlled by `batch_polls_before_done` and `batch_delay`, so a test can hold a batch
pending as long as it likes. Listing files and the fine-tuning jobs endpoints, for
`tf-prompt finetune --provider openai`, are in testing/fine_tuning.py (`server.fine_tuning`).
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Fault:
    """Instead of answering: wait `delay` seconds, then send `status` with `body` and `headers`.

    status 0 means: after the delay, close the connection without answering.
    """

    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def approx_tokens(text: str) -> int:
    """A cheap stand-in for a tokenizer: about four characters per token."""
    return max(1, len(text) // 4)


Responder = Callable[[dict[str, Any]], str]
FaultFn = Callable[[dict[str, Any], int], "Fault | None"]


class LoopbackServer:
    """`with LoopbackServer(responder) as srv: OpenAI(base_url=srv.base_url, api_key="x")`."""

    def __init__(self, responder: Responder | None = None, *, fault: FaultFn | None = None,
                 latency: float = 0.0, count_tokens: Callable[[str], int] = approx_tokens,
                 batch_fault: FaultFn | None = None, batch_polls_before_done: int | None = 1,
                 batch_delay: float = 0.0, prompt_cache_min: int | None = None):
        self.responder = responder or (lambda body: '{"entities": []}')
        #: Behave like OpenAI's automatic prompt caching (None: off): a prompt that shares a prefix
        #: of at least this many tokens with an earlier one reports that prefix as
        #: usage.prompt_tokens_details.cached_tokens.
        self.prompt_cache_min = prompt_cache_min
        self._seen_prompts: list[str] = []
        self.cached_tokens = 0                     # cached_tokens reported over successful replies
        self.fault = fault
        self.latency = latency
        self.count_tokens = count_tokens
        self.requests: list[dict[str, Any]] = []   # every chat request received (incl. faulted)
        #: the `response_format` of every chat request received (None: sent without one), and
        #: the ways each answer sent for a json_schema broke it (schema_errors; [] if it matched)
        self.response_formats: list[dict[str, Any] | None] = []
        self.schema_violations: list[list[str]] = []
        #: answer a request that carries a response_format with HTTP 400 naming it, as a server
        #: without structured outputs does
        self.reject_response_format = False
        #: (path with query, headers) -> a Fault to answer a chat request with before anything
        #: else (not counted as a request): a provider's routing and auth (testing/azure_server.py)
        self.gate: Callable[[str, Any], Fault | None] | None = None
        self.served = 0                            # successful replies sent
        self.faulted = 0
        self.prompt_tokens = 0                     # tokens counted over successful replies
        self.completion_tokens = 0
        self.faults_done = 0                       # faulted attempts fully handled (after their delay)
        self.in_flight = 0                         # chat requests received and not yet answered
        self.max_in_flight = 0                     # the most ever in flight at once
        # Batch API. A batch completes at the first poll (GET) that comes at least
        # `batch_polls_before_done` polls and `batch_delay` seconds after its creation; None: never.
        # Both may be changed while the server runs (hold a batch pending, then let it finish).
        self.batch_fault = batch_fault             # (line body, index) -> Fault: that line fails
        #: lines added to every batch output file as they are (a broken provider file)
        self.batch_output_extra: list[str] = []
        self.batch_polls_before_done = batch_polls_before_done
        self.batch_delay = batch_delay
        self.files: dict[str, dict[str, Any]] = {}     # id -> {"data": bytes, "filename", "purpose", ...}
        self.batches: dict[str, dict[str, Any]] = {}   # id -> the Batch object (plus private "_" keys)
        self.batch_requests: list[dict[str, Any]] = []  # every line body a batch ran (incl. faulted)
        self.uploads = 0
        self.batches_created = 0
        self.batch_polls = 0
        self.batch_requests_served = 0             # batch lines answered with status 200
        self.batch_prompt_tokens = 0               # tokens of those lines
        self.batch_completion_tokens = 0
        self._lock = threading.Lock()
        from tf_prompt.testing.fine_tuning import FineTuningAPI

        #: the Files-list and fine-tuning endpoints (testing/fine_tuning.py), sharing `files`
        self.fine_tuning = FineTuningAPI(self)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/v1"

    def start(self) -> LoopbackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path.rstrip("/")
                if server.fine_tuning.handle(self, "GET", self.path, b""):
                    return
                if path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]})
                elif not server._handle_batch_api(self, "GET", path, b""):
                    self._send(404, {"error": {"message": "not found", "code": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                path = urlsplit(self.path).path.rstrip("/")
                if not path.endswith("/chat/completions"):
                    if server.fine_tuning.handle(self, "POST", self.path, raw):
                        return
                    if not server._handle_batch_api(self, "POST", path, raw):
                        self._send(404, {"error": {"message": f"no route {self.path}", "code": "not_found"}})
                    return
                refused = server.gate(self.path, self.headers) if server.gate is not None else None
                if refused is not None:
                    self._send(refused.status, refused.body or {}, refused.headers)
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "invalid JSON", "code": "invalid_request"}})
                    return
                server._handle_chat(self, body)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def _send_bytes(self, data: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many concurrent clients connect at once; 5 would refuse some
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up mid-reply (a cancelled run) is normal here

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the chat endpoint -----------------------------------------------------------------
    def _handle_chat(self, handler: Any, body: dict[str, Any]) -> None:
        with self._lock:
            attempt = len(self.requests)
            self.requests.append(body)
            fmt = body.get("response_format")
            self.response_formats.append(fmt if isinstance(fmt, dict) else None)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer_chat(handler, body, attempt)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer_chat(self, handler: Any, body: dict[str, Any], attempt: int) -> None:
        fault = self.fault(body, attempt) if self.fault else None
        if fault is not None:
            with self._lock:
                self.faulted += 1
            try:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.status == 0:
                    handler.close_connection = True
                    return
                payload = fault.body or {"error": {"message": f"injected HTTP {fault.status}",
                                                   "type": "server_error", "code": None}}
                handler._send(fault.status, payload, fault.headers)
            finally:
                with self._lock:
                    self.faults_done += 1
            return
        if self.latency:
            time.sleep(self.latency)
        if self.reject_response_format and "response_format" in body:
            handler._send(400, {"error": {"message": "response_format json_schema is not supported by this model",
                                          "type": "invalid_request_error", "param": "response_format",
                                          "code": None}})
            return
        try:
            text = self.responder(body)
        except Exception as e:  # a broken test responder must show up as an HTTP 500, not hang
            handler._send(500, {"error": {"message": f"responder failed: {e!r}", "code": None}})
            return
        schema = _json_schema(body)
        if schema is not None:
            try:
                errors = schema_errors(schema, json.loads(text))
            except json.JSONDecodeError:
                errors = ["$: the answer is not JSON"]
            with self._lock:
                self.schema_violations.append(errors)
        payload = self._completion(body, text, f"chatcmpl-loopback-{attempt}")
        if self.prompt_cache_min is not None:
            cached = self._cached_prefix_tokens(body)
            payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        with self._lock:
            self.served += 1
            self.prompt_tokens += payload["usage"]["prompt_tokens"]
            self.completion_tokens += payload["usage"]["completion_tokens"]
        handler._send(200, payload)

    def _cached_prefix_tokens(self, body: dict[str, Any]) -> int:
        """The tokens of the longest prefix this prompt shares with an earlier one (0 below
        `prompt_cache_min`); the prompt is remembered for later ones."""
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        with self._lock:
            best = 0
            for earlier in self._seen_prompts:
                n = 0
                for a, b in zip(prompt_text, earlier, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
            self._seen_prompts.append(prompt_text)
            tokens = min(self.count_tokens(prompt_text[:best]), self.count_tokens(prompt_text)) if best else 0
            cached = tokens if tokens >= (self.prompt_cache_min or 0) and best else 0
            self.cached_tokens += cached
            return cached

    def _completion(self, body: dict[str, Any], text: str, ident: str) -> dict[str, Any]:
        """A chat.completion object for `text`, with usage counted by `count_tokens`."""
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        p_tok, c_tok = self.count_tokens(prompt_text), self.count_tokens(text)
        return {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok},
        }

    # -- the Files and Batches endpoints ---------------------------------------------------
    def _handle_batch_api(self, handler: Any, method: str, path: str, raw: bytes) -> bool:
        """Serve /v1/files[/ID[/content]] and /v1/batches[/ID[/cancel]]; False if no route matched."""
        parts = path.split("/")
        try:
            at = parts.index("files") if "files" in parts else parts.index("batches")
        except ValueError:
            return False
        kind, rest = parts[at], parts[at + 1:]
        if kind == "files" and method == "POST" and not rest:
            self._upload(handler, raw)
        elif kind == "files" and method == "GET" and len(rest) in (1, 2) and rest[-1:] != [""]:
            record = self.files.get(rest[0])
            if record is None:
                handler._send(404, {"error": {"message": f"no file {rest[0]}", "code": "not_found"}})
            elif len(rest) == 2 and rest[1] == "content":
                handler._send_bytes(record["data"], "application/octet-stream")
            elif len(rest) == 1:
                handler._send(200, self._file_object(rest[0]))
            else:
                return False
        elif kind == "batches" and method == "POST" and not rest:
            self._create_batch(handler, raw)
        elif kind == "batches" and len(rest) >= 1 and rest[0] in self.batches:
            if method == "GET" and len(rest) == 1:
                handler._send(200, self._poll_batch(rest[0]))
            elif method == "POST" and rest[1:] == ["cancel"]:
                handler._send(200, self._cancel_batch(rest[0]))
            else:
                return False
        elif kind == "batches" and rest:
            handler._send(404, {"error": {"message": f"no batch {rest[0]}", "code": "not_found"}})
        else:
            return False
        return True

    def _store_file(self, data: bytes, filename: str, purpose: str) -> str:
        """Keep a file; the caller must hold the lock."""
        file_id = f"file-loopback-{len(self.files)}"
        self.files[file_id] = {"data": data, "filename": filename, "purpose": purpose,
                               "created_at": int(time.time())}
        return file_id

    def _file_object(self, file_id: str) -> dict[str, Any]:
        f = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(f["data"]), "created_at": f["created_at"],
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}

    def _upload(self, handler: Any, raw: bytes) -> None:
        """POST /v1/files: multipart/form-data with `purpose` and `file`."""
        payload = self._upload_record(handler, raw)
        if payload is not None:
            handler._send(200, payload)

    def _upload_record(self, handler: Any, raw: bytes) -> dict[str, Any] | None:
        """Store an uploaded file and return its File object; None when the form was refused
        (the 400 is sent). The form is read with the stdlib email parser, which understands
        MIME multipart."""
        head = f"Content-Type: {handler.headers.get('content-type', '')}\r\n\r\n".encode("latin-1")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    payload = part.get_payload(decode=True)
                    fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
        if "file" not in fields or "purpose" not in fields:
            handler._send(400, {"error": {"message": "multipart form needs 'file' and 'purpose'",
                                          "code": "invalid_request"}})
            return None
        filename, data = fields["file"]
        with self._lock:
            file_id = self._store_file(data, filename or "upload.jsonl", fields["purpose"][1].decode())
            self.uploads += 1
            return self._file_object(file_id)

    def _create_batch(self, handler: Any, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            handler._send(400, {"error": {"message": "invalid JSON", "code": "invalid_request"}})
            return
        input_id = body.get("input_file_id")
        if input_id not in self.files:
            handler._send(404, {"error": {"message": f"no file {input_id}", "code": "not_found"}})
            return
        now = int(time.time())
        with self._lock:
            self.batches_created += 1
            batch_id = f"batch_loopback_{len(self.batches)}"
            lines = self.files[input_id]["data"].decode("utf-8").splitlines()
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body.get("endpoint", "/v1/chat/completions"),
                "errors": None, "input_file_id": input_id,
                "completion_window": body.get("completion_window", "24h"), "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                "request_counts": {"total": sum(1 for ln in lines if ln.strip()), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "_polls": 0, "_started": time.monotonic(),
            }
            batch = self._public(self.batches[batch_id])
        handler._send(200, batch)

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _poll_batch(self, batch_id: str) -> dict[str, Any]:
        """GET /v1/batches/ID: one more poll; the batch runs when its time has come."""
        with self._lock:
            self.batch_polls += 1
            batch = self.batches[batch_id]
            if batch["status"] in ("validating", "in_progress"):
                batch["_polls"] += 1
                batch["status"] = "in_progress"
                batch["in_progress_at"] = batch["in_progress_at"] or int(time.time())
                needed = self.batch_polls_before_done
                if (needed is not None and batch["_polls"] >= needed
                        and time.monotonic() - batch["_started"] >= self.batch_delay):
                    self._run_batch(batch)
            return self._public(batch)

    def _cancel_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self.batches[batch_id]
            if batch["status"] in ("validating", "in_progress"):
                now = int(time.time())
                batch.update(status="cancelled", cancelling_at=now, cancelled_at=now)
            return self._public(batch)

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every line (called with the lock held): 200s go to the output file, failures
        (a `batch_fault`, a responder exception, an unreadable line) to the error file."""
        outputs: list[str] = []
        errors: list[str] = []
        lines = [ln for ln in self.files[batch["input_file_id"]]["data"].decode("utf-8").splitlines() if ln.strip()]
        for n, line in enumerate(lines):
            request_id = f"req_loopback_{batch['id']}_{n}"
            try:
                item = json.loads(line)
                custom_id, body = item["custom_id"], item["body"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                errors.append(json.dumps({"id": f"batch_req_{n}", "custom_id": None, "response": None,
                                          "error": {"code": "invalid_request", "message": f"line {n + 1}: {e!r}"}}))
                continue
            index = len(self.batch_requests)
            self.batch_requests.append(body)
            fault = self.batch_fault(body, index) if self.batch_fault else None
            status, payload = 200, None
            if fault is not None:
                status = fault.status or 500
                payload = fault.body or {"error": {"message": f"injected HTTP {status}", "type": "server_error",
                                                   "code": None}}
            else:
                try:
                    payload = self._completion(body, self.responder(body), f"chatcmpl-loopback-b{index}")
                except Exception as e:
                    status = 500
                    payload = {"error": {"message": f"responder failed: {e!r}", "code": None}}
            record = json.dumps({"id": f"batch_req_{index}", "custom_id": custom_id,
                                 "response": {"status_code": status, "request_id": request_id, "body": payload},
                                 "error": None}, ensure_ascii=False)
            if status == 200:
                outputs.append(record)
                self.batch_requests_served += 1
                self.batch_prompt_tokens += payload["usage"]["prompt_tokens"]
                self.batch_completion_tokens += payload["usage"]["completion_tokens"]
            else:
                errors.append(record)
        now = int(time.time())
        batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        outputs = outputs + self.batch_output_extra if outputs else outputs
        for key, records, suffix in (("output_file_id", outputs, "output"), ("error_file_id", errors, "error")):
            if records:
                batch[key] = self._store_file(("\n".join(records) + "\n").encode("utf-8"),
                                              f"{batch['id']}_{suffix}.jsonl", "batch_output")
        batch.update(status="completed", finalizing_at=now, completed_at=now)


# -- structured outputs: what a request asked for, and whether an answer matches it -------------

def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def schema_errors(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """How `value` breaks `schema`, for the subset of JSON Schema strict structured outputs use
    here (object with properties / required / additionalProperties, array of items with
    maxItems, string, enum); [] when it matches. A small checker, so the tests need no jsonschema dependency."""
    errors: list[str] = []
    kind = schema.get("type")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of the {len(schema['enum'])} enum values")
    if kind == "object":
        if not isinstance(value, dict):
            return [*errors, f"{path}: expected an object"]
        properties = schema.get("properties", {})
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected {k!r}" for k in value if k not in properties]
        for k, sub in properties.items():
            if k in value:
                errors += schema_errors(sub, value[k], f"{path}.{k}")
    elif kind == "array":
        if not isinstance(value, list):
            return [*errors, f"{path}: expected an array"]
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: {len(value)} items > maxItems {schema['maxItems']}")
        for i, item in enumerate(value):
            errors += schema_errors(schema.get("items", {}), item, f"{path}[{i}]")
    elif kind == "string" and not isinstance(value, str):
        errors.append(f"{path}: expected a string")
    return errors


# -- an oracle model, for checking the pipeline end to end ---------------------------------------

def _strip_diacritics(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def reordered_translation(sentence: Any) -> str:
    """A deterministic stand-in translation unlike the source: an English sentence naming the
    sentence's gold entities as written but in reverse order, at other positions and in a text
    of another length than the source's, so the projection back to the source has real work to
    do. English and no echo, so transfusion's pivot check lets it through."""
    from tf_prompt.spans.align import bio_to_spans

    spans = bio_to_spans(sentence.text, sentence.offsets, sentence.tags) if sentence.tags else []
    said = " , then ".join(s.text for s in reversed(spans)) or "nobody in particular"
    return f"They told us about {said} , as reported in the news today , and that is all there was to the story ."


def english_translation(sentence: Any) -> str:
    """The oracle's default translation: an English sentence that names the sentence's gold
    entities as written (in order), so annotate finds them and the projection back to the source
    is exact. It is English and no echo of the source, so transfusion's pivot check
    (methods/pivot_check.py) lets it through, as it would a real model's translation. A short
    hash of the source ends it: two sentences with the same entities get distinct translations
    (and distinct annotate calls), as they would from a real model."""
    import hashlib

    from tf_prompt.spans.align import bio_to_spans

    spans = bio_to_spans(sentence.text, sentence.offsets, sentence.tags) if sentence.tags else []
    said = " and ".join(s.text for s in spans) or "nothing of note"
    ref = hashlib.sha256(sentence.text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return (f"According to the report of that day , the story was about {said} , which is what they "
            f"told us ( ref {ref} ) .")


def oracle_responder(sentences: Sequence[Any], labels: Sequence[str], *,
                     variant: str = "clean", translation: Callable[[Any], str] | None = None,
                     prompts: str | Path | None = None) -> Responder:
    """A 'perfect model' for the templates of the registered methods: it answers every step from
    the gold tags.

    Which step a prompt is for, and which sentence it holds, is read off the templates themselves
    (testing/recognise.py: the packaged ones, and those of `prompts`, a --prompts folder); what it
    answers follows the step's declared reply format. translate returns `english_translation`
    (an English sentence naming the gold entities as written), or `translation(sentence)` when given
    (e.g. `reordered_translation`: the oracle then knows the gold entities of that translation
    too); entity steps return the gold entities as JSON (or GoLLIE code). `variant` degrades the
    answers the way real models do: "lower" (lowercased strings), "ascii" (diacritics stripped),
    "spaces" (doubled and padded spaces), "fenced" (JSON inside a markdown fence with prose),
    "mapping" ({TYPE: [strings]}), "lines" (TYPE: a, b lines). Used by tests and
    benchmarks/perfect_model.py.
    """
    import json as _json

    from tf_prompt.methods.context import code_answer, gold_mentions
    from tf_prompt.parsing import parse_translation
    from tf_prompt.testing.recognise import recognise, shapes
    from tf_prompt.types import ParseFailure

    known = shapes(prompts)
    gold = {}
    english: dict[str, str] = {}   # source text -> its translation
    for s in sentences:
        mentions = gold_mentions(s, labels)
        gold[s.text] = mentions
        english[s.text] = (translation or english_translation)(s)
        for text in {s.text, english[s.text]}:
            gold.setdefault(text, mentions)
            # annotate sees the translation as the pipeline parsed it (outer quotes stripped)
            with contextlib.suppress(ParseFailure):
                gold.setdefault(parse_translation(text), mentions)

    def degrade(text: str) -> str:
        if variant == "lower":
            return text.lower()
        if variant == "ascii":
            return _strip_diacritics(text)
        if variant == "spaces":
            return " " + text.replace(" ", "  ") + " "
        return text

    def known_mentions(text: str) -> list[Any]:
        mentions = gold.get(text)
        if mentions is None:
            raise KeyError(f"oracle does not know sentence {text[:60]!r}")
        return mentions

    def entities_reply(text: str) -> str:
        items = [{"text": degrade(m.text), "type": m.label} for m in known_mentions(text)]
        if variant == "mapping":
            by_type: dict[str, list[str]] = {}
            for it in items:
                by_type.setdefault(it["type"], []).append(it["text"])
            return _json.dumps(by_type, ensure_ascii=False)
        if variant == "lines":
            by_type = {}
            for it in items:
                by_type.setdefault(it["type"], []).append(it["text"])
            return "\n".join(f"{k}: {', '.join(v)}" for k, v in by_type.items()) or "No entities."
        payload = _json.dumps({"entities": items}, ensure_ascii=False)
        if variant == "fenced":
            return f"Here are the entities:\n```json\n{payload}\n```\nLet me know if you need more."
        return payload

    def code_reply(text: str, fused: bool) -> str:
        """GoLLIE-style: continue the code after `result = [` (and add final_result for TF)."""
        degraded = [type(m)(degrade(m.text), m.label) for m in known_mentions(text)]
        lists = {"result": degraded}
        if fused:
            lists["final_result"] = degraded
        return code_answer(lists)[len("result = ["):]

    def fused_value(text: str) -> dict[str, Any]:
        items = [{"text": degrade(m.text), "type": m.label} for m in known_mentions(text)]
        return {"translation": english.get(text, text), "english_entities": items, "entities": items}

    def single_reply(reply: str, text: str) -> str:
        if reply == "translation":
            return english.get(text, text)
        if reply in ("code", "code_fused"):
            return code_reply(text, fused=reply == "code_fused")
        if reply == "fused":
            payload = _json.dumps(fused_value(text), ensure_ascii=False)
            return f"Sure:\n```json\n{payload}\n```" if variant == "fenced" else payload
        return entities_reply(text)

    def numbered_reply(reply: str, items: list[dict[str, Any]]) -> str:
        """Numbered prompts (--batch-sentences): answer every item as the single prompt would."""
        out: dict[str, Any] = {}
        for item in items:
            n, text = str(item["n"]), item["text"]
            if reply == "translation":
                out[n] = english.get(text, text)
            elif reply == "fused":
                entities = _json.loads(entities_reply(text))["entities"]
                out[n] = {"translation": english.get(text, text), "english_entities": entities,
                          "entities": entities}
            else:
                out[n] = {"entities": _json.loads(entities_reply(text))["entities"]}
        return _json.dumps(out, ensure_ascii=False)

    def respond(body: dict[str, Any]) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        found = recognise(user, known)
        if found.shape.numbered:
            return numbered_reply(found.shape.reply, found.items)
        return single_reply(found.shape.reply, found.values["text"])

    return respond
