"""tf-prompt: TransFusion prompting for cross-lingual NER (translate, annotate, fuse)."""

__version__ = "0.1.0"

from .api import Entity, extract, run_async, run_dataset  # noqa: E402
from .settings import RunSettings  # noqa: E402

__all__ = ["Entity", "extract", "run_async", "run_dataset", "RunSettings", "__version__"]
