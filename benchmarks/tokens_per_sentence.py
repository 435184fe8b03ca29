"""Tokens per sentence and $ per 1,000 sentences for every method and batch size, with the F1 a
perfect model reaches through each path (it must stay >= 0.99: batching must not lose accuracy).

Runs the default templates on MasakhaNER 2.0 test sentences with an oracle model in process
(tf_prompt.testing.oracle_responder), counting every prompt and reply with cl100k_base (exact for
gpt-4-class cl100k models; o200k models count somewhat fewer tokens). Prices from the packaged
price table.

    python benchmarks/tokens_per_sentence.py [--langs all] [--limit 200] [--ks 1,4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tf_prompt.api import run_async
from tf_prompt.backends.function import FunctionBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.llm.cost import PriceTable
from tf_prompt.settings import RunSettings
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
METHODS = ["direct", "translate-test", "transfusion", "transfusion-1call"]
PRICED = ["gpt-4o", "gpt-4.1", "gpt-4o-mini"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--langs", default="all")
    ap.add_argument("--limit", type=int, default=200, help="first N test sentences per language")
    ap.add_argument("--ks", default="1,4,8")
    args = ap.parse_args()
    root = Path(args.data_dir) / "masakhaner2"
    if not root.is_dir():
        print(f"no MasakhaNER 2.0 data at {root}", file=sys.stderr)
        return 2
    langs = sorted(p.name for p in root.iterdir()) if args.langs == "all" else args.langs.split(",")
    sentences = []
    for lang in langs:
        sentences += read_conll(root / lang / "test.txt")[: args.limit]
    # distinct indices so traces stay readable; texts are what the oracle keys on
    responder = oracle_responder(sentences, LABELS)
    backend = FunctionBackend(model="gpt-4", fn=lambda messages: responder({"messages": messages}))
    prices = PriceTable.load()
    print("command: python " + " ".join(sys.argv))
    print(f"{len(sentences)} sentences ({len(langs)} languages x first {args.limit} test sentences), "
          f"tokens counted with cl100k_base, prices of {prices.date}")
    header = (f"{'method':<18}{'K':>3}{'calls/sent':>11}{'prompt/sent':>12}{'compl/sent':>11}{'total/sent':>11}"
              + "".join(f"{'$/1k ' + m:>16}" for m in PRICED) + f"{'$/1k 4o batch':>15}{'F1':>8}")
    print(header)
    base = None
    for method in METHODS:
        for k in [int(x) for x in args.ks.split(",")]:
            # transfusion alone (--combine none): the default adds the direct row's cost
            settings = RunSettings(model="gpt-4", method=method, batch_sentences=k, no_cache=True,
                                   combine="none" if method == "transfusion" else None,
                                   concurrency=32, progress=False)
            m = asyncio.run(run_async(settings, sentences, backend=backend)).metrics
            u, n = m["usage"], m["n_sentences"]
            p, c = u["prompt_tokens"] / n, u["completion_tokens"] / n
            if method == "direct" and k == 1:
                base = p + c
            costs = [prices.cost(model, int(u["prompt_tokens"]), int(u["completion_tokens"])) / n * 1000
                     for model in PRICED]
            batch = prices.cost("gpt-4o", int(u["prompt_tokens"]), int(u["completion_tokens"]), batch=True) / n * 1000
            print(f"{method:<18}{k:>3}{u['calls'] / n:>11.3f}{p:>12.1f}{c:>11.1f}{p + c:>11.1f}"
                  + "".join(f"{x:>16.3f}" for x in costs) + f"{batch:>15.3f}{m['f1']:>8.4f}", flush=True)
            if method == "transfusion-1call" and k == 8 and base:
                print(f"  transfusion-1call K=8 uses {(p + c) / base:.2f}x the tokens per sentence of "
                      f"direct K=1 (target < 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
