"""The embedded llama.cpp server is closed after a run and at exit: no port left listening, no
threads left running.

xllamacpp's server listens on a random 127.0.0.1 port as soon as a model is loaded. One short
generation on the 0.5B preset (in a subprocess, so its threads and port are its own); skipped
when xllamacpp or the preset's packages are not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from conftest import local_model_missing
from tf_prompt.llm.presets import resolve_gguf

PRESET = "qwen2.5-coder-0.5b"


def _missing_reason() -> str | None:
    return local_model_missing(PRESET)


needs_model = pytest.mark.skipif(_missing_reason() is not None, reason=str(_missing_reason()))

SCRIPT = textwrap.dedent('''
    import asyncio, atexit, json, os, socket, sys

    state = {}

    def listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False

    def threads():
        return len(os.listdir(f"/proc/{os.getpid()}/task"))

    def after_every_exit_hook():      # registered first, so it runs after tf_prompt's hooks
        print(json.dumps({"at_exit_listening": listening(state["port2"]), "at_exit_threads": threads()}),
              flush=True)

    atexit.register(after_every_exit_hook)

    from tf_prompt.backends import gguf

    def port():
        loaded = next(iter(gguf._LOADED.values()))
        return int(loaded.server.listening_address.rsplit(":", 1)[1])

    start = threads()
    backend = gguf.GGUFBackend(model=sys.argv[1], n_threads=1, n_ctx=512)

    async def run():
        reply = await backend.complete([{"role": "user", "content": "Say hi."}],
                                       {"temperature": 0, "max_tokens": 2})
        p = port()
        loaded = (listening(p), threads())
        await backend.aclose()                       # what run_async does at its end
        return reply.text, p, loaded

    text, p, (was_listening, loaded_threads) = asyncio.run(run())
    print(json.dumps({"text": text, "start_threads": start, "loaded_listening": was_listening,
                      "loaded_threads": loaded_threads, "after_aclose_listening": listening(p),
                      "after_aclose_threads": threads(), "loads_left": len(gguf._LOADED)}), flush=True)

    # Closing right after a load (the server's task loop may not have started yet) must not hang:
    # a backend dropped without aclose is closed when it is garbage collected.
    for _ in range(4):
        quick = gguf.GGUFBackend(model=sys.argv[1], n_threads=1, n_ctx=512)
        quick._hold()
        del quick
    assert not gguf._LOADED

    # An API user who loads a model and never closes it: interpreter exit must close it.
    never_closed = gguf.GGUFBackend(model=sys.argv[1], n_threads=1, n_ctx=512)
    never_closed._hold()
    state["port2"] = port()
    print(json.dumps({"second_listening": listening(state["port2"])}), flush=True)
''')


def test_xllamacpp_is_pinned_to_the_tested_release_line() -> None:
    """`>=0.2` would let any future xllamacpp in; the pin must bound it above and admit the
    installed (tested) version."""
    import tomllib
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]["local-small"]
    (req,) = [Requirement(r) for r in extra if Requirement(r).name == "xllamacpp"]
    assert any(spec.operator in ("<", "==", "~=") for spec in req.specifier), str(req)
    assert not req.specifier.contains("2027.1.0") and not req.specifier.contains("0.2.14")
    try:
        installed = metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return
    assert req.specifier.contains(installed), f"installed xllamacpp {installed} is outside {req}"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_gguf(PRESET, tmp_path_factory.mktemp("gguf-exit-cache"))


@needs_model
def test_server_port_and_threads_are_gone_after_aclose_and_at_exit(model_path: Path) -> None:
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(model_path)], capture_output=True, text=True,
                              timeout=180)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the process hung (closing the server?); its output: {e.stdout!r}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-2000:]
    first = lines[0]
    assert first["loaded_listening"]                                     # the check can see a port
    assert first["loaded_threads"] > first["start_threads"]              # ... and llama.cpp's threads
    assert not first["after_aclose_listening"] and first["loads_left"] == 0
    assert done.returncode == 0 and len(lines) == 3, done.stderr[-2000:]
    second, at_exit = lines[1:]
    assert second["second_listening"]
    # The server's own threads end with it (llama.cpp keeps a process-wide thread or two).
    assert first["after_aclose_threads"] <= first["loaded_threads"] - 5
    assert not at_exit["at_exit_listening"]
    assert at_exit["at_exit_threads"] <= first["loaded_threads"] - 5
