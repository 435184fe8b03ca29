"""The `tf-prompt` command line: `tf-prompt run ...` (more subcommands join as they are built).

Every expected failure (bad data, bad schema, template error, API error) ends as one line on
stderr, `tf-prompt: error: ...`, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

from pydantic import ValidationError

from . import __version__
from .backends.base import BackendError
from .data import DataError
from .pipeline import METHODS
from .runner import format_summary
from .schema import SchemaError
from .settings import RunSettings
from .templates import TemplateError

EXIT_USAGE = 2
EXIT_FAILED = 1


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="gpt-4o-mini", help="model name, or openai:NAME (default: %(default)s)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                      "(default: $OPENAI_BASE_URL or OpenAI)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (default: %(default)s)")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--max-tokens", type=int, help="cap on completion tokens per call")
    g.add_argument("--seed", type=int, help="sampling seed sent to the API (where supported)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    d = p.add_argument_group("data")
    d.add_argument("--data", "--dataset", dest="data",
                   help="CoNLL file, or masakhaner2:LANG[:SPLIT], or 'sample' (default: the shipped sample)")
    d.add_argument("--lang", dest="language", help="source language code or name (default: guessed from --data)")
    d.add_argument("--limit", type=int, help="use only the first N sentences")
    t = p.add_argument_group("task")
    t.add_argument("--method", default="transfusion", choices=METHODS)
    t.add_argument("--schema", help="built-in schema name (masakhaner) or a YAML/JSON schema file")
    t.add_argument("--labels", help="comma-separated subset of labels, e.g. PER,ORG,LOC")
    t.add_argument("--shots", type=int, default=0, help="number of few-shot examples (default: 0)")
    t.add_argument("--shots-from", help="labelled CoNLL file (or dataset) to take examples from")
    t.add_argument("--prompts", help="directory of .jinja templates overriding the packaged ones")
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=8, help="requests in flight (default: %(default)s)")
    r.add_argument("--out", help="output directory (default: runs/<data>-<method>)")


def _settings(args: argparse.Namespace) -> RunSettings:
    labels = [x for x in args.labels.split(",")] if args.labels else None
    out = args.out
    if out is None:
        stem = (args.data or "sample").replace(":", "-").replace("/", "_").strip("._") or "data"
        out = f"runs/{stem}-{args.method}"
    return RunSettings(
        model=args.model, base_url=args.base_url, api_key_env=args.api_key_env, method=args.method,
        data=args.data, language=args.language, schema=args.schema, labels=labels, shots=args.shots,
        shots_from=args.shots_from, prompts=args.prompts, limit=args.limit, concurrency=args.concurrency,
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed, timeout=args.timeout,
        out=out,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .api import run_async

    settings = _settings(args)
    if settings.data is None:
        print("tf-prompt: no --data given: running on the shipped sample (12 sentences)", file=sys.stderr)
    summary = asyncio.run(run_async(settings))
    print(format_summary(summary.metrics))
    print(f"outputs: {summary.out_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tf-prompt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tf-prompt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a method on a dataset and score it")
    _add_run_args(run)
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DataError, SchemaError, TemplateError) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as e:
        err = e.errors()[0]
        print(f"tf-prompt: error: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except BackendError as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tf-prompt: interrupted; outputs written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
