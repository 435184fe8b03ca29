"""The HTTP plumbing the provider loopback servers share: a threaded server on 127.0.0.1 that
hands each POST to the subclass and sends back its JSON answer.

Why one base: each provider's test server (anthropic_server.py, gemini_server.py) differs only in
routes, request shapes and error bodies; the socket, threading, keep-alive and shutdown details
are the same and were written twice. A status of 0 closes the connection without an answer (a
dropped request, for retry tests).
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

__all__ = ["JsonHTTPServer", "Reply"]

#: (HTTP status, JSON body, extra headers); status 0 drops the connection.
Reply = tuple[int, dict[str, Any], dict[str, str]]
_S = TypeVar("_S", bound="JsonHTTPServer")   # typing.Self is Python 3.11+, the package supports 3.10


class JsonHTTPServer:
    """`with Sub(...) as srv:` starts it on a free port (`srv.base_url`); subclasses implement
    `answer_post` and call `super().__init__()`."""

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def answer_post(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """The answer to one POST (`headers` with lower-case names)."""
        raise NotImplementedError

    def start(self: _S) -> _S:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:   # keep test output clean
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, payload, headers = server.answer_post(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if status == 0:
                    self.close_connection = True
                    return
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:   # a client that hung up
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
