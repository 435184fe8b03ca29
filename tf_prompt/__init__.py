"""tf-prompt: TransFusion prompting for cross-lingual NER (translate, annotate, fuse)."""

__version__ = "0.1.0"

from .api import Entity, extract, run_async, run_dataset  # noqa: E402
from .batch_api import run_dataset_via_batch, run_via_batch  # noqa: E402
from .settings import RunSettings  # noqa: E402

__all__ = ["Entity", "extract", "run_async", "run_dataset", "run_via_batch", "run_dataset_via_batch",
           "RunSettings", "__version__"]
