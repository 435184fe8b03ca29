"""The HTML report: error classes, a real run through the loopback server, escaping, speed, and
what headless Chromium actually shows (screenshot, filter from the URL fragment)."""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import tf_prompt
from conftest import require
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.report import (
    ErrorItem,
    ReportError,
    TokenSpan,
    add_report_parser,
    build_report,
    classify_errors,
    kind_counts,
)
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
CHROMIUM = Path("/usr/bin/chromium")
ROW_RE = re.compile(r'<section class="s" id="s(\d+)" data-k="([^"]*)"( hidden(?:="")?)?>')


def kinds(items: list[ErrorItem]) -> list[str]:
    return [it.kind for it in items]


# -- classify_errors ------------------------------------------------------------------------------

def test_correct_and_clean():
    items = classify_errors(["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"])
    assert kinds(items) == ["correct", "correct"]
    assert items[0] == ErrorItem("correct", TokenSpan(0, 2, "PER"), TokenSpan(0, 2, "PER"))
    assert classify_errors(["O", "O"], ["O", "O"]) == []


def test_missed_and_spurious():
    items = classify_errors(["B-PER", "O", "O"], ["O", "O", "B-LOC"])
    assert items == [ErrorItem("missed", gold=TokenSpan(0, 1, "PER")),
                     ErrorItem("spurious", pred=TokenSpan(2, 3, "LOC"))]


def test_wrong_type_same_span():
    assert classify_errors(["B-PER", "I-PER"], ["B-ORG", "I-ORG"]) == [
        ErrorItem("wrong_type", TokenSpan(0, 2, "PER"), TokenSpan(0, 2, "ORG"))]


def test_wrong_boundary_same_type():
    assert kinds(classify_errors(["B-ORG", "I-ORG", "I-ORG"], ["B-ORG", "I-ORG", "O"])) == ["wrong_boundary"]
    assert kinds(classify_errors(["O", "B-LOC", "O"], ["B-LOC", "I-LOC", "I-LOC"])) == ["wrong_boundary"]


def test_boundary_and_type_both_count():
    """The documented rule: different span and different type is both errors, for one pair."""
    items = classify_errors(["B-LOC", "B-DATE", "I-DATE"], ["B-LOC", "I-LOC", "O"])
    assert sorted(kinds(items)) == ["wrong_boundary", "wrong_boundary", "wrong_type"]
    pair = [it for it in items if it.gold == TokenSpan(1, 3, "DATE")]
    assert sorted(kinds(pair)) == ["wrong_boundary", "wrong_type"]
    assert all(it.pred == TokenSpan(0, 2, "LOC") for it in pair)


def test_split_entity_gives_one_boundary_error_per_piece():
    items = classify_errors(["B-LOC", "I-LOC", "I-LOC"], ["B-LOC", "O", "B-LOC"])
    assert kinds(items) == ["wrong_boundary", "wrong_boundary"]
    assert "missed" not in kinds(items)


def test_adjacent_entities_and_lenient_i_tags():
    # B-PER B-PER are two entities; a stray I- starts one (seqeval's default, like the scorer).
    items = classify_errors(["B-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "O", "B-LOC"])
    assert sorted(kinds(items)) == ["correct", "wrong_boundary", "wrong_boundary"]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="1 gold tags but 2 predicted"):
        classify_errors(["O"], ["O", "O"])


# -- a real run through the loopback server -------------------------------------------------------

def _fuse_source(user: str) -> str | None:
    """The source sentence of a fuse prompt (the line before 'English translation:')."""
    lines = user.splitlines()
    marks = [k for k, ln in enumerate(lines) if ln.startswith("English translation:")]
    if not marks:
        return None
    line = lines[marks[-1] - 1]
    return line.split(": ", 1)[1] if ": " in line else line


def scripted_responder(sentences: list[Any], overrides: dict[str, str]) -> Any:
    """The oracle, except fuse replies for the sentences in `overrides` (by source text)."""
    oracle = oracle_responder(sentences, LABELS)

    def respond(body: dict[str, Any]) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        source = _fuse_source(user)
        if source in overrides:
            return overrides[source]
        return oracle(body)

    return respond


def ents(*pairs: tuple[str, str]) -> str:
    return json.dumps({"entities": [{"text": t, "type": y} for t, y in pairs]})


SAMPLE_OVERRIDES = {
    # gold: Amina Juma PER, Mombasa LOC, Jumatatu asubuhi DATE
    "Amina Juma alifika Mombasa Jumatatu asubuhi .":
        ents(("Amina Juma", "PER"), ("Mombasa", "ORG"), ("Paris", "LOC")),    # ok, wrong type, missed, halluc.
    "Benki Kuu ya Tanzania imetangaza riba mpya .": ents(("Benki Kuu", "ORG")),  # wrong boundary
    "Wakulima wa Arusha wanasubiri mvua mwezi Aprili .":
        ents(("Arusha", "LOC"), ("mvua", "LOC"), ("mwezi Aprili", "DATE")),    # spurious
    "Bei ya mafuta imepanda tena .": "I cannot help with that.",               # parse failure
}


@pytest.fixture
def sample_run(tmp_path: Path) -> Path:
    sentences = read_conll(sample_path())
    out = tmp_path / "run"
    with LoopbackServer(scripted_responder(sentences, SAMPLE_OVERRIDES)) as srv:
        # the scripted mistakes must reach the report as made: no combination, no checks
        tf_prompt.run_dataset(model="m", base_url=srv.base_url, method="transfusion", combine="none", checks=False,
                              out=str(out))
    return out


def test_report_of_a_sample_run(sample_run: Path):
    path = build_report(sample_run)
    assert path == sample_run / "report.html"
    page = path.read_text(encoding="utf-8")
    rows = {int(m.group(1)): set(m.group(2).split()) for m in ROW_RE.finditer(page)}
    assert sorted(rows) == list(range(12))
    shown = [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r'<div class="src">(.*?)</div>', page)]
    assert shown == [s.text for s in read_conll(sample_path())]   # every sentence, in order, verbatim
    assert rows[0] >= {"correct", "wrong_type", "missed", "hallucinated"}
    assert "wrong_boundary" in rows[1] and "correct" not in rows[1]
    assert "spurious" in rows[2]
    assert rows[4] == {"parse_failure"}
    assert rows[3] == {"correct", "clean"}
    assert kind_counts(sample_run) == {"correct": 10, "missed": 1, "wrong_type": 1, "wrong_boundary": 1,
                                       "spurious": 1, "hallucinated": 1, "parse_failure": 1, "clean": 8}
    # Filter bar: entity counts and sentence counts.
    assert 'data-kind="correct">21 in 10<' in page
    assert 'data-kind="clean">8<' in page
    assert "Paris" in page and "I cannot help with that." in page
    assert "<details>" in page and "fuse.v1@" in page
    assert "<link" not in page and not re.search(r"(src|href)=", page)  # nothing fetched


def test_report_escapes_untrusted_text(tmp_path: Path):
    data = tmp_path / "evil.conll"
    data.write_text("Amina B-PER\n<script>alert(1)</script> O\nalifika O\n\"><img O\nMombasa B-LOC\n\n"
                    "Bei O\nya O\n\n", encoding="utf-8")
    sentences = read_conll(data)
    evil = "<script>alert(1)</script> Amina"
    overrides = {sentences[1].text: f"<b>bold</b> {evil} </details></section>"}
    with LoopbackServer(scripted_responder(sentences, overrides)) as srv:
        tf_prompt.run_dataset(model="m</title><script>x()</script>", base_url=srv.base_url,
                              method="transfusion", data=str(data), out=str(tmp_path / "run"))
    page = build_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page and "<script>x()" not in page
    assert "<img" not in page and "<b>bold" not in page
    assert page.count("<script>") == 1  # ours
    assert page.count("<section") == page.count("</section>") == 2


def test_cli_parser_and_errors(sample_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "x" / "r.html"
    args = parser.parse_args(["report", str(sample_run), "--out", str(out)])
    assert args.func(args) == 0 and out.is_file()
    args = parser.parse_args(["report", str(tmp_path / "nope")])
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError, match=r"trace\.jsonl"):
        build_report(empty)
    (empty / "trace.jsonl").write_text('{"index": 0, "source": "a"}\nnot json\n{"index": 2, "source": "b"}\n')
    with pytest.raises(ReportError, match=r"trace\.jsonl:2:"):
        build_report(empty)


def test_interrupted_run_is_still_reported(sample_run: Path):
    """No metrics.json / predictions.conll, and a torn last line, as after a kill -9."""
    (sample_run / "metrics.json").unlink()
    (sample_run / "predictions.conll").unlink()
    trace = sample_run / "trace.jsonl"
    text = trace.read_text(encoding="utf-8")
    trace.write_text(text[: len(text) - 40], encoding="utf-8")
    page = build_report(sample_run).read_text(encoding="utf-8")
    assert len(ROW_RE.findall(page)) == 11
    assert "incomplete and was skipped" in page and "metrics.json is missing" in page
    assert "F1" in page


# -- performance ----------------------------------------------------------------------------------

def synthetic_run(folder: Path, n: int = 2000, seed: int = 0) -> Path:
    """A run folder of n random sentences with entities, errors, replies: as a real run writes it."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = [f"w{i}" for i in range(300)] + ["Nairobi", "Amina", "Kano", "Ọ̀yọ́", "<tag>", "&amp;"]
    traces, conll = [], []
    for i in range(n):
        tokens = [rnd.choice(words) for _ in range(rnd.randint(8, 30))]
        gold, pred = [], []
        for _ in tokens:
            g = rnd.choice(["O"] * 6 + ["B-PER", "B-LOC", "I-LOC", "B-ORG", "B-DATE", "I-DATE"])
            gold.append(g)
            pred.append(g if rnd.random() < 0.8 else rnd.choice(["O", "B-PER", "B-LOC", "I-LOC"]))
        source = " ".join(tokens)
        entities = [{"text": t, "type": "LOC"} for t in tokens[:2]]
        traces.append({
            "index": i, "source": source, "translation": "English " + source,
            "english_entities": entities,
            "replies": {"translate": "English " + source, "annotate": json.dumps({"entities": entities}),
                        "fuse": json.dumps({"entities": entities})},
            "templates": {"translate": "translate.v1@a33bcffe3787", "fuse": "fuse.v1@be68e38c11c6"},
            "parse_failures": {"fuse": "no entity list found"} if i % 97 == 0 else {},
            "errors": {}, "parsed": entities, "unknown_labels": [], "spans": [],
            "hallucinated": [{"text": "Paris", "type": "LOC"}] if i % 50 == 0 else [],
            "unaligned": [], "gold": gold, "predicted": pred, "failed": False})
        conll.append("".join(f"{t} {g} {p}\n" for t, g, p in zip(tokens, gold, pred, strict=True)) + "\n")
    with (folder / "trace.jsonl").open("w", encoding="utf-8") as fh:
        for t in traces:
            fh.write(json.dumps(t, ensure_ascii=False) + "\n")
    (folder / "predictions.conll").write_text("".join(conll), encoding="utf-8")
    metrics = {"f1": 0.8, "precision": 0.8, "recall": 0.8, "support": 9000, "n_sentences": n,
               "per_type": {k: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 100} for k in LABELS},
               "parse_failures": 21, "hallucinated": 40, "unaligned": 0, "failed_sentences": 0, "complete": True,
               "usage": {"calls": 3 * n, "cache_hits": 0, "prompt_tokens": 1, "completion_tokens": 1,
                         "cost_usd": 1.25},
               "settings": {"model": "gpt-4o", "method": "transfusion", "labels": LABELS, "templates": {}}}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def test_two_thousand_sentences_are_fast_and_light(tmp_path: Path):
    run = synthetic_run(tmp_path / "big")
    start = time.process_time()
    path = build_report(run)
    cpu = time.process_time() - start
    size = path.stat().st_size
    assert cpu < 3.0, f"report took {cpu:.2f}s CPU"
    assert size < 5_000_000, f"report is {size / 1e6:.1f} MB"
    assert len(ROW_RE.findall(path.read_text(encoding="utf-8"))) == 2000


# -- what a browser shows -------------------------------------------------------------------------

def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=60)


@pytest.fixture
def _chromium() -> None:
    """Headless Chromium is optional locally; in CI (which installs it) its absence fails."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")


needs_chromium = pytest.mark.usefixtures("_chromium")


@needs_chromium
def test_screenshot_is_not_blank(sample_run: Path, tmp_path: Path):
    report = build_report(sample_run)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((160, 200)).getcolors(maxcolors=100_000)
    assert img.size == (1280, 1600)
    assert colours is not None and len(colours) > 50  # text, highlights, badges: not one flat colour


@needs_chromium
@pytest.mark.parametrize("fragment,kind", [("filter=missed", "missed"), ("filter=wrong_boundary", "wrong_boundary"),
                                           ("filter=clean", "clean")])
def test_fragment_filter_hides_other_rows(sample_run: Path, tmp_path: Path, fragment: str, kind: str):
    report = build_report(sample_run)
    proc = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#{fragment}")
    rows = ROW_RE.findall(proc.stdout)
    assert len(rows) == 12, proc.stderr[-2000:]
    visible = [int(i) for i, k, hidden in rows if not hidden]
    assert visible and all(kind in k.split() for i, k, hidden in rows if not hidden)
    assert all(hidden for i, k, hidden in rows if kind not in k.split())
    assert f"showing {len(visible)} of 12" in proc.stdout


SECTION_RE = re.compile(r'<section class="s" id="s(\d+)"[^>]*>(.*?)</section>', re.S)


def section_texts(dom: str) -> dict[int, str]:
    """Each row's text as the page's search sees it (textContent, lowercased)."""
    return {int(i): html.unescape(re.sub(r"<[^>]+>", "", body)).lower() for i, body in SECTION_RE.findall(dom)}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@needs_chromium
def test_search_fragment_and_big_report_load(tmp_path: Path):
    """A 2,000-sentence page loads and filters (search + kind) in bounded CPU time, showing
    exactly the rows of that kind whose text contains the term."""
    run = synthetic_run(tmp_path / "big")
    report = build_report(run)
    traces = [json.loads(ln) for ln in (run / "trace.jsonl").read_text(encoding="utf-8").splitlines()]
    failing = [t for t in traces if t["parse_failures"]]
    # a word of some parse-failure rows but not all, also found in other rows (w100..w299 are not
    # substrings of one another): the search and the kind filter must both act
    counts = {w: sum(w in t["source"].split() for t in failing) for w in (f"w{k}" for k in range(100, 300))}
    term = max((w for w in counts if 0 < counts[w] < len(failing)), key=lambda w: counts[w])
    assert any(term in t["source"].split() for t in traces if not t["parse_failures"])
    cpu = children_cpu()
    proc = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#filter=parse_failure&q={term.upper()}")
    cpu = children_cpu() - cpu
    assert cpu < 15, f"chromium used {cpu:.1f} s CPU"   # ~1 s when idle; CPU, not wall time
    rows = ROW_RE.findall(proc.stdout)
    assert len(rows) == 2000, proc.stderr[-2000:]
    texts = section_texts(proc.stdout)
    expected = {int(i) for i, k, _ in rows if "parse_failure" in k.split() and term in texts[int(i)]}
    visible = {int(i) for i, _, hidden in rows if not hidden}
    assert visible == expected and 0 < len(expected) < len(failing), (sorted(visible), sorted(expected))
    assert f"showing {len(expected)} of 2000" in proc.stdout


@needs_chromium
def test_typing_in_the_search_box_filters_and_updates_the_address(sample_run: Path, tmp_path: Path):
    """The search box itself: typing (an input event) filters the rows after its short debounce and
    writes the term into the URL fragment, so a filtered view can be shared."""
    report = build_report(sample_run)
    page = report.read_text(encoding="utf-8")
    term = "Kano"
    typed = (f"<script>(function(){{var q=document.getElementById('q');q.value={json.dumps(term)};"
             "q.dispatchEvent(new Event('input'));"
             "setTimeout(function(){document.body.setAttribute('data-hash',location.hash)},1000)})();</script>")
    driven = tmp_path / "typed.html"
    driven.write_text(page.replace("</body>", typed + "</body>"), encoding="utf-8")
    proc = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", driven.as_uri())
    rows = ROW_RE.findall(proc.stdout)
    assert len(rows) == 12, proc.stderr[-2000:]
    texts = section_texts(proc.stdout)
    expected = {i for i, text in texts.items() if term.lower() in text}
    visible = {int(i) for i, _, hidden in rows if not hidden}
    assert visible == expected and 0 < len(expected) < 12, (sorted(visible), sorted(expected))
    assert f"showing {len(expected)} of 12" in proc.stdout
    assert f'data-hash="#q={term}"' in proc.stdout
