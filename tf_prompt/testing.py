"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests, demos and benchmarks.

The real `openai` client talks to it over real HTTP, so the network path (serialisation, status
codes, headers, timeouts) is exercised exactly as against a provider. A `responder` function
decides each reply from the request body; a `fault` function can make any attempt fail with a
status code, headers, or a hang. The server counts what it served.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence


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
                 latency: float = 0.0, count_tokens: Callable[[str], int] = approx_tokens):
        self.responder = responder or (lambda body: '{"entities": []}')
        self.fault = fault
        self.latency = latency
        self.count_tokens = count_tokens
        self.requests: list[dict[str, Any]] = []   # every chat request received (incl. faulted)
        self.served = 0                            # successful replies sent
        self.faulted = 0
        self.prompt_tokens = 0                     # tokens counted over successful replies
        self.completion_tokens = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "loopback", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "code": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "code": "not_found"}})
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
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

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

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the chat endpoint -----------------------------------------------------------------
    def _handle_chat(self, handler: Any, body: dict[str, Any]) -> None:
        with self._lock:
            attempt = len(self.requests)
            self.requests.append(body)
        fault = self.fault(body, attempt) if self.fault else None
        if fault is not None:
            with self._lock:
                self.faulted += 1
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status == 0:
                handler.close_connection = True
                return
            payload = fault.body or {"error": {"message": f"injected HTTP {fault.status}",
                                               "type": "server_error", "code": None}}
            handler._send(fault.status, payload, fault.headers)
            return
        if self.latency:
            time.sleep(self.latency)
        try:
            text = self.responder(body)
        except Exception as e:  # a broken test responder must show up as an HTTP 500, not hang
            handler._send(500, {"error": {"message": f"responder failed: {e!r}", "code": None}})
            return
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        p_tok, c_tok = self.count_tokens(prompt_text), self.count_tokens(text)
        with self._lock:
            self.served += 1
            self.prompt_tokens += p_tok
            self.completion_tokens += c_tok
        handler._send(200, {
            "id": f"chatcmpl-loopback-{attempt}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok},
        })


# -- an oracle model, for checking the pipeline end to end ---------------------------------------

def _strip_diacritics(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def _after_prefix(line: str) -> str:
    return line.split(": ", 1)[1] if ": " in line else line


def oracle_responder(sentences: "Sequence[Any]", labels: "Sequence[str]", *,
                     variant: str = "clean") -> Responder:
    """A 'perfect model' for the default templates: it answers every step from the gold tags.

    translate returns the source sentence unchanged (names kept as written, as the template asks),
    annotate and direct/fuse return the gold entities as JSON. `variant` degrades the answers the
    way real models do: "lower" (lowercased strings), "ascii" (diacritics stripped), "spaces"
    (doubled and padded spaces), "fenced" (JSON inside a markdown fence with prose), "mapping"
    ({TYPE: [strings]}), "lines" (TYPE: a, b lines). Used by tests and benchmarks/perfect_model.py.
    """
    import json as _json

    from .pipeline import gold_mentions

    from .parse import ParseFailure, parse_translation

    gold = {}
    for s in sentences:
        mentions = gold_mentions(s, labels)
        gold[s.text] = mentions
        try:  # annotate sees the translation as the pipeline parsed it (outer quotes stripped)
            gold.setdefault(parse_translation(s.text), mentions)
        except ParseFailure:
            pass

    def degrade(text: str) -> str:
        if variant == "lower":
            return text.lower()
        if variant == "ascii":
            return _strip_diacritics(text)
        if variant == "spaces":
            return " " + text.replace(" ", "  ") + " "
        return text

    def entities_reply(text: str) -> str:
        mentions = gold.get(text)
        if mentions is None:
            raise KeyError(f"oracle does not know sentence {text[:60]!r}")
        items = [{"text": degrade(m.text), "type": m.label} for m in mentions]
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

    def code_reply(user: str) -> str:
        """GoLLIE-style: continue the code after `result = [` (and add final_result for TF)."""
        from .pipeline import code_answer

        literal = next(ln for ln in user.splitlines() if ln.startswith("text = "))[len("text = "):]
        mentions = gold.get(_json.loads(literal))
        if mentions is None:
            raise KeyError(f"oracle does not know sentence {literal[:60]!r}")
        degraded = [type(m)(degrade(m.text), m.label) for m in mentions]
        lists = {"result": degraded}
        if "eng_text = " in user:
            lists["final_result"] = degraded
        code = code_answer(lists)
        return code[len("result = ["):]

    def respond(body: dict[str, Any]) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        if "# This is the text to analyze" in user:
            return code_reply(user)
        if '"english_entities"' in user:   # transfusion-1call: translation + both entity lists
            i = max(k for k, ln in enumerate(user.splitlines()) if ln.startswith("Answer:"))
            text = _after_prefix(user.splitlines()[i - 1])
            mentions = gold.get(text)
            if mentions is None:
                raise KeyError(f"oracle does not know sentence {text[:60]!r}")
            items = [{"text": degrade(m.text), "type": m.label} for m in mentions]
            payload = _json.dumps({"translation": text, "english_entities": items, "entities": items},
                                  ensure_ascii=False)
            return f"Sure:\n```json\n{payload}\n```" if variant == "fenced" else payload
        lines = user.splitlines()
        if "Translate the following" in user:
            i = max(k for k, ln in enumerate(lines) if ln.startswith("English:"))
            return _after_prefix(lines[i - 1])
        if "English translation:" in user:
            i = max(k for k, ln in enumerate(lines) if ln.startswith("English translation:"))
            return entities_reply(_after_prefix(lines[i - 1]))
        sentence_lines = [ln for ln in lines if ln.startswith("Sentence: ")]
        return entities_reply(_after_prefix(sentence_lines[-1]))

    return respond
