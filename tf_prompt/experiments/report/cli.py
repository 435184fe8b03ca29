"""`tf-prompt report RUN_DIR [--out FILE] [--open]` on the command line."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from tf_prompt.experiments.report.build import ReportError, build_report


def cmd_report(args: argparse.Namespace) -> int:
    """`tf-prompt report`: errors are one line on stderr and exit code 2, like the other commands."""
    try:
        path = build_report(Path(args.run_dir), Path(args.out) if args.out else None)
    except ReportError as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report RUN_DIR [--out FILE] [--open]` on the CLI's subparsers."""
    p = subparsers.add_parser("report", help="write a static HTML page to read a run sentence by sentence")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder written by 'tf-prompt run' (trace.jsonl, ...)")
    p.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/report.html)")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.set_defaults(func=cmd_report)
    return p
