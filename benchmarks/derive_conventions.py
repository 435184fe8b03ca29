"""Derive two MasakhaNER span conventions from its dev splits: titles out, generic words in.

MasakhaNER annotates "Rais [Samia Suluhu Hassan]PER" and "Alhaji [Aliko Dangote]PER" (titles and
honorifics are not part of a name) but "[jihar Kano]LOC" and "[u Rwanda]LOC" (the generic word
before a place is). Models, like English habits, do the opposite, and every such boundary costs
a false positive and a false negative. This script finds:

- titles: capitalised words tagged O right before a B-PER, seen at least --min-count times, that
  rarely start a name themselves;
- prefixes: lowercase words (no name glued to them) that begin a multi-word LOC/ORG span at least --min-count times and
  rarely stand outside one right before it.

The first --skip sentences of each dev split are left out, so the sentences prompts are designed
on (the first 20 dev sentences, and sentences 60-79 of yor, whose first ones hold almost no
entities) do not grade lists derived from themselves.

    python benchmarks/derive_conventions.py > tf_prompt/resources/masakhaner_conventions.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import resolve_dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--skip", type=int, default=100, help="leave out the first N sentences of each dev split")
    ap.add_argument("--min-count", type=int, default=3)
    args = ap.parse_args()
    root = Path(args.data_dir) / "masakhaner2"
    if not root.is_dir():
        print(f"no MasakhaNER 2.0 data under {args.data_dir}", file=sys.stderr)
        return 2
    os.environ["TF_PROMPT_DATA"] = args.data_dir
    before: Counter[str] = Counter()
    starts: Counter[str] = Counter()
    inside: dict[str, Counter[str]] = {"LOC": Counter(), "ORG": Counter()}
    outside: dict[str, Counter[str]] = {"LOC": Counter(), "ORG": Counter()}
    langs = sorted(p.name for p in root.iterdir() if (p / "dev.txt").is_file())
    for lang in langs:
        for s in read_conll(resolve_dataset(f"masakhaner2:{lang}:dev"))[args.skip:]:
            assert s.tags is not None
            words, tags = s.tokens, s.tags
            for i, tag in enumerate(tags):
                nxt = tags[i + 1] if i + 1 < len(tags) else "O"
                if tag == "B-PER":
                    starts[words[i]] += 1
                    if i and tags[i - 1] == "O" and words[i - 1][:1].isupper():
                        before[words[i - 1]] += 1
                for kind in inside:
                    if tag == f"B-{kind}" and nxt == f"I-{kind}" and words[i][:1].islower():
                        inside[kind][words[i]] += 1
                    if tag == "O" and nxt == f"B-{kind}" and words[i][:1].islower():
                        outside[kind][words[i]] += 1
    titles = sorted(w for w, n in before.items() if n >= args.min_count and starts[w] * 4 <= n)
    prefixes = {kind: sorted(w for w, n in inside[kind].items()
                             if w.islower() and n >= args.min_count and outside[kind][w] * 4 <= n)
                for kind in inside}
    print(json.dumps({"source": f"MasakhaNER 2.0 dev splits of {', '.join(langs)} (first {args.skip} "
                                "sentences of each left out)",
                      "command": "python benchmarks/" + " ".join([Path(__file__).name, *sys.argv[1:]]),
                      "titles": titles, "prefixes": prefixes}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
