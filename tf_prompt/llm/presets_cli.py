"""`tf-prompt models verify [PRESET_OR_PATH]`: hash local model files again, now.

Runs trust a file's sidecar while the file's size, mtime, inode and device are unchanged
(tf_prompt/llm/presets.py). A change that keeps all four (bytes rewritten in place with the mtime set
back, a bad disk) is only found by reading the file again, which this command does on demand:
"ok" when the content is the expected one, "mismatch" (exit 1) when it is not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tf_prompt.llm.presets import PRESETS, ModelError, preset_path, verify_file

EXIT_MISMATCH = 1
EXIT_USAGE = 2


def _verify_preset(name: str, cache_dir: str | None) -> tuple[bool, str]:
    """(ok, one line) for a preset's cached file; a mismatching file loses its sidecar, so the
    next run rebuilds it from the packages instead of using it."""
    p = PRESETS[name]
    path = preset_path(p, cache_dir)
    if not path.is_file():
        return True, f"absent   {name}: not assembled yet ({path}); it is verified when first used"
    digest, _ = verify_file(path, cache_dir)
    if digest == p.sha256:
        return True, f"ok       {name}: {path} sha256 {digest}"
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return False, (f"mismatch {name}: {path} has SHA-256 {digest}, expected {p.sha256}; "
                   f"it will be rebuilt from the packages on next use")


def _verify_path(spec: str, cache_dir: str | None) -> tuple[bool, str]:
    """(ok, one line) for a user's GGUF file: a mismatch is content that differs from what its
    sidecar recorded for the same size, mtime and inode (the sidecar now holds the new digest)."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    digest, recorded = verify_file(path, cache_dir)
    if recorded is not None and recorded != digest:
        return False, (f"mismatch {path}: SHA-256 {digest}, but its sidecar recorded {recorded} for the "
                       f"same size, mtime and inode; cached replies now follow the new content")
    return True, f"ok       {path}: sha256 {digest}"


def cmd_models_verify(args: argparse.Namespace) -> int:
    """Verify one preset or file, or every preset when none is named."""
    try:
        if args.model is None:
            results = [_verify_preset(name, args.cache_dir) for name in PRESETS]
        elif args.model in PRESETS:
            results = [_verify_preset(args.model, args.cache_dir)]
        else:
            results = [_verify_path(args.model, args.cache_dir)]
    except (ModelError, OSError) as e:
        print(f"tf-prompt: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else EXIT_MISMATCH


def add_models_parser(subparsers: Any) -> None:
    """Register `models` on the CLI's subparsers (cli.py calls this)."""
    p = subparsers.add_parser("models", help="check local model files (GGUF presets and paths)")
    actions = p.add_subparsers(dest="models_command", required=True)
    v = actions.add_parser("verify", help="hash model files again and compare with the expected SHA-256",
                           description="Re-hash a preset's cached file (or every preset's) or a .gguf file "
                                       "and print ok or mismatch; exit 1 on a mismatch.")
    v.add_argument("model", nargs="?", help=f"a preset ({', '.join(PRESETS)}) or a .gguf path; "
                                            "default: every preset")
    v.add_argument("--cache-dir", help="where presets are assembled (default: $TF_PROMPT_CACHE or "
                                       "~/.cache/tf-prompt)")
    v.set_defaults(func=cmd_models_verify)
