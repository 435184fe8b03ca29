"""The import rules of the package, checked on its source: no import cycles, dependencies point down,
and the low layers load without the heavy libraries.

Imports are read with :mod:`ast`, so a function-level import counts as much as a top-level one
(it is a dependency all the same, only a later one); imports under ``if TYPE_CHECKING:`` do not
count (they never run). A rule broken by code that is still being moved is listed in ALLOWED with
the reason: the list is meant to shrink to nothing, and an entry that no longer applies fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import tf_prompt

PACKAGE_DIR = Path(tf_prompt.__file__).resolve().parent

#: Import edges (importer, imported) that break a rule today and are tolerated until their owner
#: moves the code. Each entry says why it is there; remove it with the fix.
ALLOWED: dict[tuple[str, str], str] = {}

#: Everything above the NER core: orchestration, models, the command line.
UPPER = ("llm", "backends", "methods", "prompting", "components", "runs", "experiments", "finetune", "cli", "api",
         "batch_api", "settings", "testing")
#: What a model backend must not know about: it only sends chat messages to a model.
NER = ("data", "parsing", "spans", "methods", "prompting", "scoring")
#: (who, what it must never load, why)
Layer = tuple[tuple[str, ...], tuple[str, ...], str]
LAYERS: list[Layer] = [
    (("types",), ("",), "the shared types import nothing of the package"),
    (("data", "parsing", "spans", "scoring", "util"), UPPER, "the NER core does not depend on what drives it"),
    (("backends",), NER, "a backend knows nothing about NER"),
]
HEAVY = ("openai", "tiktoken", "matplotlib", "sklearn", "seqeval")


# --------------------------------------------------------------------------- reading the imports


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not `.__init__`)."""
    names: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except in `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _import_nodes_of(stmt)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _import_nodes(node)


def import_graph(package_dir: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package modules it imports (the module itself, or the nearest package that
    exists when a name is an attribute: `from tf_prompt.parsing import parse_entities` is an edge
    to `tf_prompt.parsing`)."""
    modules = module_names(package_dir, package)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                candidates = [f"{source}.{alias.name}" for alias in node.names]
            for candidate in candidates:
                if candidate == package or candidate.startswith(package + "."):
                    target = owner(candidate)
                    if target is not None and target != name:
                        targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(module: str, package: str, areas: Iterable[str]) -> bool:
    """True when `module` is one of the `areas` (sub-packages or modules; "" is the whole package)."""
    for area in areas:
        prefix = f"{package}.{area}" if area else package
        if module == prefix or module.startswith(prefix + "."):
            return True
    return False


def layer_violations(graph: dict[str, set[str]], package: str, layers: list[Layer]) -> list[str]:
    """For each rule, the forbidden modules a module reaches, directly or through others, with the path."""
    problems = []
    for sources, forbidden, why in layers:
        for start in sorted(m for m in graph if _in(m, package, sources)):
            came_from: dict[str, str | None] = {start: None}
            queue = [start]
            while queue:
                current = queue.pop(0)
                for nxt in sorted(graph.get(current, ())):
                    if nxt in came_from:
                        continue
                    came_from[nxt] = current
                    if _in(nxt, package, forbidden) and not _in(nxt, package, sources):
                        path = [nxt]
                        step = current
                        while step is not None:
                            path.append(step)
                            step = came_from[step]
                        problems.append(f"{' -> '.join(reversed(path))} ({why})")
                    else:
                        queue.append(nxt)
    return problems


def tolerated(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the ALLOWED edges."""
    return {m: {t for t in targets if (m, t) not in ALLOWED} for m, targets in graph.items()}


# --------------------------------------------------------------------------- the rules


def test_no_import_cycles() -> None:
    found = cycles(tolerated(import_graph(PACKAGE_DIR, "tf_prompt")))
    assert not found, "import cycles (each group imports itself through the others):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_dependencies_point_down() -> None:
    problems = layer_violations(tolerated(import_graph(PACKAGE_DIR, "tf_prompt")), "tf_prompt", LAYERS)
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_allowed_edges_still_exist() -> None:
    """An ALLOWED entry whose import is gone must be removed, so the list only ever shrinks."""
    graph = import_graph(PACKAGE_DIR, "tf_prompt")
    stale = [f"{a} -> {b}" for a, b in ALLOWED if b not in graph.get(a, set())]
    assert not stale, "ALLOWED lists imports that no longer exist: " + ", ".join(stale)


_BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {heavy!r}:
                raise ImportError(f"{{name}} is blocked: this import must not need it")
            return None

    sys.meta_path.insert(0, Blocked())
""")


@pytest.mark.parametrize("module, use", [
    ("tf_prompt.spans.align", "m.locate('Shehu ya je Kano', [])"),
    ("tf_prompt.parsing", "m.parse_entities('{\"entities\": [{\"text\": \"Kano\", \"type\": \"LOC\"}]}', ['LOC'])"),
])
def test_low_layers_load_without_heavy_libraries(module: str, use: str) -> None:
    code = _BLOCKER.format(heavy=set(HEAVY)) + f"import importlib\nm = importlib.import_module({module!r})\n{use}\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------- the checker itself


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_checker_sees_function_level_and_relative_imports_but_not_type_checking(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.top import Thing
            def f():
                from ..top import g
        """,
        "top.py": "from pkg.core import a\n",
        "other.py": "import pkg.core.a as a\nfrom . import top\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.core.a"] == {"pkg.top"}
    assert graph["pkg.top"] == {"pkg.core.a"}
    assert graph["pkg.other"] == {"pkg.core.a", "pkg.top"}
    assert cycles(graph) == [["pkg.core.a", "pkg.top"]]
    problems = layer_violations(graph, "pkg", [(("core",), ("top",), "core is below top")])
    assert problems == ["pkg.core.a -> pkg.top (core is below top)"]


def test_checker_finds_an_indirect_layer_violation(tmp_path: Path) -> None:
    root = _package(tmp_path, {"low.py": "import pkg.mid\n", "mid.py": "import pkg.high\n", "high.py": ""})
    graph = import_graph(root, "pkg")
    assert cycles(graph) == []
    assert layer_violations(graph, "pkg", [(("low",), ("high",), "why")]) == ["pkg.low -> pkg.mid -> pkg.high (why)"]
    assert layer_violations(graph, "pkg", [(("low",), ("",), "nothing")]) == ["pkg.low -> pkg.mid (nothing)"]


def test_blocker_does_block() -> None:
    code = _BLOCKER.format(heavy=set(HEAVY)) + "import json\nimport seqeval\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "seqeval is blocked" in done.stderr
