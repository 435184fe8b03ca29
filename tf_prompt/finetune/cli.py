"""`tf-prompt finetune --provider P --data DIR`: fine-tune a model on a `finetune-data` folder.

One subcommand for every provider, so the options a user learns once (--data, --model, --epochs,
--restart) mean the same everywhere; each provider adds its own options in its own group and is
one branch of `cmd_finetune`. Only argparse here: the provider's module (and its SDK) is imported
when the command runs, so `tf-prompt --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shlex
import sys
from typing import Any

#: --provider choices: openai (the fine-tuning API, finetune/openai_job.py), hf (LoRA on a local
#: model, finetune/lora.py).
PROVIDERS = ("openai", "hf")
#: The base `--provider hf` tunes when neither --model nor summary.json names a local model.
HF_DEFAULT_BASE = "gguf:qwen2.5-coder-1.5b"
EXIT_PENDING = 3   # as `run` for an incomplete run: the result is not there yet


def add_finetune_parser(subparsers: Any) -> None:
    """Register `finetune` on the CLI's subparsers (cli.py calls this)."""
    p = subparsers.add_parser("finetune", help="fine-tune a model on a finetune-data folder",
                              description="Fine-tune a model on the train.jsonl/validation.jsonl that "
                                          "tf-prompt finetune-data wrote; rerun the same command to resume.")
    p.add_argument("--provider", required=True, choices=list(PROVIDERS),
                   help="openai: the OpenAI fine-tuning API (prints the ft:... model id for run --model); "
                        "hf: LoRA on a local model (hf:DIR, hf:FILE.gguf or gguf:PRESET) into a checkpoint "
                        "that run --model hf:OUT loads (needs pip install 'tf-prompt[train]')")
    p.add_argument("--data", required=True, metavar="DIR", help="the folder finetune-data wrote (--out)")
    p.add_argument("--model", metavar="BASE",
                   help="the base model (openai: default train_model in DIR/summary.json, else "
                        "gpt-4o-mini-2024-07-18; aliases such as gpt-4o-mini become their fine-tunable snapshot. "
                        f"hf: default the local model DIR/summary.json names, else {HF_DEFAULT_BASE})")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="training epochs (openai: default epochs in DIR/summary.json, which its $ estimate used, "
                        "else the provider chooses; hf: default 1)")
    p.add_argument("--restart", action="store_true",
                   help="openai: start a new job even though one was started from DIR (it is not cancelled); "
                        "hf: discard the checkpoint or finished model in --out and train anew")
    o = p.add_argument_group("openai")
    o.add_argument("--suffix", metavar="S", help="up to 64 characters added to the fine-tuned model's name")
    o.add_argument("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI)")
    o.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the key (default: OPENAI_API_KEY)")
    o.add_argument("--poll-interval", type=float, default=30.0, metavar="S",
                   help="seconds between status checks (default: %(default)s)")
    o.add_argument("--max-wait", type=float, default=None, metavar="S",
                   help="stop waiting after S seconds (the job keeps running; rerun the same command to follow it)")
    h = p.add_argument_group("hf")
    h.add_argument("--out", metavar="OUT", help="the tuned checkpoint's folder (default: DIR-lora); a rerun "
                                                "continues its checkpoint, or keeps it when finished")
    h.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after N optimizer steps; 0 writes the base itself in the same formats (the "
                        "untuned control of a comparison)")
    h.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop after M minutes of training (the model is saved; more minutes continue it)")
    h.add_argument("--learning-rate", type=float, default=2e-4, metavar="LR", help="default: %(default)s")
    h.add_argument("--lora-rank", type=int, default=8, metavar="R", help="default: %(default)s")
    h.add_argument("--lora-alpha", type=int, default=16, metavar="A", help="default: %(default)s")
    h.add_argument("--grad-accum", type=int, default=4, metavar="K",
                   help="examples per optimizer step (one at a time, no padding; default: %(default)s)")
    h.add_argument("--max-length", type=int, default=2048, metavar="T",
                   help="skip (and count) examples longer than T tokens (default: %(default)s)")
    h.add_argument("--seed", type=int, default=0, help="adapter initialisation and example order (default: 0)")
    h.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: torch's)")
    h.add_argument("--no-gguf", action="store_true",
                   help="with a GGUF base, do not also write OUT/model-q8_0.gguf for llama.cpp (--model gguf:FILE)")
    h.add_argument("--no-progress", action="store_true", help="no line per step on stderr")
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Dispatch on --provider; errors are raised (DataError, BackendError) for the CLI to print."""
    if args.provider == "openai":
        return _openai(args)
    if args.provider == "hf":
        return _hf(args)
    raise AssertionError(f"provider {args.provider} has no branch")   # argparse allows only PROVIDERS


def _say(msg: str) -> None:
    print(f"tf-prompt: {msg}", file=sys.stderr, flush=True)


def _openai(args: argparse.Namespace) -> int:
    import math

    from tf_prompt.finetune.openai_job import (
        FineTuneJob,
        FineTunePending,
        StateFile,
        base_model_of,
        make_api,
        make_spec,
    )
    from tf_prompt.types import DataError
    from tf_prompt.util.formatting import money

    # NaN would poll with no pause and infinity never again: both are refused, as are negative waits
    if not (args.poll_interval > 0 and math.isfinite(args.poll_interval)):
        raise DataError(f"--poll-interval {args.poll_interval}: expected a number of seconds above 0")
    if args.max_wait is not None and not args.max_wait >= 0:
        raise DataError(f"--max-wait {args.max_wait}: expected a number of seconds, 0 or more")
    from tf_prompt.backends.openai_compat import effective_base_url

    # The data is checked before the key is read: a bad line is reported as such, with or without a key.
    spec, note = make_spec(args.data, model=args.model, epochs=args.epochs, suffix=args.suffix,
                           base_url=args.base_url, endpoint=effective_base_url("", args.base_url) or "")
    api, endpoint = make_api(args.base_url, args.api_key_env)
    if note:
        _say(note)
    per_epoch = spec.summary.get("training_cost_usd_per_epoch")
    cost = ""
    priced = spec.summary.get("train_model")   # the model summary.json's price is for
    if (isinstance(per_epoch, (int, float)) and spec.epochs and priced
            and base_model_of(priced, {})[0] == spec.base_model):
        cost = f", about ${money(per_epoch * spec.epochs)} (summary.json's price per epoch)"
    _say(f"fine-tuning {spec.base_model} at {endpoint} on {spec.examples['train']} training and "
         f"{spec.examples.get('validation', 0)} validation examples, "
         f"{'auto' if spec.epochs is None else spec.epochs} epochs{cost}")
    job = FineTuneJob(spec, api, poll_interval=args.poll_interval, max_wait=args.max_wait, say=_say)

    async def go() -> dict[str, Any]:
        try:
            return await job.run(restart=args.restart)
        finally:
            await api.close()

    try:
        state = asyncio.run(go())
    except FineTunePending as e:
        _say(str(e))
        return EXIT_PENDING
    except KeyboardInterrupt:
        recorded = StateFile(spec.folder).load() or {}
        if recorded.get("job_id"):
            _say(f"interrupted; job {recorded['job_id']} keeps running at the provider: rerun the same command "
                 f"to follow it")
        else:
            _say("interrupted before a job was started; rerun the same command to continue (uploads are "
                 "found again, not repeated)")
        return 130
    model = state["fine_tuned_model"]
    tokens = state.get("trained_tokens")
    print(f"fine-tuned model: {model}" + (f" ({tokens} trained tokens)" if tokens else ""))
    print(f"run it: {run_command(model, spec.summary, endpoint if args.base_url else None, args.api_key_env)}")
    return 0


def _hf(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tf_prompt.finetune.lora import LoraSettings, finetune_hf
    from tf_prompt.types import DataError

    for flag, value, low in (("--max-steps", args.max_steps, 0), ("--lora-rank", args.lora_rank, 1),
                             ("--lora-alpha", args.lora_alpha, 1), ("--grad-accum", args.grad_accum, 1),
                             ("--max-length", args.max_length, 8), ("--threads", args.threads, 1),
                             ("--epochs", args.epochs, 1)):
        if value is not None and value < low:
            raise DataError(f"{flag} {value}: expected at least {low}")
    for flag, number in (("--learning-rate", args.learning_rate), ("--max-minutes", args.max_minutes)):
        if number is not None and not number >= 0:   # also NaN
            raise DataError(f"{flag} {number}: expected a number >= 0")
    if args.learning_rate == float("inf"):   # the first update makes every weight inf
        raise DataError(f"--learning-rate {args.learning_rate}: expected a finite number")
    data = Path(args.data)
    loaded: Any = None
    with contextlib.suppress(OSError, ValueError):   # no summary.json: a JSONL folder made by hand
        loaded = json.loads((data / "summary.json").read_text(encoding="utf-8"))
    summary: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    named = summary.get("train_model")
    base = args.model or (named if isinstance(named, str) and named.startswith(("hf:", "gguf:")) else HF_DEFAULT_BASE)
    # beside the data folder; `--data .` or `..` has no name of its own to put -lora after
    named = data if data.name not in ("", ".", "..") else data.resolve()
    out = args.out or f"{str(named).rstrip('/')}-lora"
    _say(f"LoRA on {base} from {data} into {out}")
    result = finetune_hf(LoraSettings(
        data=str(data), base=base, out=out, max_steps=args.max_steps, max_minutes=args.max_minutes,
        epochs=float(args.epochs or 1), learning_rate=args.learning_rate, rank=args.lora_rank,
        alpha=args.lora_alpha, grad_accum=args.grad_accum, max_length=args.max_length, seed=args.seed,
        threads=args.threads, gguf=not args.no_gguf, progress=not args.no_progress, restart=args.restart))
    loss = (f"validation loss {result['validation_loss_before']:.4f} -> {result['validation_loss_after']:.4f}"
            if result.get("validation_loss_before") is not None and result.get("validation_loss_after") is not None
            else "no validation examples")
    print(f"trained {result['steps']} of {result['steps_planned']} steps ({result['epochs_seen']} epochs, "
          f"{result['minutes']} min, stopped by {result['stopped_by']}); {loss}")
    if result["skipped_too_long"]:
        _say(f"{result['skipped_too_long']} example(s) longer than --max-length {args.max_length} tokens skipped")
    print(f"tuned model: {result['model']}")
    print(f"run it: {run_command(result['model'], summary, None, None)}")
    if result.get("gguf_model"):
        print(f"the same weights for llama.cpp (faster on a CPU): {result['gguf_model']}")
    return 0


def run_command(model: str, summary: dict[str, Any], base_url: str | None, api_key_env: str | None) -> str:
    """The `tf-prompt run` that asks the tuned model what it was trained on: the method, style and
    components of the finetune-data run, on the test split of its data when that can be told."""
    argv = ["tf-prompt", "run", "--model", model]
    for key in ("method", "style"):
        if summary.get(key):
            argv += [f"--{key}", str(summary[key])]
    for key in ("translator", "annotator"):
        if summary.get(key) and summary[key] != "llm":
            argv += [f"--{key}", str(summary[key])]
    argv += _prompt_flags(summary.get("prompt_settings"))
    data = summary.get("data_path")
    if isinstance(data, str) and (m := re.fullmatch(r"(masakhaner2:[^:]+)(:(train|dev))?", data)):
        argv += ["--data", f"{m.group(1)}:test"]
    else:   # a file: its test counterpart cannot be told
        argv += ["--data", "TEST_DATA"]
    if base_url:
        argv += ["--base-url", base_url]
    if api_key_env:
        argv += ["--api-key-env", api_key_env]
    return shlex.join(argv)


def _prompt_flags(recorded: Any) -> list[str]:
    """The run flags that give back the prompt settings finetune-data recorded (data.prompt_settings)."""
    if not isinstance(recorded, dict):
        return []
    argv: list[str] = []
    for key, value in recorded.items():
        if value is None:
            continue
        if key == "checks":   # on by default: only --no-checks exists
            argv += [] if value else ["--no-checks"]
        elif key == "pivot_check":
            argv.append("--pivot-check" if value else "--no-pivot-check")
        elif key == "labels" and isinstance(value, list):
            argv += ["--labels", ",".join(map(str, value))]
        else:
            flag = {"language": "lang", "schema_spec": "schema"}.get(key, str(key)).replace("_", "-")
            argv += [f"--{flag}", str(value)]
    return argv
