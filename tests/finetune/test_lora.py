"""LoRA fine-tuning (`tf-prompt finetune --provider hf`) on a tiny random model built here.

The model knows nothing at first; a test passes only if training made it write the answers it was
trained on, through the same hf backend a run uses (`--model hf:DIR`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from conftest import require, require_module

torch = require_module("torch")
require_module("transformers")
require_module("tokenizers")
require_module("peft")

from hf_tiny import CHAT_TEMPLATE, build_tokenizer, save_model  # noqa: E402
from tf_prompt.backends.hf import HFBackend  # noqa: E402
from tf_prompt.finetune import lora  # noqa: E402
from tf_prompt.finetune.lora import LoraError, LoraSettings, finetune_hf  # noqa: E402
from tf_prompt.types import DataError  # noqa: E402

ANSWER = '{"entities": [{"text": "Kano", "type": "LOC"}]}'
SENTENCES = ["Shehu Gusau ya isa Kano ranar Litinin.", "Rais Samia Suluhu Hassan alizungumza jijini Dodoma.",
             "Translate the sentence into English.", "PER ORG LOC DATE: persons and dates."]


def conversation(sentence: str, answer: str = ANSWER) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You find named entities."},
            {"role": "user", "content": sentence},
            {"role": "assistant", "content": answer}]


def write_data(folder: Path, fmt: str = "messages", answer: str = ANSWER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in SENTENCES:
        conv = conversation(s, answer)
        record = {"messages": conv} if fmt == "messages" else {"prompt": conv[:-1], "completion": conv[-1:]}
        lines.append(json.dumps(record))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "validation.jsonl").write_text(lines[0] + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora-base")
    return {"chat": save_model(root / "chat", build_tokenizer(CHAT_TEMPLATE), seed=1),
            "raw": save_model(root / "raw", build_tokenizer(None), seed=1)}


def reply(model_dir: Path, sentence: str) -> str:
    backend = HFBackend(model=str(model_dir))
    messages = conversation(sentence)[:-1]
    return asyncio.run(backend.complete(messages, {"temperature": 0.0, "max_tokens": 40})).text


def settings(data: Path, base: Path, out: Path, **kw: object) -> LoraSettings:
    values: dict = {"epochs": 100.0, "max_steps": 80, "learning_rate": 1e-2, "rank": 8, "alpha": 16,
                    "dropout": 0.0, "grad_accum": 1, "save_every": 10, "progress": False}
    values.update(kw)
    return LoraSettings(data=str(data), base=f"hf:{base}", out=str(out), **values)


@pytest.mark.parametrize("kind", ["chat", "raw"])
def test_training_teaches_the_answer_the_hf_backend_then_gives(bases: dict[str, Path], tmp_path: Path,
                                                                 kind: str) -> None:
    base = bases[kind]
    assert reply(base, SENTENCES[0]) != ANSWER     # the random model does not know it
    data = write_data(tmp_path / "data", fmt="messages" if kind == "chat" else "prompt")
    summary = finetune_hf(settings(data, base, tmp_path / "tuned"))
    assert reply(tmp_path / "tuned", SENTENCES[0]) == ANSWER
    assert reply(tmp_path / "tuned", SENTENCES[1]) == ANSWER
    assert summary["steps"] == 80 and summary["examples"] == 4
    # The tiny model's logits stay flat (frozen 32-wide head): the loss falls little, the argmax is what moved.
    assert summary["train_loss_last"] < summary["train_loss_first"]
    assert summary["validation_loss_after"] < summary["validation_loss_before"]
    written = json.loads((tmp_path / "tuned" / "training.json").read_text())
    assert written["model"] == f"hf:{tmp_path / 'tuned'}"
    assert (tmp_path / "tuned" / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "tuned" / "checkpoint").exists()


def test_the_prompt_tokens_are_those_the_backend_sends(bases: dict[str, Path]) -> None:
    """Training on other prompt tokens than inference sends would teach the wrong thing."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bases["chat"])
    conv = conversation(SENTENCES[1])
    prompt_ids, answer_ids = lora.encode_example(tok, conv, [tok.eos_token_id])
    backend = HFBackend(model=str(bases["chat"]))
    sent, raw = backend._encode(tok, conv[:-1])
    assert not raw and prompt_ids == sent["input_ids"][0].tolist()
    # the answer, the end of the turn, and the token generation stops at
    assert tok.decode(answer_ids) == ANSWER + "<|end|><eos>"
    assert lora.encode_example(tok, conv, [tok.convert_tokens_to_ids("<|end|>")])[1] == answer_ids[:-1]


class Killed(BaseException):
    """A SIGKILL: nothing in the run may catch it (KeyboardInterrupt, Ctrl-C, it may)."""


@pytest.mark.parametrize(("stop", "dropout", "saved_at"), [
    (Killed, 0.0, 10),              # the last checkpoint (--save-every 10)
    (Killed, 0.05, 10),             # 0.05: the CLI's dropout, whose random masks must resume too
    (KeyboardInterrupt, 0.05, 16),  # Ctrl-C in step 17 keeps the 16 steps made
])
def test_a_killed_run_continues_to_the_same_weights(bases: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, stop: type[BaseException],
                                                    dropout: float, saved_at: int) -> None:
    data = write_data(tmp_path / "data")
    straight = finetune_hf(settings(data, bases["chat"], tmp_path / "straight", max_steps=25, dropout=dropout))

    real_loss, calls = lora._loss, {"n": 0}

    def dies_at_step_17(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 17 + 1:   # + 1: the validation loss before training
            raise stop
        return real_loss(*args)

    monkeypatch.setattr(lora, "_loss", dies_at_step_17)
    with pytest.raises(stop):
        finetune_hf(settings(data, bases["chat"], tmp_path / "resumed", max_steps=25, dropout=dropout))
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["step"] == saved_at and not (tmp_path / "resumed" / "training.json").exists()
    monkeypatch.setattr(lora, "_loss", real_loss)
    resumed = finetune_hf(settings(data, bases["chat"], tmp_path / "resumed", max_steps=25, dropout=dropout))
    assert resumed["steps"] == 25
    assert resumed["train_loss_history"] == straight["train_loss_history"]
    from safetensors.torch import load_file
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_folder_is_kept_and_other_settings_are_refused(bases: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    first = finetune_hf(settings(data, bases["chat"], out, max_steps=5))
    mtime = (out / "model.safetensors").stat().st_mtime_ns

    def no_training(*args: object) -> object:
        raise AssertionError("a finished folder was trained again")

    monkeypatch.setattr(lora, "_loss", no_training)
    again = finetune_hf(settings(data, bases["chat"], out, max_steps=5))
    assert again["fingerprint"] == first["fingerprint"]
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    with pytest.raises(LoraError, match=r"other data or settings.*--restart"):
        finetune_hf(settings(data, bases["chat"], out, max_steps=5, learning_rate=1e-3))
    write_data(data, answer='{"entities": []}')
    with pytest.raises(LoraError, match="other data or settings"):
        finetune_hf(settings(data, bases["chat"], out, max_steps=5))
    monkeypatch.undo()
    redone = finetune_hf(settings(data, bases["chat"], out, max_steps=5, restart=True))
    assert redone["fingerprint"] != first["fingerprint"]


def test_a_time_box_stops_and_more_minutes_continue(bases: dict[str, Path], tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    boxed = finetune_hf(settings(data, bases["chat"], out, max_steps=30, max_minutes=0.0))
    assert boxed["steps"] == 0 and boxed["stopped_by"] == "minutes"
    assert (out / "model.safetensors").is_file()     # a usable model even so
    # the same time box again has no minute left: the model is kept as it is, not merged and
    # written again (a new mtime would also make `run --model hf:OUT` miss its reply cache)
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    again = finetune_hf(settings(data, bases["chat"], out, max_steps=30, max_minutes=0.0))
    assert again["steps"] == 0 and again["stopped_by"] == "minutes"
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    more = finetune_hf(settings(data, bases["chat"], out, max_steps=30, max_minutes=10.0))
    assert more["steps"] == 30 and more["stopped_by"] == "steps"


def test_examples_over_max_length_are_skipped_and_counted(bases: dict[str, Path], tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    long = conversation("Shehu Gusau ya isa Kano. " * 200)
    with (data / "train.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"messages": long}) + "\n")
    summary = finetune_hf(settings(data, bases["chat"], tmp_path / "tuned", max_steps=2, max_length=400))
    assert summary["examples"] == 4 and summary["skipped_too_long"] == 1
    with pytest.raises(LoraError, match="longer than --max-length 10"):
        finetune_hf(settings(data, bases["chat"], tmp_path / "t2", max_steps=2, max_length=10))


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", r"train.jsonl:2: not JSON"),
    ('["a"]', r"train.jsonl:2: expected a JSON object"),
    ('{"messages": [{"role": "user", "content": "x"}]}', r"train.jsonl:2: the last message must be"),
    ('{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}',
     r"train.jsonl:2: every message needs"),
    ('{"text": "x"}', r"train.jsonl:2: expected 'messages'"),
    # JSON can escape half of a surrogate pair; no tokenizer can encode it (a TypeError traceback)
    ('{"messages": [{"role": "user", "content": "x\\udc80"}, {"role": "assistant", "content": "y"}]}',
     r"train.jsonl:2: a message holds a lone surrogate \\udc80"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"messages": conversation("a")}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        finetune_hf(LoraSettings(data=str(data), base="hf:/nonexistent", out=str(tmp_path / "o")))


def test_missing_data_and_base_are_one_line_errors(bases: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        finetune_hf(LoraSettings(data=str(tmp_path / "none"), base=f"hf:{bases['chat']}", out=str(tmp_path / "o")))
    data = write_data(tmp_path / "data")
    with pytest.raises(LoraError, match="no such folder"):
        finetune_hf(LoraSettings(data=str(data), base="hf:/no/such/dir", out=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no examples"):
        finetune_hf(LoraSettings(data=str(tmp_path / "empty"), base=f"hf:{bases['chat']}", out=str(tmp_path / "o")))


@pytest.mark.slow
def test_the_embedded_gguf_preset_trains_and_answers(gguf_cache_dir: Path, tmp_path: Path) -> None:
    """The 0.5B preset, dequantized by transformers, takes one LoRA step and is saved as a
    checkpoint the hf backend loads with the model's own chat template and end of turn."""
    from tf_prompt.llm.presets import ModelError, resolve_gguf

    require_module("gguf")
    try:
        path = resolve_gguf("qwen2.5-coder-0.5b", gguf_cache_dir)
    except ModelError as e:
        require(False, f"the qwen2.5-coder-0.5b preset is not installed: {e}")
        raise
    data = write_data(tmp_path / "data")
    summary = finetune_hf(LoraSettings(data=str(data), base=f"hf:{path}", out=str(tmp_path / "tuned"),
                                       max_steps=1, grad_accum=1, eval_examples=0, progress=False))
    assert summary["steps"] == 1
    saved = json.loads((tmp_path / "tuned" / "tokenizer_config.json").read_text())
    assert "im_start" in json.dumps(saved) or (tmp_path / "tuned" / "chat_template.jinja").is_file()
    backend = HFBackend(model=str(tmp_path / "tuned"))
    out = asyncio.run(backend.complete([{"role": "user", "content": "Reply with the single word OK."}],
                                       {"temperature": 0.0, "max_tokens": 8}))
    assert "ok" in out.text.lower() and out.finish_reason == "stop"

    # the same weights as a GGUF file llama.cpp runs: the base's metadata, the tuned tensors
    require_module("xllamacpp")
    from tf_prompt.backends.gguf import GGUFBackend
    gguf_path = tmp_path / "tuned" / "model-q8_0.gguf"
    assert summary["gguf_model"] == f"gguf:{gguf_path}" and gguf_path.is_file()

    async def ask_llama() -> object:
        llama = GGUFBackend(model=str(gguf_path), n_threads=2, n_ctx=1024)
        try:
            return await llama.complete([{"role": "user", "content": "Reply with the single word OK."}],
                                        {"temperature": 0.0, "max_tokens": 8})
        finally:
            await llama.aclose()

    answer = asyncio.run(ask_llama())
    assert "ok" in answer.text.lower() and answer.finish_reason == "stop"   # type: ignore[attr-defined]


def test_weights_of_another_architecture_are_not_written_over_a_gguf_base(
        bases: dict[str, Path], gguf_cache_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from tf_prompt.finetune.gguf_export import GGUFExportError, export_gguf
    from tf_prompt.llm.presets import ModelError, resolve_gguf

    require_module("gguf")
    try:
        path = resolve_gguf("qwen2.5-coder-0.5b", gguf_cache_dir)
    except ModelError as e:
        require(False, f"the qwen2.5-coder-0.5b preset is not installed: {e}")
        raise
    tiny = AutoModelForCausalLM.from_pretrained(bases["chat"])
    with pytest.raises(GGUFExportError, match=r"no tuned weight for .* tensor"):
        export_gguf(tiny, path, tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []   # no file, not even a temporary one


def test_the_cli_trains_prints_the_model_string_and_keeps_a_finished_folder(bases: dict[str, Path], tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tf_prompt.cli import main
    data = write_data(tmp_path / "data")
    argv = ["finetune", "--provider", "hf", "--data", str(data), "--model", f"hf:{bases['chat']}",
            "--max-steps", "3", "--grad-accum", "1", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    tuned = f"{data}-lora"   # the default --out: beside the data folder
    assert f"tuned model: hf:{tuned}\n" in out and f"run it: tf-prompt run --model hf:{tuned}" in out
    assert "trained 3 of 3 steps" in out
    mtime = (Path(tuned) / "model.safetensors").stat().st_mtime_ns
    assert main(argv) == 0 and (Path(tuned) / "model.safetensors").stat().st_mtime_ns == mtime
    assert main([*argv[:-3], "--max-steps", "4", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tf-prompt: error: ") and "--restart" in err[-1]


def test_zero_steps_write_the_base_itself_as_the_control(bases: dict[str, Path], tmp_path: Path) -> None:
    """--max-steps 0: the untuned model in the same formats (merged checkpoint, and GGUF for a GGUF
    base), so a comparison's base and tuned model differ only by the training."""
    from safetensors.torch import load_file
    data = write_data(tmp_path / "data")
    summary = finetune_hf(settings(data, bases["chat"], tmp_path / "control", max_steps=0))
    assert summary["steps"] == 0 and summary["train_loss_history"] == []
    a, b = load_file(bases["chat"] / "model.safetensors"), load_file(tmp_path / "control" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert reply(tmp_path / "control", SENTENCES[0]) == reply(bases["chat"], SENTENCES[0])


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-steps", "-1"], "--max-steps -1: expected at least 0"),
    (["--learning-rate", "nan"], "--learning-rate nan: expected a number >= 0"),
    (["--learning-rate", "inf"], "--learning-rate inf: expected a finite number"),
    (["--lora-rank", "-2"], "--lora-rank -2: expected at least 1"),
])
def test_the_cli_refuses_bad_numbers_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 flags: list[str], message: str) -> None:
    from tf_prompt.cli import main
    data = write_data(tmp_path / "data")
    assert main(["finetune", "--provider", "hf", "--data", str(data), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tf-prompt: error: {message}"]


def test_out_cannot_be_the_base_models_folder(bases: dict[str, Path], tmp_path: Path) -> None:
    """The merged weights would be written over the base's own model.safetensors and config."""
    import shutil
    base = Path(shutil.copytree(bases["chat"], tmp_path / "base"))
    before = {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    data = write_data(tmp_path / "data")
    for out in (base, tmp_path / "." / "base"):
        with pytest.raises(LoraError, match=r"--out .*the base model's folder"):
            finetune_hf(settings(data, base, out, max_steps=1))
    assert {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()} == before


def test_a_second_run_into_the_same_out_is_refused_while_one_trains(bases: dict[str, Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs swapping checkpoints and writing weights in one folder would leave a mix of both."""
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    real_loss, seen = lora._loss, []

    def second_run_meanwhile(*args: object) -> object:
        if not seen:
            with pytest.raises(LoraError, match=r"--out .* is being written by another"):
                finetune_hf(settings(data, bases["chat"], out, max_steps=3))
            seen.append(True)
        return real_loss(*args)

    monkeypatch.setattr(lora, "_loss", second_run_meanwhile)
    first = finetune_hf(settings(data, bases["chat"], out, max_steps=3))
    assert seen and first["steps"] == 3
    monkeypatch.setattr(lora, "_loss", real_loss)
    stale = out / ".checkpoint.999999.tmp"   # what a run killed while saving a checkpoint leaves
    stale.mkdir()
    assert finetune_hf(settings(data, bases["chat"], out, max_steps=3))["steps"] == 3
    assert not stale.exists()


@pytest.mark.parametrize("how", ["oserror", "torch"])
def test_a_full_disk_is_one_line(bases: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], how: str) -> None:
    import errno

    from tf_prompt.cli import main

    def no_space(*args: object, **kw: object) -> None:
        if how == "torch":   # what torch.save says on a full disk (seen writing to /dev/full)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        raise OSError(errno.ENOSPC, "No space left on device")

    if how == "torch":
        monkeypatch.setattr(torch, "save", no_space)
    else:
        monkeypatch.setattr(lora, "_save_checkpoint", no_space)
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    code = main(["finetune", "--provider", "hf", "--data", str(data), "--model", f"hf:{bases['chat']}",
                 "--out", str(out), "--max-steps", "2", "--grad-accum", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"tf-prompt: error: --out {out}: cannot write")
    assert ("No space left" if how == "oserror" else "unexpected pos") in err[-1]
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint")]   # no half-written checkpoint


def test_a_kill_while_the_model_is_rewritten_leaves_no_stale_training_json(bases: dict[str, Path], tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """training.json says what DIR holds: while a continued run writes new weights over the old
    ones it must not still describe the old ones (a kill there leaves the new weights)."""
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    assert finetune_hf(settings(data, bases["chat"], out, max_steps=6, max_minutes=0.0))["steps"] == 0
    real_save = lora._write_model

    def killed_after_the_weights(model: object, tokenizer: object, where: Path) -> None:
        real_save(model, tokenizer, where)
        raise Killed

    monkeypatch.setattr(lora, "_write_model", killed_after_the_weights)
    with pytest.raises(Killed):
        finetune_hf(settings(data, bases["chat"], out, max_steps=6))
    assert not (out / "training.json").exists()
    monkeypatch.undo()
    assert finetune_hf(settings(data, bases["chat"], out, max_steps=6))["steps"] == 6   # the rerun finishes
    assert json.loads((out / "training.json").read_text())["steps"] == 6


def test_the_default_out_of_data_dot_is_beside_the_data_folder(bases: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`--data .` (run inside the folder) must not train into a hidden `.-lora` inside the data."""
    from tf_prompt.cli import main
    data = write_data(tmp_path / "data")
    monkeypatch.chdir(data)
    assert main(["finetune", "--provider", "hf", "--data", ".", "--model", f"hf:{bases['chat']}",
                 "--max-steps", "1", "--grad-accum", "1", "--no-progress"]) == 0
    assert f"tuned model: hf:{tmp_path / 'data-lora'}\n" in capsys.readouterr().out
    assert (tmp_path / "data-lora" / "training.json").is_file() and not list(data.glob("*lora*"))


def test_line_separators_inside_a_json_string_do_not_split_the_line(tmp_path: Path) -> None:
    """finetune-data writes UTF-8 (ensure_ascii=False), and json leaves U+0085, U+2028 and U+2029
    raw inside strings: str.splitlines() would cut such a valid line in two."""
    sentence = "Kano\u2028ya isa\x85Dodoma\u2029."
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"messages": conversation(sentence)}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert lora.read_conversations(path) == [conversation(sentence)]


def test_a_loss_that_is_no_longer_a_number_stops_the_run_and_writes_no_model(bases: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    """A learning rate far too high makes the weights inf/NaN: the run must stop saying so, not
    go on for hours and then write a model that can only answer noise."""
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    with pytest.raises(LoraError, match=r"loss is nan at step \d+ .*--learning-rate"):
        finetune_hf(settings(data, bases["chat"], out, max_steps=6, learning_rate=1e30))
    assert not (out / "model.safetensors").exists() and not (out / "training.json").exists()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_checkpoint_is_one_line_naming_it(bases: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    real_loss, calls = lora._loss, {"n": 0}

    def dies_at_step_12(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 12 + 1:
            raise Killed
        return real_loss(*args)

    monkeypatch.setattr(lora, "_loss", dies_at_step_12)
    with pytest.raises(Killed):
        finetune_hf(settings(data, bases["chat"], out, max_steps=20))
    monkeypatch.undo()
    adapter = out / "checkpoint" / "adapter.pt"
    if damage == "missing":
        adapter.unlink()
    else:
        adapter.write_bytes(adapter.read_bytes()[:100])
    with pytest.raises(LoraError, match=rf"{out / 'checkpoint'}: cannot read the checkpoint .*--restart"):
        finetune_hf(settings(data, bases["chat"], out, max_steps=20))
    assert finetune_hf(settings(data, bases["chat"], out, max_steps=20, restart=True))["steps"] == 20


def test_a_second_kill_while_swapping_checkpoints_keeps_one(bases: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed mid-swap, a run leaves only .checkpoint.old; the rerun continues from it, and a kill
    in its own next swap must still leave a whole checkpoint (never neither)."""
    import shutil
    data = write_data(tmp_path / "data")
    out = tmp_path / "tuned"
    real_loss, calls = lora._loss, {"n": 0}

    def dies_at_step_12(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 12 + 1:
            raise Killed
        return real_loss(*args)

    monkeypatch.setattr(lora, "_loss", dies_at_step_12)
    with pytest.raises(Killed):
        finetune_hf(settings(data, bases["chat"], out, max_steps=25))
    monkeypatch.undo()
    (out / "checkpoint").rename(out / ".checkpoint.old")   # as a kill between the two renames leaves it
    real_rmtree = shutil.rmtree

    def killed_removing_the_old_one(path: object, *args: object, **kw: object) -> None:
        there = str(path).endswith(".checkpoint.old") and Path(str(path)).exists()
        real_rmtree(path, *args, **kw)  # type: ignore[arg-type]
        if there:   # killed right after it is gone
            raise Killed

    monkeypatch.setattr(lora.shutil, "rmtree", killed_removing_the_old_one)
    with pytest.raises(Killed):
        finetune_hf(settings(data, bases["chat"], out, max_steps=25))
    monkeypatch.undo()
    kept = lora._read_checkpoint(out)
    assert kept is not None and kept["step"] in (10, 20)
    assert finetune_hf(settings(data, bases["chat"], out, max_steps=25))["steps"] == 25
