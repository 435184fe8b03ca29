"""Review of the issue-12 restructure: what it left undone, as regression tests.

- One module writes the run folder (issue 12, item 3): no module outside `tf_prompt/runs/` builds
  a path to one of the run folder's files to write it itself.
- A fresh install has what `tf_prompt.backends.openai_compat` imports: the HTTP library it checks
  URLs and errors with is the one the openai SDK sends with, not `httpx` whatever the SDK uses
  (openai 3 sends with httpx2 and no longer installs httpx).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import openai

from tf_prompt.runs.outputs import MANIFEST, METRICS, PREDICTIONS, TRACE

PACKAGE = Path(__file__).resolve().parents[2] / "tf_prompt"
RUN_FILES = {MANIFEST, METRICS, PREDICTIONS, TRACE}


def _run_file_paths(path: Path) -> list[str]:
    """`x / "metrics.json"` (any run-folder file name) in the module at `path`, as 'file:line'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
            and isinstance(node.right, ast.Constant) and node.right.value in RUN_FILES]


def test_only_the_runs_package_builds_paths_to_run_folder_files() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if "runs" not in path.relative_to(PACKAGE).parts
                 for hit in _run_file_paths(path)]
    assert offenders == [], f"run-folder files written outside tf_prompt/runs/: {offenders}"


def _sdk_http_module() -> str:
    """Top-level name of the HTTP library the installed openai SDK builds its client on."""
    return next(c.__module__.split(".")[0] for c in openai.DefaultHttpxClient.__mro__
                if c.__module__.split(".")[0] not in ("openai", "builtins"))


def test_openai_backend_imports_with_only_the_sdks_http_library() -> None:
    """As after `pip install tf-prompt` with openai 3: `httpx` absent unless the SDK uses it."""
    blocked = [] if _sdk_http_module() == "httpx" else ["httpx"]
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
        sys.meta_path.insert(0, Block())
        from tf_prompt.backends import openai_compat
        assert openai_compat.httpx is sys.modules[{_sdk_http_module()!r}], openai_compat.httpx
        print(openai_compat._url_problem("http://127.0.0.1:8000/v1"))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    assert done.stdout.strip() == "None"


def test_a_missing_gguf_file_is_one_error_line_not_a_traceback(tmp_path: Path, capsys, monkeypatch) -> None:
    """`tf-prompt run --model gguf:PATH` with no file there: the ModelError the backend raises on
    its first call (for the cache key) ended as a traceback, in 8e59a60 as after the move."""
    from tf_prompt.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    missing = tmp_path / "nothing-here.gguf"
    code = main(["run", "--model", f"gguf:{missing}", "--method", "direct", "--limit", "1",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == f"tf-prompt: error: model file not found: {missing}"
