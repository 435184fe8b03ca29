"""`tf-prompt finetune --provider hf`: LoRA on a local Hugging Face model, from the examples
`tf-prompt finetune-data` wrote, into a merged checkpoint that `--model hf:DIR` runs.

Why a hand-written loop rather than trl's SFTTrainer: what is needed is one epoch-or-time-bounded
pass of next-token loss on the reply tokens only, with batch size 1 (no padding) and gradient
accumulation; that is thirty lines of torch, where trl would add a dependency whose API changes
every few releases and whose chat-template handling differs from the one inference uses. The
prompt side of every example is encoded by the same function the hf backend encodes prompts with
(`tf_prompt.backends.hf.encode_prompt`), so the model is trained on exactly the tokens it is asked.

Design points:
- The base can be an `hf:` checkpoint folder, an `hf:FILE.gguf`, or a `gguf:` preset (the GGUF
  weights are dequantized to float32 by transformers): the embedded local models can be tuned.
- Only the answer tokens (and the turn's end marker) carry loss; the prompt is context.
- Bounded by `--max-steps`, `--max-minutes` and `--epochs`, whichever comes first, so a CPU run
  fits a time box. Examples longer than `--max-length` tokens are skipped and counted.
- Resumable: every `save_every` steps (20; no flag) the adapter, the optimizer and the step are written to
  `DIR/checkpoint/` (a temporary folder renamed into place); a rerun with the same data and
  settings continues from there. Other data or settings are refused in one line (`--restart`).
  Ctrl-C between two optimizer updates also writes the checkpoint, so it costs no finished step.
- One run per output folder: DIR is locked (util/folderlock.py) for the whole run, so a second
  run into it is refused instead of swapping checkpoints and weights with the first.
- The result is written last: the merged weights and tokenizer in DIR, the adapter alone in
  DIR/adapter, for a GGUF base also DIR/model-q8_0.gguf (the base file's metadata with the tuned
  weights, gguf_export.py: llama.cpp runs it several times faster than transformers on a CPU), and
  DIR/training.json (settings, losses, minutes) once everything else is in place.
  A rerun of a finished DIR prints its model string and trains nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tf_prompt.types import DataError
from tf_prompt.util import atomic
from tf_prompt.util.folderlock import FolderBusy, exclusive

__all__ = ["LoraError", "LoraSettings", "finetune_hf", "read_conversations", "resolve_base"]

#: The files finetune-data writes (validation.jsonl may be absent or empty).
TRAIN_FILE, VALIDATION_FILE = "train.jsonl", "validation.jsonl"
#: What marks a finished output folder.
RESULT_FILE = "training.json"
#: The llama.cpp file written beside the checkpoint when the base was a GGUF file.
GGUF_FILE = "model-q8_0.gguf"
CHECKPOINT_DIR = "checkpoint"


class LoraError(RuntimeError):
    """A fine-tuning run cannot start or go on; str() is one line saying what to do."""


@dataclass(frozen=True)
class LoraSettings:
    """Everything the trained weights depend on (the checkpoint fingerprint reads all of it,
    except `out`, `progress` and `restart`)."""

    data: str
    base: str
    out: str
    max_steps: int | None = None
    max_minutes: float | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    grad_accum: int = 4
    max_length: int = 2048
    warmup_share: float = 0.05
    seed: int = 0
    save_every: int = 20
    eval_examples: int = 32
    threads: int | None = None
    gguf: bool = True           # also write OUT/model-q8_0.gguf when the base is a GGUF file
    progress: bool = True
    restart: bool = False

    def fingerprint(self, data_digest: str, base_identity: str) -> str:
        """What a checkpoint must match to be continued. The time box is left out on purpose: a
        run stopped by `--max-minutes` is continued by the same command with more minutes. The
        step bounds stay in: they set the learning-rate schedule."""
        fields = asdict(self)
        for name in ("data", "out", "progress", "restart", "max_minutes", "threads", "save_every",
                     "eval_examples", "gguf"):
            fields.pop(name)
        blob = json.dumps({"settings": fields, "data": data_digest, "base": base_identity}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- data ---------------------------------------------------------------------------------------


def read_conversations(path: Path) -> list[list[dict[str, str]]]:
    """The conversations of a finetune-data JSONL file (`{messages}` or `{prompt, completion}`),
    each ending with the assistant's answer. A bad line is a DataError naming `path:line`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (write it with tf-prompt finetune-data --out {path.parent})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    out: list[list[dict[str, str]]] = []
    # split("\n"), not splitlines(): JSON leaves U+0085, U+2028 and U+2029 raw inside strings
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object with 'messages' or 'prompt' and 'completion'")
        messages = record.get("messages")
        if messages is None and "prompt" in record:
            prompt, completion = record.get("prompt"), record.get("completion")
            messages = (prompt + completion) if isinstance(prompt, list) and isinstance(completion, list) else None
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{path}:{n}: expected 'messages' (a list of chat messages) or 'prompt' and "
                            "'completion' lists")
        for m in messages:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise DataError(f"{path}:{n}: every message needs a string 'role' and 'content'")
            lone = re.search("[\ud800-\udfff]", m["content"])
            if lone:   # JSON can escape half a surrogate pair; no tokenizer encodes it
                raise DataError(f"{path}:{n}: a message holds a lone surrogate \\u{ord(lone.group()):04x} "
                                "(not text)")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise DataError(f"{path}:{n}: the last message must be the assistant's answer, after the prompt")
        out.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return out


def _data_files(data: Path) -> tuple[Path, Path | None]:
    if data.is_file():
        return data, None
    if not data.is_dir():
        raise DataError(f"{data}: no such file or folder (write it with tf-prompt finetune-data --out {data})")
    validation = data / VALIDATION_FILE
    return data / TRAIN_FILE, validation if validation.is_file() else None


# -- the base model -----------------------------------------------------------------------------


def resolve_base(spec: str) -> tuple[str, str | None]:
    """The folder (or hub id) and GGUF file name to load the base from: `hf:DIR`, `hf:FILE.gguf`,
    `gguf:PRESET_OR_FILE` or a bare path."""
    kind, sep, rest = spec.partition(":")
    if sep and kind == "gguf":
        from tf_prompt.llm.presets import resolve_gguf
        path = resolve_gguf(rest)
        return str(path.parent), path.name
    name = rest if sep and kind == "hf" else spec
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LoraError(f"--model {spec}: no such GGUF file")
        return str(path.parent), path.name
    if path.is_dir():
        return str(path), None
    if name.startswith(("/", ".", "~")):
        raise LoraError(f"--model {spec}: no such folder (a checkpoint folder with config.json, a .gguf "
                        "file, or gguf:PRESET)")
    return name, None   # a hub id: loads from the HF cache, or fails with the loader's message


def _base_identity(source: str, gguf_file: str | None) -> str:
    """Names, sizes and mtimes of the base's weight files (cheap on GB-sized files)."""
    root = Path(source)
    if not root.is_dir():
        return source
    files = [root / gguf_file] if gguf_file else sorted(p for p in root.iterdir() if p.is_file())
    return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()])


def _load(source: str, gguf_file: str | None) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise LoraError(f"{e}: pip install 'tf-prompt[train]'") from None
    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        extra: dict[str, Any] = {}
        if gguf_file:   # unpacked to plain float32 weights: trainable, and savable as a checkpoint
            from transformers import GgufConfig
            extra["quantization_config"] = GgufConfig(gguf_file=gguf_file, dequantize=True)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs, **extra)
        if gguf_file:
            # The weights are dense now; what remains of the GGUF loader only refuses to save them.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
    except Exception as e:   # any loader failure is the same one-line error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"{source} / {gguf_file}" if gguf_file else source
        raise LoraError(f"--model: cannot load {where}: {first[:200]}") from None
    return model, tokenizer


# -- examples as token ids ----------------------------------------------------------------------


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end generation in the hf backend (the model's generation config), in order."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = eos if isinstance(eos, list) else [eos]
    ids = [int(i) for i in listed if i is not None]
    return ids or ([int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else [])


def encode_example(tokenizer: Any, conversation: list[dict[str, str]],
                   stops: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """Prompt ids (exactly what the hf backend sends for the prompt) and answer ids (the answer
    and the end of the assistant's turn, the tokens that carry loss). When the turn's end holds
    none of `stops` (the tokens generation stops at), the first is added: a model that never
    learnt to stop writes until --max-tokens."""
    from tf_prompt.backends.hf import chat_messages, encode_prompt
    messages, answer = conversation[:-1], conversation[-1]["content"]
    encoded, raw = encode_prompt(tokenizer, messages)
    prompt_ids = [int(i) for i in encoded["input_ids"][0]]
    if raw:
        completion = " " + answer   # the end-of-sequence token follows (stops)
    else:
        prompt_text = tokenizer.apply_chat_template(chat_messages(tokenizer, messages), add_generation_prompt=True,
                                                    tokenize=False)
        full = tokenizer.apply_chat_template(chat_messages(tokenizer, conversation), tokenize=False)
        # What the template writes for the answer, with its end of turn (e.g. '<|im_end|>'); a
        # template that rewrites earlier turns once answered gives no such suffix: the bare answer.
        completion = full[len(prompt_text):].rstrip() if full.startswith(prompt_text) else answer
    answer_ids = [int(i) for i in tokenizer(completion, add_special_tokens=False)["input_ids"]]
    if stops and not set(answer_ids) & set(stops):
        answer_ids.append(int(stops[0]))
    return prompt_ids, answer_ids


# -- the run ------------------------------------------------------------------------------------


def _digest(paths: Sequence[Path | None]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p is not None else b"-")
        h.update(b"\0")
    return h.hexdigest()[:16]


def _say(settings: LoraSettings, text: str) -> None:
    if settings.progress:
        print(text, file=sys.stderr, flush=True)


def _mean_loss(model: Any, examples: Sequence[tuple[list[int], list[int]]]) -> float | None:
    import torch
    if not examples:
        return None
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for prompt, answer in examples:
            total += float(_loss(model, prompt, answer))
    model.train()
    return total / len(examples)


def _loss(model: Any, prompt: list[int], answer: list[int]) -> Any:
    import torch
    ids = torch.tensor([prompt + answer])
    labels = torch.tensor([[-100] * len(prompt) + answer])
    return model(input_ids=ids, labels=labels).loss


def _save_checkpoint(out: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """The adapter, the optimizer and the step, in a folder renamed into place: a kill leaves the
    previous checkpoint or this one, never half of one."""
    import torch
    from peft import get_peft_model_state_dict
    tmp = out / f".{CHECKPOINT_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        try:
            torch.save(get_peft_model_state_dict(model), tmp / "adapter.pt")
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        except RuntimeError as e:   # how torch.save says a write failed (a full disk)
            raise OSError(f"writing {tmp.name}: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}") from None
        atomic.write_text(tmp / "state.json", json.dumps(state, indent=1))
    except BaseException:   # the previous checkpoint stays; the half-written one goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final, old = out / CHECKPOINT_DIR, out / f".{CHECKPOINT_DIR}.old"
    if final.exists():   # else .old may be the only whole checkpoint (a kill mid-swap): it stays until tmp is in
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _write_model(model: Any, tokenizer: Any, out: Path) -> Any:
    """The adapter in out/adapter, the merged weights and the tokenizer in out; returns the merged
    model (for the GGUF file)."""
    model.save_pretrained(str(out / "adapter"))
    merged: Any = model.merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return merged


def _read_checkpoint(out: Path) -> dict[str, Any] | None:
    for folder in (out / CHECKPOINT_DIR, out / f".{CHECKPOINT_DIR}.old"):   # .old: killed mid-swap
        try:
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict):
            return {**state, "folder": str(folder)}
    return None


def finetune_hf(settings: LoraSettings) -> dict[str, Any]:
    """Train, merge and save; returns what training.json records."""
    out = Path(settings.out).expanduser()
    train_path, validation_path = _data_files(Path(settings.data).expanduser())
    train = read_conversations(train_path)
    if not train:
        raise DataError(f"{train_path}: no examples")
    validation = read_conversations(validation_path) if validation_path else []
    source, gguf_file = resolve_base(settings.base)
    if Path(source).is_dir() and out.resolve() == Path(source).resolve():
        raise LoraError(f"--out {out}: is the base model's folder ({settings.base}); the merged weights would "
                        "replace its own: give another --out")
    fingerprint = settings.fingerprint(_digest([train_path, validation_path]), _base_identity(source, gguf_file))
    if out.exists() and not out.is_dir():
        raise LoraError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoraError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
    try:
        with exclusive(out):
            for stale in out.glob(f".{CHECKPOINT_DIR}.*.tmp"):   # a kill while saving (we hold the lock)
                shutil.rmtree(stale, ignore_errors=True)
            return _finetune_in(out, settings, fingerprint, source, gguf_file, train_path, train, validation)
    except FolderBusy:
        raise LoraError(f"--out {out} is being written by another tf-prompt finetune: wait for it to end, "
                        "or give another --out") from None
    except OSError as e:   # a full disk, a read-only folder: the last checkpoint written is still whole
        raise LoraError(f"--out {out}: cannot write ({e.strerror or e}); free the space or fix the folder and "
                        "rerun to continue from its last checkpoint") from None


def _finetune_in(out: Path, settings: LoraSettings, fingerprint: str, source: str, gguf_file: str | None,
                 train_path: Path, train: list[list[dict[str, str]]],
                 validation: list[list[dict[str, str]]]) -> dict[str, Any]:
    """finetune_hf in its locked --out folder."""
    done = out / RESULT_FILE
    previous: Any = {}
    if done.is_file() and not settings.restart:
        try:
            previous = json.loads(done.read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
        if not isinstance(previous, dict):
            previous = {}
        same = previous.get("fingerprint") == fingerprint
        if same and previous.get("stopped_by") != "minutes":
            _say(settings, f"tf-prompt: {out} is already trained from this data and these settings")
            return dict(previous)
        if not same:
            raise LoraError(f"{out} holds a model trained from other data or settings: give another --out, "
                            "or --restart to train again and replace it")
    checkpoint = _read_checkpoint(out)
    if (done.is_file() and not settings.restart and settings.max_minutes is not None and checkpoint
            and checkpoint.get("fingerprint") == fingerprint and previous.get("steps") == checkpoint.get("step")
            and float(checkpoint.get("seconds", 0.0)) >= settings.max_minutes * 60):
        # Time-boxed before and no minute left: training would stop at once, and merging and
        # writing the same weights again would only cost minutes and a new mtime for hf:OUT.
        _say(settings, f"tf-prompt: {out} already used its --max-minutes {settings.max_minutes:g} "
                       f"({previous.get('steps')} steps): give more minutes to continue it")
        return dict(previous)
    if checkpoint and checkpoint.get("fingerprint") != fingerprint and not settings.restart:
        raise LoraError(f"{out}/{CHECKPOINT_DIR} is a run with other data or settings: rerun that command to "
                        "continue it, give another --out, or --restart to discard it")
    if settings.restart:
        for name in (CHECKPOINT_DIR, f".{CHECKPOINT_DIR}.old", RESULT_FILE):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        checkpoint = None

    try:
        import torch
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    except ImportError as e:
        raise LoraError(f"{e}: pip install 'tf-prompt[train]'") from None
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    _say(settings, f"loading {settings.base} ...")
    model, tokenizer = _load(source, gguf_file)

    stops = stop_ids(model, tokenizer)
    examples, too_long = [], 0
    for conv in train:
        prompt, answer = encode_example(tokenizer, conv, stops)
        if len(prompt) + len(answer) > settings.max_length:
            too_long += 1
        else:
            examples.append((prompt, answer))
    if not examples:
        raise LoraError(f"{train_path}: every example is longer than --max-length {settings.max_length} tokens")
    held_out = [e for e in (encode_example(tokenizer, c, stops) for c in validation[:settings.eval_examples])
                if len(e[0]) + len(e[1]) <= settings.max_length]

    per_epoch = max(1, math.ceil(len(examples) / settings.grad_accum))
    total = max(1, math.ceil(per_epoch * settings.epochs))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    warmup = max(1, int(total * settings.warmup_share))

    def rate(step: int) -> float:   # linear warm-up, then linear decay to zero at `total`
        return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    step, history, seconds_before = 0, [], 0.0
    if checkpoint:
        folder = Path(checkpoint["folder"])
        try:
            set_peft_model_state_dict(model, torch.load(folder / "adapter.pt"))
            optimizer.load_state_dict(torch.load(folder / "optimizer.pt"))
            step, history = int(checkpoint["step"]), list(checkpoint.get("history", []))
            seconds_before = float(checkpoint.get("seconds", 0.0))
        except Exception as e:   # a file removed or cut short by hand, an old format: not a traceback
            said = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise LoraError(f"{folder}: cannot read the checkpoint ({said}); --restart discards it and trains "
                            "anew") from None
        for _ in range(step):
            scheduler.step()
        _say(settings, f"continuing {out} from step {step} of {total}")
    loss_before = _mean_loss(model, held_out) if not checkpoint else checkpoint.get("validation_loss_before")

    orders: dict[int, list[int]] = {}

    def order(epoch: int) -> list[int]:   # the same shuffle on every rerun: resuming skips what was seen
        if epoch not in orders:   # once per epoch, not per example
            orders.clear()
            orders[epoch] = idx = list(range(len(examples)))
            random.Random(settings.seed * 1_000_003 + epoch).shuffle(idx)
        return orders[epoch]

    started = time.monotonic()
    model.train()
    stop_reason = "steps"
    saved, phase = step, "forward"
    try:
        while step < total:
            elapsed = seconds_before + time.monotonic() - started
            if settings.max_minutes is not None and elapsed >= settings.max_minutes * 60:
                stop_reason = "minutes"
                break
            losses = []
            # The dropout masks of a step depend on the seed and the step alone, not on how many steps
            # this process made: a run continued from a checkpoint draws what an unbroken one draws.
            torch.manual_seed(settings.seed * 1_000_003 + step)
            for k in range(settings.grad_accum):
                position = step * settings.grad_accum + k
                epoch, i = divmod(position, len(examples))
                prompt, answer = examples[order(epoch)[i]]
                loss = _loss(model, prompt, answer)
                value = float(loss.detach())
                if not math.isfinite(value):   # the weights diverged: every later step is noise too
                    raise LoraError(f"the training loss is {value} at step {step + 1} of {total}: the weights "
                                    f"diverged; lower --learning-rate (now {settings.learning_rate:g}) and rerun "
                                    "with --restart (no model was written)")
                (loss / settings.grad_accum).backward()
                losses.append(value)
            phase = "update"   # the weights change in place: an interrupt now leaves them half updated
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.append(round(sum(losses) / len(losses), 4))
            phase = "forward"
            elapsed = seconds_before + time.monotonic() - started
            _say(settings, f"step {step}/{total}  loss {history[-1]:.4f}  {elapsed / 60:.1f} min")
            if step % settings.save_every == 0 or step == total:
                phase = "saving"
                _save_checkpoint(out, model, optimizer, {
                    "fingerprint": fingerprint, "step": step, "history": history, "seconds": elapsed,
                    "validation_loss_before": loss_before})
                saved, phase = step, "forward"
    except KeyboardInterrupt:
        # Ctrl-C between updates: the steps made since the last checkpoint are kept (a rerun goes
        # on from here; the gradients of the step it broke are dropped, and redone the same way).
        if step > saved and phase == "forward":
            optimizer.zero_grad(set_to_none=True)
            _say(settings, f"interrupted: saving step {step} in {out / CHECKPOINT_DIR}")
            _save_checkpoint(out, model, optimizer, {
                "fingerprint": fingerprint, "step": step, "history": history,
                "seconds": seconds_before + time.monotonic() - started, "validation_loss_before": loss_before})
        raise
    seconds = seconds_before + time.monotonic() - started
    if step < total and stop_reason == "minutes":
        _save_checkpoint(out, model, optimizer, {
            "fingerprint": fingerprint, "step": step, "history": history, "seconds": seconds,
            "validation_loss_before": loss_before})
    loss_after = _mean_loss(model, held_out)

    # training.json describes the weights in DIR: it goes before they are replaced, and comes back last
    (out / RESULT_FILE).unlink(missing_ok=True)
    merged = _write_model(model, tokenizer, out)
    exported = None
    if gguf_file and settings.gguf:
        from tf_prompt.finetune.gguf_export import export_gguf
        _say(settings, "writing the GGUF file ...")
        exported = export_gguf(merged, Path(source) / gguf_file, out / GGUF_FILE)
    summary: dict[str, Any] = {
        "fingerprint": fingerprint, "model": f"hf:{out}", "base": settings.base,
        "gguf_model": f"gguf:{exported}" if exported else None,
        "settings": {k: v for k, v in asdict(settings).items() if k not in ("progress", "restart")},
        "examples": len(examples), "skipped_too_long": too_long, "validation_examples": len(held_out),
        "steps": step, "steps_planned": total, "stopped_by": stop_reason if step < total else "steps",
        "epochs_seen": round(step * settings.grad_accum / len(examples), 3),
        "train_loss_first": history[0] if history else None, "train_loss_last": history[-1] if history else None,
        "train_loss_history": history,
        "validation_loss_before": loss_before, "validation_loss_after": loss_after,
        "minutes": round(seconds / 60, 2),
    }
    atomic.write_text(out / RESULT_FILE, json.dumps(summary, indent=1) + "\n")
    if summary["stopped_by"] == "steps":   # a time-boxed run keeps its checkpoint: more minutes continue it
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return summary
