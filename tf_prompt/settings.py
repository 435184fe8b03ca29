"""The settings of one run, shared by the CLI and the Python API so both take one code path.

Validated with pydantic, so a script that passes `method="tranfusion"` gets the same clear
message as the command line. A keyword that is no setting is refused, naming the setting
probably meant: ignored, `run_dataset(cache=False)` would have used the cache all the same.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tf_prompt.methods import METHODS, STYLES, get_method
from tf_prompt.spans.combine import RULES as COMBINE_RULES
from tf_prompt.util.validation import SettingError, did_you_mean


def combining_methods() -> str:
    """The registered methods that combine answers (take --combine), as `a or b` ("none": none does)."""
    return " or ".join(m.name for m in METHODS.values() if m.combines) or "none"


class RunSettings(BaseModel):
    """Everything that determines a run's prompts and replies (plus where outputs go)."""

    model: str | None = None          # None: gpt-4o-mini with a key/base URL, else the local default
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api_version: str | None = None    # azure: the API version (None: $OPENAI_API_VERSION, else azure.py's)
    method: str = "transfusion"       # a registered method (tf_prompt.methods.METHODS)
    style: str = "json"
    combine: str | None = None        # transfusion only: none | union | vote | ... (None: the default rule)
    checks: bool = True               # the cheap self-checks on answers (checks.py)
    # answers that can only be well formed (prompting/constraints.py); "none" measured best on dev (README)
    constrain: Literal["none", "json", "spans"] = "none"
    # transfusion: skip annotate and fuse when the translation echoes the source or is not English;
    # None: on with a combination rule, off with --combine none (the paper's method), as measured on dev
    pivot_check: bool | None = None
    # which rules make the headline F1 (scoring/metrics.py); never changes a prompt or a reply
    scorer: Literal["conll", "string", "both"] = "conll"
    translator: str = "llm"           # llm | file:PATH | mt:DIR
    annotator: str = "llm"            # llm | spacy[:MODEL] | file:PATH
    batch_sentences: int = 1          # K sentences per prompt (every step)
    data: str | None = None
    language: str | None = None
    schema_spec: str | None = Field(default=None, alias="schema")
    labels: list[str] | None = None
    shots: int = 0
    shots_from: str | None = None
    prompts: str | None = None
    limit: int | None = None
    concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int | None = 1024
    seed: int | None = None
    timeout: float = 60.0
    n_threads: int | None = None      # local backends
    n_ctx: int | None = None
    out: str | None = None
    # replace a different earlier run in `out` (rundir.py); not recorded, never part of a hash
    overwrite: bool = Field(default=False, exclude=True)
    # how calls are made (not part of any cache key)
    cache_dir: str | None = None
    no_cache: bool = False
    max_retries: int = 5
    retry_initial: float = 1.0
    rpm: float | None = None
    tpm: float | None = None
    max_cost: float | None = None
    prices: str | None = None
    progress: bool | None = None

    # extra="forbid": an unknown keyword is an error (`_known_keys` words it), never ignored
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    @classmethod
    def setting_names(cls) -> list[str]:
        """The names a setting is given by: its alias where it has one (`schema`), else its field name."""
        return [f.alias or name for name, f in cls.model_fields.items()]

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """Refuse a keyword that is no setting, naming the setting probably meant."""
        if isinstance(data, dict):
            known = set(cls.model_fields) | set(cls.setting_names())
            for key in data:
                if key not in known:
                    raise SettingError(f"unknown setting {key!r}{did_you_mean(str(key), cls.setting_names())}",
                                       str(key))
        return data

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        get_method(v)   # the registry: an unknown name is a ValueError listing the choices
        return v

    @field_validator("style")
    @classmethod
    def _style(cls, v: str) -> str:
        if v not in STYLES:
            raise ValueError(f"unknown prompt style {v!r}; choose from {', '.join(STYLES)}")
        return v

    @field_validator("combine")
    @classmethod
    def _combine(cls, v: str | None) -> str | None:
        if v is not None and v not in COMBINE_RULES:
            raise ValueError(f"unknown combination rule {v!r}; choose from {', '.join(COMBINE_RULES)}")
        return v

    @model_validator(mode="after")
    def _method_takes_style_and_combine(self) -> RunSettings:
        """What the method declares: its prompt styles, and whether a combination rule applies."""
        method = get_method(self.method)
        if self.style not in method.styles:
            raise SettingError(f"--style {self.style} does not apply to --method {self.method} (it has prompts "
                               f"for: {', '.join(method.styles)})", "style")
        if self.combine not in (None, "none") and not method.combines:
            raise SettingError(f"--combine {self.combine} applies to --method {combining_methods()}, "
                               f"not {self.method}", "combine")
        if self.constrain != "none":
            coded = [s.name for s in method.llm_steps(self) if s.prompting(self.style).reply in ("code", "code_fused")]
            if coded:
                raise SettingError(f"--constrain {self.constrain} applies to JSON answers; with --style "
                                   f"{self.style} step {coded[0]} answers with code (no code grammar is built): "
                                   "use --constrain none", "constrain")
        return self

    def combine_rule(self) -> str:
        """The rule that makes the method's final answer ("none" for a method without one:
        the method's own answer). Without --combine, the method's default for the style."""
        method = get_method(self.method)
        if not method.combines:
            return "none"
        return self.combine or method.default_combine(self.style)

    def pivot_check_on(self) -> bool:
        """Whether the run checks its translations: never for a method that does not pivot;
        else as asked, and by default only when a combination rule asks the direct question
        anyway (on hau dev the check then kept F1 and saved a quarter of the calls, while with
        --combine none, the paper's method, it cost F1: README, Pivot check)."""
        if not get_method(self.method).checks_pivot:
            return False
        if self.pivot_check is not None:
            return self.pivot_check
        return self.combine_rule() != "none"

    @field_validator("translator")
    @classmethod
    def _translator(cls, v: str) -> str:
        kind, _, arg = v.partition(":")
        if not (v == "llm" or (kind in ("file", "mt") and arg)):
            raise ValueError(f"unknown translator {v!r}; use llm, file:PATH or mt:DIR")
        return v

    @field_validator("annotator")
    @classmethod
    def _annotator(cls, v: str) -> str:
        kind, _, arg = v.partition(":")
        if not (v == "llm" or kind == "spacy" or (kind == "file" and arg)):
            raise ValueError(f"unknown annotator {v!r}; use llm, spacy[:MODEL] or file:PATH")
        return v

    @field_validator("batch_sentences", "concurrency")
    @classmethod
    def _at_least_one(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("shots", "max_retries")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    # A float that is NaN or infinite cannot be sent (JSON has no such number: the request would
    # fail while being built) and makes no limit; each check names what a working value is.
    @field_validator("temperature", "retry_initial")
    @classmethod
    def _finite_non_negative(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"must be a finite number >= 0, got {v}")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"must be a number of seconds > 0, got {v}")
        return v

    @field_validator("rpm", "tpm")
    @classmethod
    def _rate(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError(f"must be a finite number > 0 (leave it out for no limit), got {v}")
        return v

    @field_validator("max_cost")
    @classmethod
    def _max_cost(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"must be a finite number of dollars >= 0, got {v}")
        return v

    def decoding_params(self) -> dict[str, Any]:
        """The parameters sent with every request (and part of every cache key)."""
        params: dict[str, Any] = {"temperature": self.temperature}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if self.seed is not None:
            params["seed"] = self.seed
        return params
