"""Every method with a local model (default: the embedded Qwen2.5-Coder-1.5B on llama.cpp).

Runs each method on the first N sentences of five MasakhaNER 2.0 languages and prints F1 per
language and method, the average, and the calls, tokens and seconds each took, then the same as a
Markdown table (the README quotes it). `transfusion` is the default `--method transfusion`
(fusion combined with the direct answer, see tf_prompt/spans/combine.py); `transfusion:none` is the
fusion answer alone, as in the paper.

Replies go through the normal reply cache, so an interrupted benchmark continues where it stopped
and a rerun only re-scores; methods share cached steps (translate-test reuses the translation
and the English annotation of transfusion). Use `--split dev` while designing prompts: test is
for reporting.

    python benchmarks/quality_local.py --limit 50 [--langs hau,kin,pcm,swa,yor] [--split test]
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

LANGS = "hau,kin,pcm,swa,yor"
METHODS = "direct,translate-test,transfusion:none,transfusion,transfusion-1call"


def run_one(args: argparse.Namespace, lang: str, spec: str) -> dict:
    """One language and method; `spec` is METHOD[:COMBINE][@CONSTRAIN][/check|/nocheck] (e.g.
    direct@spans, transfusion:none@json/check: with the pivot check; without a suffix, the
    method's default)."""
    spec_checked, _, check = spec.partition("/")
    if check not in ("", "check", "nocheck"):
        raise SystemExit(f"{spec}: only /check or /nocheck may follow the method")
    spec_run, _, constrain = spec_checked.partition("@")
    method, _, combine = spec_run.partition(":")
    folder = spec.replace(":", "-").replace("@", "-").replace("/", "-")
    settings = RunSettings(model=args.model, method=method, combine=combine or None, constrain=constrain or "none",
                           pivot_check={"": None, "check": True, "nocheck": False}[check],
                           data=f"masakhaner2:{lang}:{args.split}", limit=args.limit,
                           labels=args.labels.split(","), prompts=args.prompts, concurrency=1, n_threads=args.n_threads,
                           progress=False, out=f"{args.out}/{args.split}/{lang}/{folder}")
    started = time.perf_counter()
    m = asyncio.run(run_async(settings)).metrics
    u = m["usage"]
    return {"lang": lang, "method": spec, "f1": m["f1"], "precision": m["precision"], "recall": m["recall"],
            "calls": u["calls"] + u["cache_hits"], "new_calls": u["calls"],
            "tokens": u["prompt_tokens"] + u["completion_tokens"] + u["cached_prompt_tokens"]
            + u["cached_completion_tokens"],
            # model time of every call the method needs: measured now, or when its reply was cached
            "seconds": u["call_seconds"] + u["cached_seconds"], "untimed": u["cached_untimed"],
            "wall": time.perf_counter() - started, "parse_failures": m["parse_failures"],
            "hallucinated": m["hallucinated"], "unaligned": m["unaligned"],
            "pivot_skipped": m.get("pivot_skipped", 0), "n": m["n_sentences"]}


def markdown(rows: list[dict], langs: list[str], methods: list[str]) -> str:
    """F1 per language and method, the average, and totals of calls, tokens and model seconds."""
    head = "| method | " + " | ".join(langs) + " | avg F1 | calls | tokens | seconds |"
    lines = [head, "|" + "---|" * (len(langs) + 5)]
    for spec in methods:
        sel = {r["lang"]: r for r in rows if r["method"] == spec}
        if not sel:
            continue
        f1s = [sel[lang]["f1"] * 100 for lang in langs if lang in sel]
        lines.append(f"| {spec} | " + " | ".join(f"{sel[lang]['f1'] * 100:.1f}" if lang in sel else "–"
                                                  for lang in langs)
                     + f" | **{sum(f1s) / len(f1s):.1f}** | {sum(r['calls'] for r in sel.values())}"
                     f" | {sum(r['tokens'] for r in sel.values())} | {sum(r['seconds'] for r in sel.values()):.0f}"
                     + ("*" if any(r["untimed"] for r in sel.values()) else "") + " |")
    if any(r["untimed"] for r in rows):
        lines.append("")
        lines.append("\\* some replies were cached before tf-prompt recorded call times: a lower bound")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--langs", default=LANGS)
    ap.add_argument("--methods", default=METHODS,
                    help="METHOD[:COMBINE][@CONSTRAIN][/check|/nocheck], comma-separated (e.g. direct@spans, "
                         "transfusion:none@json/check, transfusion/nocheck: with or without the pivot check)")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", default="gguf:qwen2.5-coder-1.5b")
    ap.add_argument("--labels", default="PER,ORG,LOC", help="the paper scores MasakhaNER 2.0 without DATE")
    ap.add_argument("--n-threads", type=int)
    ap.add_argument("--prompts", help="templates overriding the packaged ones (a directory or a packaged variant)")
    ap.add_argument("--out", default="runs/quality_local")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--plot", help="also draw f1_by_language.png into this folder")
    args = ap.parse_args()
    if not (Path(args.data_dir) / "masakhaner2").is_dir():
        print(f"no MasakhaNER 2.0 data under {args.data_dir}", file=sys.stderr)
        return 2
    os.environ["TF_PROMPT_DATA"] = args.data_dir
    langs, methods = args.langs.split(","), args.methods.split(",")
    print("command: python " + " ".join(sys.argv), flush=True)
    print(f"{'lang':<6}{'method':<24}{'F1':>7}{'P':>7}{'R':>7}{'calls':>7}{'new':>6}{'tokens':>9}"
          f"{'seconds':>9}{'s/call':>7}{'parse fail':>11}{'halluc':>8}{'unalign':>8}{'skipped':>8}", flush=True)
    rows = []
    for lang in langs:
        for spec in methods:
            row = run_one(args, lang, spec)
            rows.append(row)
            print(f"{lang:<6}{spec:<24}{row['f1'] * 100:>7.1f}{row['precision'] * 100:>7.1f}"
                  f"{row['recall'] * 100:>7.1f}{row['calls']:>7}{row['new_calls']:>6}{row['tokens']:>9}"
                  f"{row['seconds']:>9.0f}{row['seconds'] / max(1, row['calls']):>7.1f}"
                  f"{row['parse_failures']:>11}{row['hallucinated']:>8}{row['unaligned']:>8}{row['pivot_skipped']:>8}",
                  flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=2))
    print()
    print(markdown(rows, langs, methods))
    if args.plot:
        from tf_prompt.experiments.plots import plot_f1_by_language

        Path(args.plot).mkdir(parents=True, exist_ok=True)
        plot_f1_by_language([{**r, "model": args.model, "language": r["lang"], "prompt": "default"} for r in rows],
                            Path(args.plot) / "f1_by_language.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
