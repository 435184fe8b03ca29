"""Issue 14 part 5: base against tuned, direct against TransFusion, as one sweep.

The whole path a user follows, over HTTP with the real SDK: finetune-data on the shipped sample,
finetune --provider openai, then `tf-prompt sweep` with benchmarks/sweep_finetune.toml pointed at
the loopback server and at the `ft:` model the job returned. The server answers the tuned model
better than the base one, and each model's direct answer worse than its fusion answer, by
dropping the entities of the first sentences, so the four cells must come out with four
different F1 scores in the right order."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.experiments.sweep import load_config, main_sweep
from tf_prompt.testing import LoopbackServer, oracle_responder
from tf_prompt.testing.recognise import recognise, shapes

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "benchmarks" / "sweep_finetune.toml"
LABELS = ["PER", "ORG", "LOC", "DATE"]
SENTENCES = read_conll(sample_path())
#: how many of the first sample sentences each model answers with no entities, per step
DROPPED = {"base": {"direct": 6, "fuse": 3}, "tuned": {"direct": 2, "fuse": 0}}


def _graded_responder() -> Any:
    oracle = oracle_responder(SENTENCES, LABELS)
    known = shapes()
    texts = [s.text for s in SENTENCES]

    def respond(body: dict[str, Any]) -> str:
        who = "tuned" if str(body["model"]).startswith("ft:") else "base"
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        found = recognise(user, known)
        dropped = DROPPED[who].get(found.shape.template, 0)
        if found.values.get("text") in texts[:dropped]:
            return '{"entities": []}'
        return oracle(body)

    return respond


def _replace(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"benchmarks/sweep_finetune.toml no longer has {old!r}"
    return text.replace(old, new)


def test_example_config_reads_as_four_cells() -> None:
    config = load_config(EXAMPLE)
    cells = {(c.model, c.method) for c in config.cells}
    assert cells == {(m, k) for m in ("base", "tuned") for k in ("direct", "transfusion")}
    models = {c.model: c.settings.model for c in config.cells}
    assert models["base"] == "gpt-4o-mini-2024-07-18" and str(models["tuned"]).startswith("ft:gpt-4o-mini-2024-07-18:")


def test_base_vs_tuned_direct_vs_transfusion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer(_graded_responder()) as srv:
        data = tmp_path / "ft"
        assert main(["finetune-data", "--model", "gpt-4o-mini", "--base-url", srv.base_url, "--method",
                     "transfusion", "--out", str(data), "--validation-share", "0.2"]) == 0
        assert main(["finetune", "--provider", "openai", "--data", str(data), "--base-url", srv.base_url,
                     "--poll-interval", "0.01"]) == 0
        out = capsys.readouterr().out
        tuned = re.search(r"fine-tuned model: (ft:\S+)", out)
        assert tuned is not None, out
        tuned_model = tuned.group(1)
        assert tuned_model == next(iter(srv.fine_tuning.jobs.values()))["fine_tuned_model"]

        text = EXAMPLE.read_text(encoding="utf-8")
        text = _replace(text, '"ft:gpt-4o-mini-2024-07-18:my-org::AbC123xy"', json.dumps(tuned_model))
        text = _replace(text, 'out = "../runs/sweep_finetune"', 'out = "sweep"')
        text = _replace(text, "limit = 200 ", "# limit ")
        text = _replace(text, 'languages = ["hau"]', f'datasets = [{{ data = {json.dumps(str(sample_path()))}, '
                                                     f'name = "sample" }}]')
        for label in ("base", "tuned"):
            text = _replace(text, f'label = "{label}"\n', f'label = "{label}"\nbase_url = "{srv.base_url}"\n')
        text = _replace(text, "max_retries = 5", "max_retries = 0")
        config = tmp_path / "sweep_finetune.toml"
        config.write_text(text, encoding="utf-8")

        srv.requests.clear()
        assert main_sweep([str(config)]) == 0
        asked = {str(body["model"]) for body in srv.requests}
        tuned_prompts = {json.dumps(body["messages"], sort_keys=True) for body in srv.requests
                         if body["model"] == tuned_model}
    assert {"gpt-4o-mini-2024-07-18", tuned_model} <= asked   # each cell asked its own model
    # The sweep asks the tuned model exactly the prompts it was tuned on (system, user, byte for byte):
    # the example config's labels and prompt style must be finetune-data's.
    trained = {json.dumps(json.loads(line)["messages"][:-1], sort_keys=True)
               for name in ("train.jsonl", "validation.jsonl")
               for line in (data / name).read_text(encoding="utf-8").split("\n") if line}
    assert tuned_prompts and tuned_prompts <= trained, sorted(tuned_prompts - trained)[:1]

    results = json.loads((tmp_path / "sweep" / "results.json").read_text(encoding="utf-8"))
    f1 = {(c["model"], c["method"]): c["f1"] for c in results["cells"]}
    assert set(f1) == {(m, k) for m in ("base", "tuned") for k in ("direct", "transfusion")}
    assert all(c["n"] == len(SENTENCES) and c["complete"] for c in results["cells"])
    assert len(set(f1.values())) == 4, f1
    for method in ("direct", "transfusion"):
        assert f1[("tuned", method)] > f1[("base", method)]
    for model in ("base", "tuned"):
        assert f1[(model, "transfusion")] > f1[(model, "direct")]
    md = (tmp_path / "sweep" / "results.md").read_text(encoding="utf-8")
    assert "| base |" in md and "| tuned |" in md
