"""Methods: each declares its steps (base.py) in a file of its own (direct.py, translate_test.py,
transfusion.py, one_call.py); registry.py lists them; pipeline.py runs one on a sentence and
scheduler.py runs it over many."""

from tf_prompt.methods.base import STYLES, Method, Step, StepName, Style
from tf_prompt.methods.registry import METHODS, get_method, register, unregister

__all__ = ["METHODS", "STYLES", "Method", "Step", "StepName", "Style", "get_method", "register", "unregister"]
