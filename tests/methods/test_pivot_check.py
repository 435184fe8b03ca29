"""--pivot-check: transfusion turns down a translation that echoes the source or is not English,
answers that sentence with the direct view and pays no annotate or fuse call for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from tf_prompt.api import estimate, run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.methods.pivot_check import pivot_problem
from tf_prompt.runs.rundir import differences, identity_of
from tf_prompt.settings import RunSettings
from tf_prompt.testing import english_translation, oracle_responder
from tf_prompt.testing.recognise import recognise, shapes

LABELS = ["PER", "ORG", "LOC", "DATE"]
HAUSA = "Shugaba Muhammadu Buhari ya isa birnin Kano ranar Litinin domin kaddamar da ayyuka ."


def test_an_echo_is_turned_down_and_a_translation_is_not() -> None:
    assert pivot_problem(HAUSA, HAUSA).startswith("echo: 13 of its 13 words")
    # case, punctuation and spacing do not hide an echo
    assert pivot_problem(HAUSA, "shugaba Muhammadu Buhari, ya isa birnin Kano ranar Litinin domin kaddamar da ayyuka")
    english = "President Muhammadu Buhari arrived in Kano on Monday to launch projects."
    assert pivot_problem(HAUSA, english) is None
    # an English translation of Nigerian Pidgin shares many words with it and still passes
    pidgin = "Police don arrest two men for Lagos after di robbery for Ikeja on Monday ."
    assert pivot_problem(pidgin, "Police have arrested two men in Lagos after the robbery in Ikeja on Monday.") is None
    assert pivot_problem(pidgin, pidgin) is not None


def test_an_echo_in_another_unicode_form_or_without_tone_marks_is_still_an_echo() -> None:
    """MasakhaNER's Yoruba is mostly NFD; a model may answer in NFC or drop the tone marks."""
    import unicodedata

    yoruba = unicodedata.normalize("NFD", "Iṣẹ́ akọ̀wé ni , ṣùgbọ́n mo fẹ̀yìntì ní ọdún 1986 .")
    nfc = unicodedata.normalize("NFC", yoruba)
    toneless = "".join(c for c in yoruba if not unicodedata.combining(c))
    for echo in (nfc, toneless, f'"{nfc}" This sentence appears to be a statement about the work and the year.'):
        why = pivot_problem(yoruba, echo)
        assert why is not None and why.startswith(("echo: 9 of its 9", "copy: it holds 9 of the source's 9")), why


def test_a_source_quoted_inside_english_comments_is_turned_down() -> None:
    """What the local 1.5B does on hau dev: quote the source, then talk about it in English."""
    quoted = (f'"{HAUSA}" This sentence appears to be a statement about a person named Shugaba, and '
              "it does not say much more than that about what happened in the city.")
    why = pivot_problem(HAUSA, quoted)
    assert why is not None and why.startswith("copy: it holds 13 of the source's 13 words in a row")
    # a translation that keeps a long name keeps a short run: it passes
    name = "Hukumar Kula da Ingancin Abinci da Magunguna ta Kasa ta rufe kamfanin ."
    assert pivot_problem(name, "The National Agency for Food and Drug Administration and Control "
                               "(Hukumar Kula da Ingancin Abinci) closed the company.") is None


def test_a_translation_in_another_language_is_turned_down() -> None:
    swahili = "Rais Muhammadu Buhari aliwasili Kano Jumatatu kuzindua miradi mipya ya serikali ."
    why = pivot_problem(HAUSA, swahili)
    assert why is not None and why.startswith("not English")
    # a short translation (a title, a list of names) is not judged on its function words
    assert pivot_problem("Labarai daga Kano", "News from Kano") is None
    assert pivot_problem("Buhari , Atiku , Obi", "Buhari, Atiku, Obi") is not None   # names only: an echo
    assert pivot_problem("Buhari , Atiku , Obi", "Buhari, Atiku and Obi") is None    # 3 of 4 words
    assert pivot_problem(HAUSA, " ... ") == "the translation has no words"


def _echoing(sentences: list[Any], echo: set[int]):
    """The oracle, translating sentences `echo` (by index) by repeating them."""
    return oracle_responder(sentences, LABELS,
                            translation=lambda s: s.text if s.index in echo else english_translation(s))


def _steps(server) -> list[str]:
    known = shapes(None)
    return [recognise([m["content"] for m in body["messages"] if m["role"] == "user"][-1], known).shape.template
            for body in server.requests]


@pytest.mark.parametrize("combine", ["none", None])
def test_echoed_sentences_get_the_direct_view_and_no_annotate_or_fuse(server, combine: str | None) -> None:
    sentences = read_conll(sample_path())
    echo = {0, 3, 7}
    server.responder = _echoing(sentences, echo)
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine=combine,
                          pivot_check=True)
    m = summary.metrics
    assert m["f1"] == pytest.approx(1.0) and m["pivot_skipped"] == len(echo)
    assert m["settings"]["pivot_check"] is True
    steps = _steps(server)
    n, k = len(sentences), len(echo)
    assert steps.count("translate") == n and steps.count("annotate") == steps.count("fuse") == n - k
    # without a combination rule the direct question is asked only for the turned-down sentences
    assert steps.count("direct") == (k if combine == "none" else n)
    for r in summary.results:
        if r.sentence.index in echo:
            assert r.trace.pivot_skipped and r.trace.pivot_skipped.startswith("echo: ")
            assert "annotate" not in r.trace.replies and "fuse" not in r.trace.replies
            assert "direct" in r.trace.replies
        else:
            assert r.trace.pivot_skipped is None and "fuse" in r.trace.replies


def test_an_unreadable_translation_gets_the_direct_view(server) -> None:
    sentences = read_conll(sample_path())[:3]
    oracle = oracle_responder(sentences, LABELS)
    known = shapes(None)

    def responder(body: dict[str, Any]) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        return "" if recognise(user, known).shape.template == "translate" else oracle(body)

    server.responder = responder
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine="none", limit=3,
                          pivot_check=True)
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["pivot_skipped"] == 3
    assert summary.metrics["parse_failures_by_step"] == {"translate": 3}
    assert sorted(set(_steps(server))) == ["direct", "translate"]
    assert {r.trace.pivot_skipped for r in summary.results} == {"no translation"}


def test_no_pivot_check_pivots_through_every_translation(server) -> None:
    sentences = read_conll(sample_path())
    server.responder = _echoing(sentences, set(range(len(sentences))))
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", combine="none",
                          pivot_check=False)
    assert summary.metrics["pivot_skipped"] == 0 and summary.metrics["settings"]["pivot_check"] is False
    assert sorted(set(_steps(server))) == ["annotate", "fuse", "translate"]
    assert len(server.requests) == 3 * len(sentences)


def test_gollie_tf_falls_back_to_the_gollie_direct_prompt(server) -> None:
    sentences = read_conll(sample_path())[:4]
    server.responder = _echoing(sentences, {1})
    summary = run_dataset(model="m", base_url=server.base_url, method="transfusion", style="gollie", limit=4,
                          pivot_check=True)
    assert summary.metrics["f1"] == pytest.approx(1.0) and summary.metrics["pivot_skipped"] == 1
    steps = _steps(server)
    assert steps.count("gollie_tf") == 3 and steps.count("gollie_direct") == 1


def test_estimate_counts_every_call_its_stand_in_translation_is_the_source(server) -> None:
    """A dry run's stand-in translation is the source itself: checking it would turn every
    sentence down. The estimate stays an upper bound: annotate and fuse counted for all."""
    est = estimate(model="gpt-4o-mini", base_url=server.base_url, method="transfusion", combine="none",
                   pivot_check=True)
    assert server.requests == []
    assert est["calls"] == 3 * est["n_sentences"] and est["by_step"]["fuse"]["calls"] == est["n_sentences"]


def test_the_default_checks_with_a_combination_rule_only() -> None:
    """As measured on hau dev: with the direct question asked anyway the check keeps F1 and saves
    calls; with --combine none (the paper's method) it cost F1, so it is off unless asked."""
    assert RunSettings(method="transfusion").pivot_check_on()
    assert RunSettings(method="transfusion", combine="vote").pivot_check_on()
    assert not RunSettings(method="transfusion", combine="none").pivot_check_on()
    assert RunSettings(method="transfusion", combine="none", pivot_check=True).pivot_check_on()
    assert not RunSettings(method="transfusion", pivot_check=False).pivot_check_on()
    assert RunSettings(method="transfusion", style="gollie", pivot_check=True).pivot_check_on()
    assert not RunSettings(method="transfusion", style="gollie").pivot_check_on()   # GoLLIE-TF: combine none
    for method in ("direct", "translate-test", "transfusion-1call"):
        assert not RunSettings(method=method).pivot_check_on()
        assert not RunSettings(method=method, pivot_check=True).pivot_check_on()


def test_only_methods_that_pivot_record_the_check_and_old_runs_read_as_unchecked() -> None:
    # a transfusion folder written before the check pivoted through everything: another run
    old = {"method": "transfusion", "model": "m"}
    assert differences(identity_of(old), identity_of({**old, "pivot_check": True}))
    assert not differences(identity_of(old), identity_of({**old, "pivot_check": False}))
    # a direct run records False (it never checks): its old folders continue
    assert not differences(identity_of({"method": "direct"}), identity_of({"method": "direct", "pivot_check": False}))


def test_cli_flag_and_the_report_show_it(server, tmp_path: Path, capsys) -> None:
    sentences = read_conll(sample_path())
    server.responder = _echoing(sentences, {2})
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
                           "--out", str(out))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pivot_skipped"] == 1 and metrics["settings"]["pivot_check"] is True
    traces = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [t["index"] for t in traces if t["pivot_skipped"]] == [2]
    code, _, err = run_cli(capsys, "report", str(out))
    assert code == 0, err
    page = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert "pivot skipped" in page and "answered with the direct view" in page
    # the same folder with --no-pivot-check is another run: refused without --overwrite
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
                           "--out", str(out), "--no-pivot-check")
    assert code != 0 and "pivot_check" in err
    # --combine none checks only when asked
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
                           "--combine", "none", "--pivot-check", "--out", str(tmp_path / "none"))
    assert code == 0, err
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["pivot_skipped"] == 1
    code, _, err = run_cli(capsys, "run", "--model", "m", "--base-url", server.base_url, "--method", "transfusion",
                           "--combine", "none", "--out", str(tmp_path / "none-default"))
    assert code == 0, err
    unchecked = json.loads((tmp_path / "none-default" / "metrics.json").read_text())
    assert unchecked["pivot_skipped"] == 0 and unchecked["settings"]["pivot_check"] is False
