"""`tf-prompt sweep`: config errors, cost table, budget, results and plots, resuming.

Runs against the loopback server with an oracle that knows the first 10 test sentences of each
language, so every F1 must be 1.0 and every number is checkable.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest

from tf_prompt.data.conll import read_conll
from tf_prompt.experiments.sweep import SweepError, estimate_sweep, load_config, main_sweep
from tf_prompt.llm.cost import PriceTable, tokenizer_for
from tf_prompt.testing import LoopbackServer, oracle_responder

LANGS = ["hau", "swa", "yor"]
LABELS = ["PER", "ORG", "LOC"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def small_data(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first 10 test sentences of each language, as TF_PROMPT_DATA: the runs read their data
    file per cell (estimate and run), and parsing whole test sets would dominate the test time."""
    root = tmp_path / "data"
    for lang in LANGS:
        text = (shared_data / "masakhaner2" / lang / "test.txt").read_text(encoding="utf-8")
        blocks = re.split(r"\n[ \t\r]*\n", text.strip())[:10]
        dest = root / "masakhaner2" / lang / "test.txt"
        dest.parent.mkdir(parents=True)
        dest.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    monkeypatch.setenv("TF_PROMPT_DATA", str(root))
    return root


def _oracle(data: Path, langs: list[str]):
    sentences = [s for lang in langs for s in read_conll(data / "masakhaner2" / lang / "test.txt")[:10]]
    assert len(sentences) == 10 * len(langs)
    return oracle_responder(sentences, LABELS)


def _write(tmp_path: Path, body: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _config(base_url: str, *, model: str = "loopback", langs: list[str] = LANGS, limit: int = 10,
            max_cost: float | None = None, run: str = "") -> str:
    cost = f"max_cost = {max_cost}\n" if max_cost is not None else ""
    return (f'out = "sweep"\n{cost}limit = {limit}\nconcurrency = 8\nlabels = {json.dumps(LABELS)}\n'
            f'methods = ["direct", "transfusion"]\nlanguages = {json.dumps(langs)}\n\n'
            f'[[models]]\nname = "{model}"\nbase_url = "{base_url}"\n\n[run]\nmax_retries = 0\n{run}')


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_sweep_end_to_end_and_resume(small_data, tmp_path: Path, capsys) -> None:
    with LoopbackServer(_oracle(small_data, LANGS)) as srv:
        config = _write(tmp_path, _config(srv.base_url, max_cost=1.0))

        assert main_sweep([str(config), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert srv.requests == []                                   # estimating sends nothing
        assert "| model | dataset | method |" in out and "**total**" in out
        assert out.count("masakhaner2:") == 6 and "unknown" in out and "cannot be enforced" in out
        assert not (tmp_path / "sweep" / "results.md").exists()

        assert main_sweep([str(config)]) == 0
        printed = capsys.readouterr().out
        paid = len(srv.requests)
        assert paid == 3 * (10 + 30)                                # direct 1 call, transfusion 3

        out_dir = tmp_path / "sweep"
        results = json.loads((out_dir / "results.json").read_text())
        assert len(results["cells"]) == 6
        assert {(c["language"], c["method"]) for c in results["cells"]} == {
            (lang, m) for lang in LANGS for m in ("direct", "transfusion")}
        assert all(c["f1"] == 1.0 and c["n"] == 10 and c["parse_failures"] == 0 for c in results["cells"])
        assert [(a["method"], a["languages"], a["f1"]) for a in results["averages"]] == [
            ("direct", 3, 1.0), ("transfusion", 3, 1.0)]
        assert [g["language"] for g in results["gains"]] == [*LANGS, "avg"]
        assert all(g["gain"] == 0.0 for g in results["gains"])
        assert (out_dir / "loopback" / "hau" / "transfusion" / "metrics.json").is_file()

        md = (out_dir / "results.md").read_text()
        assert md in printed and "| 100.0 | 100.0 | 100.0 |" in md and "+0.0" in md
        with (out_dir / "results.csv").open() as fh:
            kinds = [r["kind"] for r in csv.DictReader(fh)]
        assert kinds == ["cell"] * 6 + ["average"] * 2 + ["gain"] * 4
        assert _is_png(out_dir / "f1_by_language.png") and _is_png(out_dir / "cost_vs_f1.png")

        # a finished sweep is skipped cell by cell: no request, same results
        assert main_sweep([str(config)]) == 0
        again = capsys.readouterr()
        assert len(srv.requests) == paid
        assert again.err.count("already complete, skipped") == 6
        assert json.loads((out_dir / "results.json").read_text())["cells"] == results["cells"]

        # changing something that changes replies reruns the cells (from the cache where it can)
        config.write_text(_config(srv.base_url, max_cost=1.0, run="temperature = 0.5\n"))
        assert main_sweep([str(config), "--dry-run"]) == 0
        assert "to run" in capsys.readouterr().out and len(srv.requests) == paid


def _flawed_oracle(data: Path):
    """The oracle with per-language flaws, so cells score differently: in hau the direct answer
    omits the entities of the first five sentences (TransFusion gains), in swa the fusion answer
    does (TransFusion loses), in yor both do (no gain, but below 1.0)."""
    per_lang = {lang: [s.text for s in read_conll(data / "masakhaner2" / lang / "test.txt")[:10]] for lang in LANGS}
    oracle = _oracle(data, LANGS)
    omit = {"hau": {"direct"}, "swa": {"fuse"}, "yor": {"direct", "fuse"}}

    def respond(body: dict) -> str:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        lines = user.splitlines()
        if "English translation:" in user:
            last = max(k for k, ln in enumerate(lines) if ln.startswith("English translation:"))
            step, source = "fuse", lines[last - 1]
        elif "Translate the following" in user or "English sentence below" in user:
            step, source = "other", ""
        else:
            step, source = "direct", [ln for ln in lines if ln.startswith("Sentence: ")][-1]
        source = source.split(": ", 1)[-1]
        for lang, texts in per_lang.items():
            if source in texts[:5] and step in omit[lang]:
                return '{"entities": []}'
        return oracle(body)

    return respond


def test_averages_and_gains_with_different_scores(small_data, tmp_path: Path) -> None:
    """Averages are means over languages and the gain is TransFusion minus direct, with its sign:
    checked on cells that score differently (the end-to-end test above has every F1 at 1.0)."""
    with LoopbackServer(_flawed_oracle(small_data)) as srv:
        config = _write(tmp_path, _config(srv.base_url) + '\n[[prompts]]\nname = "plain"\ncombine = "none"\n')
        assert main_sweep([str(config)]) == 0
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    f1 = {(c["language"], c["method"]): c["f1"] for c in results["cells"]}
    assert len(f1) == 6 and f1[("swa", "direct")] == f1[("hau", "transfusion")] == 1.0
    for lang in ("hau", "yor"):
        assert 0.0 < f1[(lang, "direct")] < 1.0
    for lang in ("swa", "yor"):
        assert 0.0 < f1[(lang, "transfusion")] < 1.0
    assert f1[("yor", "direct")] == pytest.approx(f1[("yor", "transfusion")])
    assert len(results["cells"]) == 6
    averages = {a["method"]: a["f1"] for a in results["averages"]}
    for method in ("direct", "transfusion"):
        assert averages[method] == pytest.approx(sum(f1[(lang, method)] for lang in LANGS) / 3)
    gains = {g["language"]: g["gain"] for g in results["gains"]}
    for lang in LANGS:
        assert gains[lang] == pytest.approx(f1[(lang, "transfusion")] - f1[(lang, "direct")])
    assert gains["hau"] > 0 > gains["swa"] and gains["yor"] == pytest.approx(0.0)
    assert gains["avg"] == pytest.approx(averages["transfusion"] - averages["direct"])
    md = (tmp_path / "sweep" / "results.md").read_text()
    assert f"{100 * gains['hau']:+.1f}" in md and f"{100 * gains['swa']:+.1f}" in md
    assert f"{100 * gains['swa']:+.1f}".startswith("-")


def test_budget_refuses_then_stops_within_cap(small_data, tmp_path: Path, capsys) -> None:
    model = "gpt-4"     # priced, and counted exactly with the offline cl100k_base encoding
    price = PriceTable.load().lookup(model)
    langs = ["hau", "swa"]
    with LoopbackServer(_oracle(small_data, langs), count_tokens=tokenizer_for(model).count) as srv:
        body = dict(model=model, langs=langs, limit=5, run="max_tokens = 256\n")
        config = _write(tmp_path, _config(srv.base_url, max_cost=0.01, **body))
        est = asyncio.run(estimate_sweep(load_config(config)))
        total = sum(e["cost_usd"] for e in est)
        assert total > 0.01

        assert main_sweep([str(config)]) == 2
        err = capsys.readouterr().err
        assert "exceeds max_cost" in err and "--proceed-up-to-cap" in err and len(err.strip().splitlines()) == 1
        assert srv.requests == []

        cap = total / 3
        config.write_text(_config(srv.base_url, max_cost=round(cap, 6), **body))
        assert main_sweep([str(config), "--proceed-up-to-cap"]) == 1
        err = capsys.readouterr().err
        assert "sweep stopped by max_cost" in err and "Traceback" not in err
        spent = (srv.prompt_tokens * price.input + srv.completion_tokens * price.output) / 1e6
        assert 0 < spent <= cap
        cells = json.loads((tmp_path / "sweep" / "results.json").read_text())["cells"]
        assert 1 <= len(cells) < 4 and all(c["complete"] for c in cells)

        # a larger cap continues: finished cells are skipped, no reply is paid for twice
        config.write_text(_config(srv.base_url, max_cost=100, **body))
        assert main_sweep([str(config)]) == 0
        # each cell is estimated alone; at run time transfusion's direct step (--combine) is the
        # direct cell's cached reply, so the sweep pays less than the estimate said
        assert len(srv.requests) == 2 * (5 + 15) < sum(e["calls"] for e in est) == 2 * (5 + 20)
        assert len(json.loads((tmp_path / "sweep" / "results.json").read_text())["cells"]) == 4


@pytest.mark.parametrize("body, where", [
    ('limit = 10\nmethods = ["direct"\n', "bad.toml:2: invalid TOML"),
    ('languages = ["hau"]\nmethods = ["tranfusion"]\n[[models]]\nname = "m"\n', "bad.toml:2: methods: unknown method"),
    ('languages = ["hau"]\nlimt = 3\n[[models]]\nname = "m"\n', "bad.toml:2: limt: unknown key"),
    ('languages = ["hau"]\n[[models]]\nname = "a"\n[[models]]\nname = "m"\nurl = "x"\n',
     "bad.toml:6: models[1].url: unknown key"),
    ('languages = ["hau"]\n[[models]]\nname = "m"\n[run]\ntemperature = "hot"\n', "bad.toml:5: run.temperature"),
    ('languages = ["hau"]\n[[models]]\nname = "m"\n[run]\nmethod = "direct"\n', "bad.toml:5: run.method: set by"),
    ('languages = ["hau"]\n', "bad.toml: models: add at least one"),
])
def test_bad_config(tmp_path: Path, body: str, where: str) -> None:
    with pytest.raises(SweepError) as e:
        load_config(_write(tmp_path, body, "bad.toml"))
    message = str(e.value)
    assert "\n" not in message and message.replace(str(tmp_path) + "/", "").startswith(where), message
    assert isinstance(e.value, ValueError)


def test_bad_config_from_the_command_line(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "max_cost = = 3\n", "bad.toml")
    assert main_sweep([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tf-prompt: error: ") and f"{path}:1:" in err and len(err.splitlines()) == 1


def test_bad_prompt_variant_points_at_its_table(tmp_path: Path) -> None:
    body = 'languages = ["hau"]\n[[models]]\nname = "m"\n[[prompts]]\nname = "a"\n[[prompts]]\nname = "b"\nshots = -1\n'
    with pytest.raises(SweepError, match=r"bad\.toml:8: prompts\[1\]\.shots: .*>= 0"):
        load_config(_write(tmp_path, body, "bad.toml"))


def test_combine_variant_applies_to_transfusion_cells_only(tmp_path: Path) -> None:
    body = ('languages = ["hau"]\nmethods = ["direct", "transfusion"]\n[[models]]\nname = "m"\n'
            '[[prompts]]\nname = "default"\n[[prompts]]\nname = "plain"\ncombine = "none"\n')
    cells = {(c.method, c.prompt): c.settings for c in load_config(_write(tmp_path, body)).cells}
    assert cells[("transfusion", "plain")].combine_rule() == "none"
    assert cells[("direct", "plain")].combine is None
    assert cells[("transfusion", "default")].combine is None
    bad = body.replace('combine = "none"', 'combine = "majority"')
    with pytest.raises(SweepError, match=r"sweep\.toml:9: prompts\[1\]\.combine: .*choose from"):
        load_config(_write(tmp_path, bad))
