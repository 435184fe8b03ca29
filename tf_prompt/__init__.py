"""tf-prompt: TransFusion prompting for cross-lingual NER (translate, annotate, fuse)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public names and the module each lives in. They are imported on first use (PEP 562), so that
#: `import tf_prompt.data.conll` or `tf-prompt --help` does not pay for the openai SDK (about 0.4 s).
_LAZY = {
    "Entity": "api", "extract": "api", "run_async": "api", "run_dataset": "api",
    "run_via_batch": "batch_api", "run_dataset_via_batch": "batch_api",
    "RunSettings": "settings",
}

__all__ = [
    "Entity",
    "RunSettings",
    "__version__",
    "extract",
    "run_async",
    "run_dataset",
    "run_dataset_via_batch",
    "run_via_batch",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tf_prompt' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value   # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
