"""The JSON schema a constrained call asks for, read the way the local engines need it.

A constrained call carries OpenAI's structured-outputs request in its params,
`response_format = {"type": "json_schema", "json_schema": {"name": ..., "strict": True, "schema": {...}}}`,
so one request shape serves the remote APIs and the engines in this process. llama.cpp reads that
object itself; the hf backend needs the bare schema for its grammar. A request this module cannot
read is the caller's mistake and fails before any model work, with one line saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf_prompt.types import BackendError

__all__ = ["requested_schema"]

#: What `{"type": "json_object"}` asks for: any JSON object.
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def requested_schema(params: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """The JSON schema the answer must match, or None for a free-text call.

    `{"type": "json_object"}` (any JSON object) is the schema `{"type": "object"}`; `{"type": "text"}`
    is free text. `where` names the backend in the error.
    """
    fmt = params.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping):
        raise BackendError(f"{where}: response_format must be an object, got {type(fmt).__name__}")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(_ANY_OBJECT)
    if kind != "json_schema":
        raise BackendError(f"{where}: response_format type {kind!r} is not one of json_schema, json_object, text")
    wrapper = fmt.get("json_schema")
    schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
    if not isinstance(schema, Mapping):
        raise BackendError(f"{where}: response_format json_schema has no 'schema' object")
    return dict(schema)
