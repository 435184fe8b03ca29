"""The loopback OpenAI server (LoopbackServer) under Azure OpenAI's path layout and auth.

Azure serves a deployment at `/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=V`
and reads the key from the `api-key` header. AzureGate, installed as the server's `gate`, answers
as Azure does what does not fit: 401 for a missing or wrong key, 404 DeploymentNotFound for a
deployment the resource does not have, 400 for a missing api-version, and 400 content_filter for a
prompt `filtered` flags. It records the path, api-version and key of every request it let through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tf_prompt.testing import Fault, LoopbackServer, Responder

_PREFIX = "/openai/deployments/"


class AzureGate:
    """Azure's routing and auth in front of a LoopbackServer (see the module docstring)."""

    def __init__(self, key: str, deployments: set[str]):
        self.key = key
        self.deployments = deployments
        self.seen: list[dict[str, Any]] = []    # {"path", "api_version", "key"} of each request let through
        self.refused = 0
        self._lock = threading.Lock()

    def __call__(self, path: str, headers: Any) -> Fault | None:
        parts = urlsplit(path)
        key = headers.get("api-key")
        versions = parse_qs(parts.query).get("api-version")
        version = versions[0] if versions else None
        fault = self._check(parts.path, key, version, headers)
        with self._lock:
            if fault is None:
                self.seen.append({"path": parts.path, "api_version": version, "key": key})
            else:
                self.refused += 1
        return fault

    def _check(self, path: str, key: str | None, version: str | None, headers: Any) -> Fault | None:
        if key != self.key:
            return Fault(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key "
                                         "or wrong API endpoint. Make sure to provide a valid key for an active "
                                         "subscription and use a correct regional API endpoint for your resource."}})
        if headers.get("authorization"):   # the Azure client signs with api-key only
            return Fault(400, {"error": {"code": "BadRequest", "message": "unexpected Authorization header"}})
        if not version:
            return Fault(404, {"error": {"code": "404", "message": "Resource not found"}})
        if not (path.startswith(_PREFIX) and path.endswith("/chat/completions")):
            return Fault(404, {"error": {"code": "404", "message": "Resource not found"}})
        deployment = path[len(_PREFIX):-len("/chat/completions")]
        if deployment not in self.deployments:
            return Fault(404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this "
                                         "resource does not exist. If you created the deployment within the last "
                                         "5 minutes, please wait a moment and try again."}})
        return None


def content_filter_fault() -> Fault:
    """What Azure answers for a prompt its content filter blocks."""
    return Fault(400, {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy.", "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            "hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"}}}}})


def azure_server(responder: Responder | None = None, *, key: str, deployments: set[str],
                 fault: Callable[[dict[str, Any], int], Fault | None] | None = None
                 ) -> tuple[LoopbackServer, AzureGate]:
    """A (not yet started) LoopbackServer behind an AzureGate; its resource endpoint is
    `endpoint(server)`."""
    server = LoopbackServer(responder, fault=fault)
    gate = AzureGate(key, deployments)
    server.gate = gate
    return server, gate


def endpoint(server: LoopbackServer) -> str:
    """The resource endpoint of a started server (`http://127.0.0.1:PORT`, no /v1)."""
    return server.base_url.removesuffix("/v1")
