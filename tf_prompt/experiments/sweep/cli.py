"""`tf-prompt sweep CONFIG` on the command line: its options, and its error handling when run alone."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from tf_prompt.data.conll import DataError
from tf_prompt.experiments.sweep.config import load_config
from tf_prompt.experiments.sweep.run import run_sweep
from tf_prompt.util.validation import first_problem


def cmd_sweep(args: argparse.Namespace) -> int:
    """`tf-prompt sweep CONFIG`: errors are raised (SweepError, DataError...) for the CLI to print."""
    config = load_config(args.config, args.out)
    return asyncio.run(run_sweep(config, dry_run=args.dry_run, proceed_up_to_cap=args.proceed_up_to_cap,
                                 overwrite=args.overwrite))


def add_sweep_parser(subparsers: Any) -> None:
    """Register `sweep` on the CLI's subparsers (cli.py calls this)."""
    p = subparsers.add_parser("sweep", help="run models x datasets x methods x prompts from a TOML config",
                              description="Run every cell of a sweep config (see benchmarks/sweep_example.toml)"
                                          " and write results.md/.csv/.json and plots.")
    p.add_argument("config", help="sweep config (TOML)")
    p.add_argument("--dry-run", action="store_true", help="print the cost table and exit; nothing is sent")
    p.add_argument("--proceed-up-to-cap", action="store_true",
                   help="when the estimate exceeds max_cost, run cells in order until max_cost is spent")
    p.add_argument("--out", help="sweep folder (overrides out in the config)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace cell folders that hold runs with other settings (after the config was edited)")
    p.set_defaults(func=cmd_sweep)


def main_sweep(argv: Sequence[str] | None = None) -> int:
    """`tf-prompt sweep` on its own, with the CLI's error handling (one line, exit code)."""
    from pydantic import ValidationError

    from tf_prompt.backends.base import BackendError
    from tf_prompt.data.schema import SchemaError
    from tf_prompt.llm.client import BudgetExceeded
    from tf_prompt.llm.cost import PriceError
    from tf_prompt.types import TemplateError

    parser = argparse.ArgumentParser(prog="tf-prompt")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (DataError, SchemaError, TemplateError, PriceError) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 2
    except ValidationError as e:
        print(f"tf-prompt: error: {first_problem(e).line()}", file=sys.stderr)
        return 2
    except (BackendError, BudgetExceeded) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tf-prompt: interrupted; finished cells are kept", file=sys.stderr)
        return 130
