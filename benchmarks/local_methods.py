"""The three methods with a local model (default: the embedded Qwen2.5-Coder-1.5B on llama.cpp).

Runs direct, translate-test and transfusion on the first N test sentences of a few MasakhaNER 2.0
languages and prints F1, calls, tokens and wall time per language and method, plus averages.
Replies are cached (the normal reply cache), so an interrupted benchmark continues where it
stopped and a rerun only re-scores.

    python benchmarks/local_methods.py --langs hau,swa,yor --limit 50 [--model gguf:qwen2.5-coder-1.5b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from tf_prompt.api import run_async
from tf_prompt.settings import RunSettings

METHODS = ["direct", "translate-test", "transfusion"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--langs", default="hau,swa,yor")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", default="gguf:qwen2.5-coder-1.5b")
    ap.add_argument("--labels", default="PER,ORG,LOC", help="the paper scores MasakhaNER 2.0 without DATE")
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--n-threads", type=int)
    ap.add_argument("--out", default="runs/local_methods")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--plot", help="also draw f1_by_language.png and cost_vs_f1.png into this folder")
    args = ap.parse_args()
    if not (Path(args.data_dir) / "masakhaner2").is_dir():
        print(f"no MasakhaNER 2.0 data under {args.data_dir}", file=sys.stderr)
        return 2
    os.environ["TF_PROMPT_DATA"] = args.data_dir
    print("command: python " + " ".join(sys.argv), flush=True)
    print(f"{'lang':<6}{'method':<16}{'F1':>7}{'P':>7}{'R':>7}{'calls':>7}{'cached':>8}{'prompt tok':>12}"
          f"{'compl tok':>11}{'seconds':>9}{'parse fail':>11}", flush=True)
    rows = []
    for lang in args.langs.split(","):
        for method in args.methods.split(","):
            settings = RunSettings(model=args.model, method=method, data=f"masakhaner2:{lang}:{args.split}",
                                   limit=args.limit, labels=args.labels.split(","), shots=args.shots,
                                   shots_from=f"masakhaner2:{lang}:dev" if args.shots else None,
                                   concurrency=1, n_threads=args.n_threads, progress=False,
                                   out=f"{args.out}/{lang}/{method}")
            started = time.perf_counter()
            m = asyncio.run(run_async(settings)).metrics
            u = m["usage"]
            row = {"lang": lang, "method": method, "f1": m["f1"], "precision": m["precision"],
                   "recall": m["recall"], "calls": u["calls"], "cache_hits": u["cache_hits"],
                   "prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
                   "seconds": time.perf_counter() - started, "parse_failures": m["parse_failures"],
                   "n": m["n_sentences"]}
            rows.append(row)
            print(f"{lang:<6}{method:<16}{row['f1'] * 100:>7.1f}{row['precision'] * 100:>7.1f}"
                  f"{row['recall'] * 100:>7.1f}{row['calls']:>7}{row['cache_hits']:>8}{row['prompt_tokens']:>12}"
                  f"{row['completion_tokens']:>11}{row['seconds']:>9.0f}{row['parse_failures']:>11}", flush=True)
    for method in args.methods.split(","):
        sel = [r for r in rows if r["method"] == method]
        print(f"{'avg':<6}{method:<16}{sum(r['f1'] for r in sel) / len(sel) * 100:>7.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.plot:
        from tf_prompt.plots import plot_cost_vs_f1, plot_f1_by_language

        plot_rows = [{**r, "model": args.model, "language": r["lang"], "prompt": "default", "cost_usd": 0.0}
                     for r in rows]
        Path(args.plot).mkdir(parents=True, exist_ok=True)
        plot_f1_by_language(plot_rows, Path(args.plot) / "f1_by_language.png")
        plot_cost_vs_f1(plot_rows, Path(args.plot) / "cost_vs_f1.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
