"""Start-up: the command line and the low layers do not import the openai SDK (about 0.4 s) or
other heavy libraries until a command needs them; the package's public names still import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("openai", "httpx", "tiktoken", "matplotlib", "sklearn", "scipy", "torch", "transformers")


def _loaded(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_help_imports_no_heavy_library() -> None:
    loaded = _loaded("from tf_prompt.cli import build_parser\nbuild_parser().format_help()\n"
                     "import contextlib, io\nfrom tf_prompt.cli import main\n"
                     "with contextlib.redirect_stdout(io.StringIO()):\n"
                     "    try:\n        main(['run', '--help'])\n    except SystemExit:\n        pass")
    assert loaded == set(), loaded


def test_low_layers_import_alone() -> None:
    modules = "tf_prompt.spans.align, tf_prompt.data.conll, tf_prompt.parsing, tf_prompt.scoring.evaluate"
    assert _loaded(f"import {modules}") == set()


def test_public_names_import_on_first_use() -> None:
    import tf_prompt

    assert {"extract", "run_dataset", "RunSettings", "run_via_batch"} <= set(dir(tf_prompt))
    from tf_prompt import Entity, RunSettings, extract, run_async, run_dataset, run_dataset_via_batch, run_via_batch

    assert callable(extract) and callable(run_dataset) and RunSettings(method="direct").method == "direct"
    assert all(callable(f) for f in (run_async, run_via_batch, run_dataset_via_batch)) and Entity
    try:
        tf_prompt.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
