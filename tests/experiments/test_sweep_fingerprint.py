"""The templates a run uses come from one list (tf_prompt/methods/templates.py), and the sweep's
resume fingerprint, metrics.json and estimate all read it; sweep folders stay unique.

A template missing from the fingerprint can be edited while its finished cell still counts as
done, with results from the old prompt. The default transfusion asks `direct.v2` too (for its
combination rule), and `--batch-sentences` renders `batch_*` templates.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from tf_prompt import run_dataset
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.sweep import SweepError, estimate_sweep, load_config, main_sweep
from tf_prompt.methods.templates import templates_of
from tf_prompt.prompting.templates import TemplateSet, packaged_prompts_dir
from tf_prompt.settings import RunSettings
from tf_prompt.testing import LoopbackServer, english_translation, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]

RUNS = [
    dict(method="direct"), dict(method="translate-test"), dict(method="transfusion"),
    dict(method="transfusion", combine="none"), dict(method="transfusion", combine="vote"),
    dict(method="transfusion-1call"),
    dict(method="direct", batch_sentences=3), dict(method="translate-test", batch_sentences=3),
    dict(method="transfusion", batch_sentences=3), dict(method="transfusion-1call", batch_sentences=3),
    dict(method="direct", style="gollie"), dict(method="translate-test", style="gollie"),
    dict(method="transfusion", style="gollie"), dict(method="transfusion", style="gollie", combine="union"),
    dict(method="transfusion-1call", style="gollie"),
]


@pytest.mark.parametrize("fields", RUNS, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_the_declared_templates_are_the_ones_a_run_renders(server, monkeypatch: pytest.MonkeyPatch,
                                                           fields: dict) -> None:
    rendered: set[str] = set()
    render = TemplateSet.render

    def spy(self: TemplateSet, step: str, *, template_step: str | None = None, **variables):
        rendered.add(template_step or step)
        return render(self, step, template_step=template_step, **variables)

    monkeypatch.setattr(TemplateSet, "render", spy)
    sentences = read_conll(sample_path())
    # the first sentence's translation echoes the source: transfusion's pivot check answers it
    # with the direct view, so the fallback's template is rendered too (declared: it may be asked)
    server.responder = oracle_responder(
        sentences, LABELS, translation=lambda s: s.text if s.index == 0 else english_translation(s))
    summary = run_dataset(model="m", base_url=server.base_url, limit=6, **fields)
    assert summary.metrics["f1"] == pytest.approx(1.0)

    declared = templates_of(RunSettings(**fields))
    assert rendered <= set(declared), f"rendered but not declared: {rendered - set(declared)}"
    if fields.get("batch_sentences", 1) == 1:
        assert rendered == set(declared)
    else:   # the single templates are only the fallback of a lost item; the numbered ones are used
        assert {t for t in declared if t.startswith("batch_")} <= rendered
    assert list(summary.metrics["settings"]["templates"]) == declared   # metrics.json records them all


def test_steps_done_by_other_components_have_no_template() -> None:
    settings = RunSettings(method="transfusion", translator="file:x.txt", annotator="spacy", combine="none")
    assert templates_of(settings) == ["fuse"]   # --combine none: no pivot check unless asked
    assert templates_of(settings.model_copy(update={"pivot_check": True})) == ["fuse", "direct"]   # its fallback
    assert templates_of(RunSettings(method="transfusion")) == ["translate", "annotate", "fuse", "direct"]


# --- the sweep ------------------------------------------------------------------------------------

@pytest.fixture
def hau(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The first 4 Hausa test sentences as TF_PROMPT_DATA (whole test sets would be slow)."""
    text = (shared_data / "masakhaner2" / "hau" / "test.txt").read_text(encoding="utf-8")
    dest = tmp_path / "data" / "masakhaner2" / "hau" / "test.txt"
    dest.parent.mkdir(parents=True)
    dest.write_text("\n\n".join(re.split(r"\n[ \t\r]*\n", text.strip())[:4]) + "\n", encoding="utf-8")
    monkeypatch.setenv("TF_PROMPT_DATA", str(tmp_path / "data"))
    return dest


@pytest.mark.parametrize("batch, edited", [(1, "direct.v2.jinja"), (2, "batch_direct.v1.jinja"),
                                           (2, "batch_translate.v1.jinja")])
def test_editing_a_template_the_cell_uses_reruns_the_finished_cell(hau: Path, tmp_path: Path, capsys,
                                                                   batch: int, edited: str) -> None:
    prompts = tmp_path / "my-prompts"
    prompts.mkdir()
    shutil.copy(packaged_prompts_dir() / edited, prompts / edited)
    body = (f'out = "sweep"\nlimit = 4\nlabels = {json.dumps(LABELS)}\nmethods = ["transfusion"]\n'
            f'languages = ["hau"]\n[[prompts]]\nname = "mine"\nprompts_dir = "{prompts}"\n')
    with LoopbackServer(oracle_responder(read_conll(hau), LABELS)) as srv:
        config = tmp_path / "sweep.toml"
        config.write_text(body + f'[[models]]\nname = "m"\nbase_url = "{srv.base_url}"\n'
                          f'[run]\nmax_retries = 0\nbatch_sentences = {batch}\n', encoding="utf-8")
        assert main_sweep([str(config)]) == 0
        assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["done"]

        path = prompts / edited
        source = path.read_text(encoding="utf-8")
        assert "Answer with" in source
        path.write_text(source.replace("Answer with", "Reply with"), encoding="utf-8")
        assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["to run"]
        sent = len(srv.requests)
        # the cell's folder holds the earlier run: the sweep says which template changed and
        # refuses to replace those results unless asked (as `run --out` does)
        capsys.readouterr()
        assert main_sweep([str(config)]) == 2
        err = capsys.readouterr().err
        assert "holds a different run" in err and edited.rsplit(".", 2)[0] in err and "--overwrite" in err
        assert len(srv.requests) == sent
        assert main_sweep([str(config), "--overwrite"]) == 0
        assert len(srv.requests) > sent                      # the edited prompt was really asked
        assert [e["status"] for e in asyncio.run(estimate_sweep(load_config(config)))] == ["done"]
    capsys.readouterr()


def _cells(tmp_path: Path, methods: list[str], prompts: list[str], models: str = 'name = "m"') -> list:
    body = (f'languages = ["hau"]\nmethods = {json.dumps(methods)}\n[[models]]\n{models}\n'
            + "".join(f'[[prompts]]\nname = {json.dumps(p)}\n' for p in prompts))
    config = tmp_path / "sweep.toml"
    config.write_text(body, encoding="utf-8")
    return load_config(config).cells


def test_cell_folders_stay_unique_after_sanitising(tmp_path: Path) -> None:
    cells = _cells(tmp_path, ["transfusion", "transfusion-1call"], ["default", "1call"])
    folders = {(c.method, c.prompt): c.out_dir.name for c in cells}
    assert len(set(folders.values())) == 4, folders
    assert folders[("transfusion-1call", "default")] == "transfusion-1call"
    assert folders[("transfusion", "default")] == "transfusion"
    assert folders[("transfusion", "1call")].startswith("transfusion-1call-")

    cells = _cells(tmp_path, ["direct"], ["x/y", "x y", "hints"])
    folders = {c.prompt: c.out_dir.name for c in cells}
    assert len(set(folders.values())) == 3 and all(f.startswith("direct-x_y-") for f in
                                                   (folders["x/y"], folders["x y"]))
    assert folders["hints"] == "direct-hints"                # plain names keep their folder


def test_cells_sharing_a_folder_are_a_config_error(tmp_path: Path) -> None:
    models = 'name = "a"\nlabel = "M"\n[[models]]\nname = "b"\nlabel = "m"'    # differ only in case
    with pytest.raises(SweepError, match="would share the folder"):
        _cells(tmp_path, ["direct"], ["default"], models)


# -- --scorer: re-scores a finished cell, never changes a default cell's fingerprint ------------------

KANO = "Kano O\nya O\nje O\nKano B-LOC\n\nAudu B-PER\nya O\nje O\nKano B-LOC\n\n"


def test_the_scorer_is_in_the_fingerprint_only_when_not_the_default() -> None:
    from tf_prompt.experiments.sweep import cell_fingerprint

    plain = cell_fingerprint(RunSettings(method="direct", base_url="http://127.0.0.1:9/v1"))
    assert "scorer" not in plain   # a cell finished before --scorer existed is not rerun
    for scorer in ("string", "both"):
        got = cell_fingerprint(RunSettings(method="direct", base_url="http://127.0.0.1:9/v1", scorer=scorer))
        assert got == {**plain, "scorer": scorer}


def test_a_sweep_with_another_scorer_rescores_its_cells_from_the_cache(tmp_path: Path, capsys) -> None:
    data = tmp_path / "kano.conll"
    data.write_text(KANO, encoding="utf-8")

    def config(run: str) -> Path:
        path = tmp_path / "sweep.toml"
        path.write_text(f'out = "sweep"\nlabels = {json.dumps(LABELS)}\nmethods = ["direct"]\n'
                        f'datasets = [{{data = "{data}", language = "hau", name = "kano"}}]\n[[models]]\n'
                        f'name = "m"\nbase_url = "{srv.base_url}"\n[run]\nmax_retries = 0\n{run}', encoding="utf-8")
        return path

    with LoopbackServer(oracle_responder(read_conll(data), LABELS)) as srv:
        assert main_sweep([str(config(""))]) == 0
        paid = len(srv.requests)
        first = json.loads((tmp_path / "sweep" / "results.json").read_text())["cells"]
        assert main_sweep([str(config('scorer = "string"\n'))]) == 0
        assert len(srv.requests) == paid   # re-scored from the cache
        again = json.loads((tmp_path / "sweep" / "results.json").read_text())["cells"]
    capsys.readouterr()
    assert first[0]["f1"] == pytest.approx(2 / 3) and again[0]["f1"] == 1.0   # the headline of each scorer
    metrics = json.loads((Path(again[0]["out_dir"]) / "metrics.json").read_text())
    assert metrics["scorer"] == "string" and again[0]["scorer"] == "string"
    assert "by string match" in (tmp_path / "sweep" / "results.md").read_text()


def test_the_results_table_says_when_its_f1_is_string_match() -> None:
    from tf_prompt.experiments.sweep.results import format_results

    def row(scorer: str | None) -> dict:
        r = {"model": "m", "language": "hau", "method": "direct", "prompt": "default", "f1": 0.5, "precision": 0.5,
             "recall": 0.5, "n": 1, "calls": 1, "cache_hits": 0, "prompt_tokens": 1, "completion_tokens": 1,
             "cost_usd": None, "wall_seconds": 0.0, "parse_failures": 0}
        return r if scorer is None else {**r, "scorer": scorer}

    assert "string match" not in format_results([row(None), row("conll"), row("both")], "t")
    assert "F1, P and R by string match" in format_results([row("string")], "t")
    assert "compare F1 only between cells of one scorer" in format_results([row("conll"), row("string")], "t")
