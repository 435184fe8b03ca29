"""A model that answers every step perfectly must score ~1.0 through every method and language.

This checks the pipeline itself (templates, HTTP, parsing, alignment, projection, scoring) on the
real MasakhaNER 2.0 test sets: any loss here is the framework's, not a model's. The oracle answers
from the gold tags (see tf_prompt.testing.oracle_responder); `--variant` degrades its answers the
way real models do (lowercased, diacritics stripped, extra spaces, fenced JSON...).

    python benchmarks/perfect_model.py --data-dir ../shared/data [--langs hau,yor] [--variant lower]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from tf_prompt.api import run_async
from tf_prompt.data.conll import read_conll
from tf_prompt.settings import RunSettings
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
METHODS = ["direct", "translate-test", "transfusion"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--langs", help="comma-separated language codes (default: all found)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--variant", default="clean")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--checks", action="store_true",
                    help="apply the self-checks (off by default: they rewrite answers to MasakhaNER's "
                         "conventions, which measures the conventions rather than the pipeline)")
    args = ap.parse_args()
    root = Path(args.data_dir) / "masakhaner2"
    if not root.is_dir():
        print(f"no MasakhaNER 2.0 data at {root}", file=sys.stderr)
        return 2
    os.environ["TF_PROMPT_DATA"] = str(Path(args.data_dir))
    langs = args.langs.split(",") if args.langs else sorted(p.name for p in root.iterdir() if p.is_dir())
    methods = args.methods.split(",")
    print("command: python " + " ".join(sys.argv))
    print(f"{'lang':<6}{'n':>6}" + "".join(f"{m:>16}" for m in methods) + f"{'seconds':>10}")
    worst = 1.0
    for lang in langs:
        sentences = read_conll(root / lang / f"{args.split}.txt")[: args.limit]
        row, started = [], time.perf_counter()
        with LoopbackServer(oracle_responder(sentences, LABELS, variant=args.variant)) as srv:
            for method in methods:
                settings = RunSettings(model="oracle", base_url=srv.base_url, method=method,
                                       data=f"masakhaner2:{lang}:{args.split}", limit=args.limit,
                                       concurrency=args.concurrency, checks=args.checks,
                                       combine="none" if method == "transfusion" else None)
                summary = asyncio.run(run_async(settings))
                row.append(summary.metrics["f1"])
                worst = min(worst, summary.metrics["f1"])
        print(f"{lang:<6}{len(sentences):>6}" + "".join(f"{f:>16.4f}" for f in row)
              + f"{time.perf_counter() - started:>10.1f}", flush=True)
    print(f"lowest F1: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
