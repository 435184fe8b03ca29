"""The report page is an autoescaped template: hostile text from any part of a run folder (the
sentence, replies, labels, settings, step names, messages) reaches the page as text, never as
markup, and odd Unicode survives as written."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

from tf_prompt.experiments.report import build_report

HOSTILE = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "'; alert(3); '", "</pre></details>",
           "{{ 70717*3 }}{% raw %}", "&amp;lt;", "a\u2028b\u202ec\u0301\U0001F600"]


class _Page(HTMLParser):
    """Tags, attribute values and text of a page, as a browser's parser splits them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [f"{k}={v}" for k, v in attrs]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _hostile_run(folder: Path) -> Path:
    """A run folder whose every free-text field holds hostile strings."""
    folder.mkdir()
    tokens = ["Amina", "<script>alert(1)</script>", "\"><img", "a\u2028b\u202ec\u0301\U0001F600"]
    evil = " | ".join(HOSTILE)
    label = "<b>LOC</b>"
    trace = {"index": 0, "source": " ".join(tokens), "translation": evil,
             "english_entities": [{"text": evil, "type": label}],
             "replies": {f"step{evil}": evil}, "templates": {f"step{evil}": evil},
             "parse_failures": {evil: evil}, "errors": {evil: evil},
             "hallucinated": [{"text": evil, "type": evil}], "unaligned": [], "unknown_labels": [],
             "gold": ["B-PER", "O", f"B-{label}", "O"], "predicted": ["B-PER", f"B-{label}", "O", "O"],
             "failed": False}
    (folder / "trace.jsonl").write_text(json.dumps(trace, ensure_ascii=False) + "\n", encoding="utf-8")
    metrics = {"f1": 0.5, "precision": 0.5, "recall": 0.5, "support": 2, "n_sentences": 1,
               "per_type": {label: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}},
               "settings": {"model": evil, "method": evil, "data": evil, "labels": ["PER", label],
                            "templates": {evil: evil}, "shots": evil},
               "usage": {"calls": evil, "cache_hits": 0, "prompt_tokens": 1, "completion_tokens": 1,
                         "cost_usd": None}}
    (folder / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False), encoding="utf-8")
    return folder


def test_hostile_text_stays_text(tmp_path: Path) -> None:
    page = build_report(_hostile_run(tmp_path / "run")).read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    # markup: only the page's own elements, one script (ours, verbatim), no handler attribute
    assert set(parsed.tags) <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "div",
                                "dl", "dt", "dd", "span", "b", "i", "table", "tr", "th", "td", "label", "input",
                                "button", "main", "section", "details", "summary", "small", "pre", "br", "script"}
    assert parsed.tags.count("script") == 1 and "img" not in parsed.tags
    js = resources.files("tf_prompt.experiments.report").joinpath("report.js").read_text(encoding="utf-8")
    assert parsed.scripts == [js]
    assert not any(a.split("=", 1)[0].startswith("on") for a in parsed.attrs)
    # text: every hostile string comes through whole, as written (template syntax not evaluated)
    text = "".join(parsed.text)
    for s in HOSTILE:
        assert s in text, s
    # 212151: what the template expression would have given (distinct from any date, path or figure)
    assert "212151" not in text and "{{ 70717*3 }}" in text
    assert "<b>LOC</b>" in text and "a\u2028b\u202ec\u0301\U0001F600" in text


def test_template_files_are_package_data() -> None:
    """The page's template, styles and script ship inside the package (pyproject package-data)."""
    files = resources.files("tf_prompt.experiments.report")
    for name in ("report.html.jinja", "report.css", "report.js"):
        assert files.joinpath(name).is_file(), name
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"tf_prompt.experiments.report" = ["*.jinja", "*.css", "*.js"]' in pyproject
