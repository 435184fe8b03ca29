"""Which template a prompt was rendered from, and the sentence data in it, read off the templates
themselves: the test oracle's step recognition.

Every template the registered methods declare (methods/registry.py) is parsed with the same Jinja
settings as TemplateSet, and its `user` block becomes a pattern: the literal text outside loops
and conditions is fixed (every rendering contains it, in that order), a variable matches any text
on its line, and a loop or condition matches anything. The per-sentence variables (each step's
`item_vars`, e.g. `text`) are captured, decoded when the template wrote them through `| json` or
`| pystr`. A numbered batch template's `items` loop is read item by item with the pattern of its
body. When several templates match, the one with the most fixed text wins.

So a reworded template, a new step or a new method's template is recognised without copying any
of its wording here; only its reply format (what the oracle answers) comes from the declaration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import nodes

from tf_prompt.methods.base import ReplyFormat
from tf_prompt.methods.registry import all_steps, reply_formats
from tf_prompt.prompting.templates import TemplateSet, packaged_prompts_dir

_NAME = re.compile(r"^(?P<name>[a-z0-9_\-]+)(?:\.v\d+)?\.jinja$")
_JSON_FILTERS = ("json", "pystr")
_ANY_LINE = r"[^\n]*?"
_ANYTHING = r"(?s:.*?)"


@dataclass(frozen=True)
class Shape:
    """The pattern of one template file's user message."""

    template: str                  # the template name a step declares ("direct", "batch_fuse")
    path: Path
    reply: ReplyFormat
    numbered: bool                 # a batch template: the sentences are `items`
    pattern: re.Pattern[str]
    loose: re.Pattern[str]         # the pattern with the inner whole lines of fixed text free
    lines: frozenset[str]          # those lines
    fixed: int                     # characters of fixed text: the more, the more specific
    decode: frozenset[str]         # captured variables written as JSON (| json, | pystr)
    item: re.Pattern[str] | None   # one item of the `items` loop (numbered templates)
    item_decode: frozenset[str]


@dataclass(frozen=True)
class Recognised:
    """A prompt's template and the sentence data it holds: `values` (one-sentence templates) or
    `items` (numbered ones, each with its number `n`)."""

    shape: Shape
    values: dict[str, Any]
    items: list[dict[str, Any]]


def _variable(node: nodes.Node) -> tuple[str | None, bool]:
    """(name, written as JSON) of `{{ text }}`, `{{ item.text }}`, `{{ text | pystr }}`; None for
    any other expression (`language or "source"`, `items | length`)."""
    json_filtered = False
    while isinstance(node, nodes.Filter) and node.node is not None:
        json_filtered = json_filtered or node.name in _JSON_FILTERS
        node = node.node
    if isinstance(node, nodes.Name):
        return node.name, json_filtered
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name == "item":
        return node.attr, json_filtered
    return None, json_filtered


class _Builder:
    """Turns a list of template nodes into regex pieces, capturing the wanted variables once."""

    def __init__(self, capture: set[str], *, item_loop: bool = False):
        self.capture = capture
        self.item_loop = item_loop
        self.pieces: list[tuple[str, str]] = []    # (kind, regex or literal): "lit" | "re"
        self.decode: set[str] = set()
        self.captured: set[str] = set()
        self.items_body: list[nodes.Node] | None = None

    def add(self, body: Iterable[nodes.Node]) -> None:
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        self.pieces.append(("lit", child.data))
                    else:
                        self.pieces.append(("re", self._expression(child)))
            elif isinstance(node, (nodes.Assign, nodes.AssignBlock)):
                continue   # renders nothing
            elif (isinstance(node, nodes.For) and isinstance(node.iter, nodes.Name) and node.iter.name == "items"
                  and self.items_body is None and not self.item_loop):
                self.items_body = list(node.body)
                self.pieces.append(("re", f"(?P<items>{_ANYTHING})"))
            else:   # a loop or a condition: its text depends on the data
                self.pieces.append(("re", _ANYTHING))

    def _expression(self, node: nodes.Node) -> str:
        name, json_filtered = _variable(node)
        if self.item_loop and name == "n":
            return r"(?P<n>\d+)"
        if name in self.capture and name not in self.captured:
            self.captured.add(name)
            if json_filtered:
                self.decode.add(name)
            return f"(?P<{name}>{_ANY_LINE})"
        return _ANY_LINE

    def regex(self, *, strip: bool, loose: bool = False) -> tuple[str, int]:
        """The pattern and its fixed characters; `strip`: the rendered block is .strip()ped.
        `loose`: the whole lines of fixed text between variables may read otherwise (only the
        text on a variable's own line stays fixed): a copy of a template with edited wording."""
        pieces = list(self.pieces)
        if strip:
            while pieces and pieces[0][0] == "lit" and not pieces[0][1].strip():
                pieces.pop(0)
            while pieces and pieces[-1][0] == "lit" and not pieces[-1][1].strip():
                pieces.pop()
            if pieces and pieces[0][0] == "lit":
                pieces[0] = ("lit", pieces[0][1].lstrip())
            if pieces and pieces[-1][0] == "lit":
                pieces[-1] = ("lit", pieces[-1][1].rstrip())
        fixed = sum(len(text) for kind, text in pieces if kind == "lit")
        return "".join((_loose(text) if loose else re.escape(text)) if kind == "lit" else text
                       for kind, text in pieces), fixed

    def lines(self) -> frozenset[str]:
        """The whole lines of fixed text (the loose match is ranked by how many a prompt has)."""
        out: set[str] = set()
        for kind, text in self.pieces:
            if kind == "lit":
                out.update(line.strip() for line in text.split("\n")[1:-1] if line.strip())
        return frozenset(out)


def _loose(literal: str) -> str:
    """`literal` with its inner whole lines as "anything": its first and last line fragments sit
    on a variable's line (or the prompt's edge) and stay as written."""
    lines = literal.split("\n")
    if len(lines) <= 2:
        return re.escape(literal)
    return re.escape(lines[0] + "\n") + _ANYTHING + re.escape("\n" + lines[-1])


def _shape(path: Path, template: str, reply: ReplyFormat, numbered: bool, capture: set[str],
           env: Any) -> Shape | None:
    ast = env.parse(path.read_text(encoding="utf-8"))
    block = next((b for b in ast.find_all(nodes.Block) if b.name == "user"), None)
    if block is None:
        return None
    top = _Builder(capture)
    top.add(block.body)
    regex, fixed = top.regex(strip=True)
    loose, _ = top.regex(strip=True, loose=True)
    item = None
    item_decode: frozenset[str] = frozenset()
    if numbered and top.items_body is not None:
        body = _Builder(capture, item_loop=True)
        body.add(top.items_body)
        item_regex, item_fixed = body.regex(strip=False)
        item, item_decode, fixed = re.compile(item_regex), frozenset(body.decode), fixed + item_fixed
    return Shape(template, path, reply, numbered, re.compile(rf"\A\s*{regex}\s*\Z"),
                 re.compile(rf"\A\s*{loose}\s*\Z"), top.lines(), fixed, frozenset(top.decode), item, item_decode)


def _files(dirs: Sequence[Path]) -> Iterable[tuple[str, Path]]:
    for d in dirs:
        for path in sorted(d.rglob("*.jinja")):
            m = _NAME.match(path.name)
            if m:
                yield m.group("name"), path


def shapes(prompts: str | Path | None = None) -> list[Shape]:
    """The shapes of every template file (all versions, the packaged variants, and `prompts`, a
    --prompts folder, if given) of a template some registered method declares."""
    formats = reply_formats()
    capture = {var for step in all_steps() for var in step.item_vars}
    env = TemplateSet().env
    dirs = [Path(prompts)] if prompts is not None and Path(prompts).is_dir() else []
    out = []
    for name, path in _files([*dirs, packaged_prompts_dir()]):
        if name in formats:
            reply, numbered = formats[name]
            shape = _shape(path, name, reply, numbered, capture, env)
            if shape is not None:
                out.append(shape)
    return out


def _decoded(values: dict[str, Any], decode: frozenset[str]) -> dict[str, Any]:
    return {k: (json.loads(v) if k in decode and v is not None else v) for k, v in values.items()}


def recognise(user: str, known: Sequence[Shape]) -> Recognised:
    """The template `user` (a prompt's user message) was rendered from; a KeyError if none, or
    if two templates of different reply formats fit it equally well.

    A template whose whole pattern fits wins (the one with the most fixed text). Failing that, a
    prompt from an edited copy of a template (a --prompts folder the caller did not name) is
    recognised by the loose patterns, ranked by how many of each template's lines it contains."""
    found = [(shape, m, shape.fixed) for shape in known if (m := shape.pattern.match(user))]
    if not found:
        present = {line.strip() for line in user.split("\n")}
        found = [(shape, m, sum(len(line) for line in shape.lines & present))
                 for shape in known if (m := shape.loose.match(user))]
    if not found:
        raise KeyError(f"no known template fits the prompt {user[:80]!r}")
    best = max(score for _, _, score in found)
    top = [(s, m) for s, m, score in found if score == best]
    if len({(s.reply, s.numbered) for s, _ in top}) > 1:
        raise KeyError(f"the prompt fits several templates equally: {', '.join(str(s.path) for s, _ in top)}")
    shape, m = top[0]
    values = _decoded({k: v for k, v in m.groupdict().items() if k != "items"}, shape.decode)
    items: list[dict[str, Any]] = []
    if shape.numbered and shape.item is not None and m.group("items") is not None:
        items = [_decoded(im.groupdict(), shape.item_decode) for im in shape.item.finditer(m.group("items"))]
    return Recognised(shape, values, items)
