"""Hugging Face `transformers` models on this machine: checkpoints on disk (a TransFusion-tuned
GoLLIE, the paper's fine-tuning path), hub ids already in the HF cache, or a GGUF file's weights.

Why in process rather than through a server: fine-tuned research checkpoints rarely have a
serving setup, and a laptop run of a few hundred sentences should need nothing but the folder.

Design points:
- The weights load lazily on the first call and once per process (a module-level cache shared by
  every backend instance), because loading dominates the cost of short runs. The tokenizer loads on
  its own, so counting tokens for `tf-prompt estimate` never pulls the weights into memory.
- `generate` blocks and is not thread safe, so it runs in a worker thread (`asyncio.to_thread`),
  one call at a time: the event loop stays free for the cache, progress and other sentences.
- Decoding is greedy unless `temperature > 0`: repeated runs must give the same replies, which is
  also what makes the reply cache meaningful.
- Models with a chat template are prompted through it. Models without one (base models such as
  GoLLIE) get a plain-text transcript, see `raw_prompt`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_prompt.backends.base import Backend, BackendError, Completion
from tf_prompt.backends.structured import requested_schema
from tf_prompt.llm.cost import Tokenizer

__all__ = ["RAW_STOP", "HFBackend", "raw_prompt"]

_DTYPES = ("auto", "float32", "bfloat16")
#: Files whose size and mtime identify the weights of a local checkpoint.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
#: Small files whose content changes what the model replies.
_CONFIG_FILES = ("config.json", "generation_config.json")
#: In raw mode the model writing the next turn's marker means its own reply is over.
RAW_STOP = ("\n\nUser:", "\n\nSystem:")

_LOAD_LOCK = threading.Lock()
_TOKENIZERS: dict[tuple[Any, ...], Any] = {}
_MODELS: dict[tuple[Any, ...], _Loaded] = {}
_threads_set = False


def raw_prompt(messages: list[dict[str, str]]) -> str:
    """The prompt for a model without a chat template: one paragraph per message, then the cue.

        System: <system message>

        User: <user message>

        Assistant: <an earlier reply, e.g. a few-shot example>

        Assistant:

    Plain role labels are what base models have seen most in pre-training dialogue text, and
    they need no special tokens the tokenizer may not have.
    """
    parts = [f"{m.get('role', 'user').capitalize()}: {m.get('content') or ''}" for m in messages]
    parts.append("Assistant:")
    return "\n\n".join(parts)


def chat_messages(tokenizer: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages as the model's chat template takes them.

    Some templates (Gemma's, Mistral's older ones) reject a system message; it is then folded
    into the first user message, which is what those models were trained to expect. Shared with
    the LoRA trainer (tf_prompt/finetune/lora.py) so a tuned model is trained on exactly the
    prompts it is later asked.
    """
    from jinja2.exceptions import TemplateError
    try:
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return messages
    except TemplateError:
        if not messages or messages[0].get("role") != "system" or len(messages) < 2:
            raise
        system, first, *rest = messages
        return [{**first, "content": f"{system['content']}\n\n{first.get('content') or ''}"}, *rest]


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[Any, bool]:
    """Input tensors for `messages`, and whether the raw transcript (not a chat template) was
    used: models without a chat template get `raw_prompt`."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(chat_messages(tokenizer, messages), add_generation_prompt=True,
                                             return_tensors="pt", return_dict=True), False
    return tokenizer(raw_prompt(messages), return_tensors="pt"), True


def _truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _one_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception message: HF errors span many lines, ours must not."""
    lines = str(e).strip().splitlines()
    return " ".join((lines[0] if lines else type(e).__name__).split())[:limit]


@dataclass
class _Loaded:
    """A model in memory with its tokenizer and the lock that serialises its `generate` calls;
    `guide` is the tokenizer as llguidance sees it, built on the first constrained call (~1 s)."""

    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    guide: Any = None


# --- constrained answers -------------------------------------------------------------------------
#
# A constrained call (`response_format` json_schema, see backends/structured.py) is decoded under a
# logits processor that masks, at every step, each token that would take the answer out of the
# schema. The masks come from llguidance (a Rust engine in a 3 MB wheel with no dependencies, CPU
# only, reading any fast HF tokenizer). It refuses keywords it does not implement rather than
# enforcing less than was asked.

#: Whitespace between JSON tokens: what llama.cpp's grammars allow (a space, or one or two newlines
#: and an indent), so both engines may pretty-print as models like to, but never loop on blanks.
_JSON_WHITESPACE = r"(?: |\n{1,2}[ \t]{0,20})"


class _SchemaMask:
    """Logits processor: only tokens the schema allows next keep their score (once the answer is
    complete, only EOS).

    `generate` calls it with the ids so far and the next-token scores; the tokens sampled since
    the last call are fed to the matcher first.
    """

    def __init__(self, matcher: Any, n_prompt: int, where: str):
        self._matcher = matcher
        self._seen = n_prompt
        self._where = where

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch
        for token in input_ids[0, self._seen:].tolist():
            if not self._matcher.consume_token(token):
                raise BackendError(f"{self._where}: the constrained decoder lost track: "
                                   f"{' '.join(self._matcher.get_error().split())}")
        self._seen = int(input_ids.shape[-1])
        allowed = torch.frombuffer(bytearray(self._matcher.compute_logit_bias()), dtype=torch.uint8).bool()
        n = min(int(allowed.shape[0]), int(scores.shape[-1]))
        masked = torch.full_like(scores, float("-inf"))
        keep = allowed[:n].to(scores.device)
        masked[:, :n] = torch.where(keep, scores[:, :n], masked[:, :n])
        return masked


def _schema_mask(loaded: _Loaded, schema: dict[str, Any], n_prompt: int, eos_ids: list[int],
                 where: str) -> _SchemaMask:
    """The logits processor for one constrained call; a schema llguidance cannot enforce fully
    is one BackendError line. Imports llguidance here: unconstrained runs never load it."""
    try:
        import llguidance
        import llguidance.hf
    except ImportError:
        raise BackendError(f"{where}: constrained answers need llguidance: pip install -e '.[hf]'") from None
    if loaded.guide is None:
        try:
            loaded.guide = llguidance.hf.from_tokenizer(loaded.tokenizer, eos_token=eos_ids or None)
        except ValueError as e:    # a slow (Python) tokenizer: llguidance reads fast ones only
            raise BackendError(f"{where}: cannot constrain answers with this tokenizer: {_one_line(e)}") from None
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": True, "whitespace_pattern": _JSON_WHITESPACE})
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, loaded.guide)
    if is_error:
        why = " ".join((messages[0] if messages else "invalid schema").split())
        raise BackendError(f"{where}: cannot constrain the answer to this JSON schema: {why}")
    matcher = llguidance.LLMatcher(loaded.guide, grammar)
    if matcher.is_error():
        raise BackendError(f"{where}: cannot constrain the answer to this JSON schema: "
                           f"{' '.join(matcher.get_error().split())}")
    return _SchemaMask(matcher, n_prompt, where)


class _HFEncoding:
    """Lets `tf_prompt.llm.cost.Tokenizer` count with the model's own tokenizer (tiktoken's interface)."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer

    def encode_ordinary(self, text: str) -> list[int]:
        return self._tokenizer(text, add_special_tokens=False).input_ids


def _set_threads() -> None:
    """Use the CPUs this process may run on, never more than torch's own default.

    torch counts the host's cores, which in a container or under `taskset` can be far more
    than the process is allowed, and oversubscribed threads make CPU inference much slower.
    An explicit OMP_NUM_THREADS is left to torch.
    """
    global _threads_set
    if _threads_set:
        return
    _threads_set = True
    if os.environ.get("OMP_NUM_THREADS"):
        return
    import torch
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(torch.get_num_threads(), allowed)))


@dataclass
class HFBackend(Backend):
    """A causal LM run with `transformers.generate` on this machine.

    `model` is a local directory or a hub repo id (found in the HF cache, or downloaded when the
    hub is reachable). With `gguf_file`, the weights come from that GGUF file in the directory
    (dequantized to `dtype`); `model` may also be the path of a `.gguf` file itself.
    """

    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = False
    gguf_file: str | None = None
    max_new_tokens: int = 512
    kind: str = field(default="hf", init=False)

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise BackendError(f"hf: dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        path = Path(self.model).expanduser()
        if self.gguf_file is None and path.suffix == ".gguf" and path.is_file():
            self._source, self.gguf_file = str(path.parent), path.name
        else:
            self._source = str(path) if path.is_dir() else self.model
        self._identity: dict[str, Any] | None = None
        self._async_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()

    # -- what the replies depend on ---------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return Path(self._source).is_dir()

    def _local_revision(self) -> str:
        """A hash of the config files' content and the weight files' names, sizes and mtimes:
        cheap on multi-GB checkpoints, and any re-save or fine-tuning step changes it."""
        root = Path(self._source)
        h = hashlib.sha256()
        for name in _CONFIG_FILES:
            p = root / name
            if p.is_file():
                h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
        weights = [root / self.gguf_file] if self.gguf_file else sorted(
            p for p in root.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
        for p in weights:
            if p.is_file():
                st = p.stat()
                h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        return h.hexdigest()[:16]

    def _hub_revision(self) -> str | None:
        """The commit the HF cache (or hub) resolves the id to; None when it cannot be resolved
        (then loading fails too, with the error that says what to do)."""
        try:
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(self._source, trust_remote_code=self.trust_remote_code)
        except Exception:
            return None
        return getattr(config, "_commit_hash", None)

    def identity(self) -> dict[str, Any]:
        """Kind, model, revision and GGUF file; computed once per instance, so an instance keeps
        answering with the weights it first saw (see `_load`)."""
        if self._identity is None:
            revision = self._local_revision() if self.is_local else self._hub_revision()
            self._identity = {"kind": self.kind, "model": self.model, "revision": revision,
                              "gguf_file": self.gguf_file}
        return dict(self._identity)

    # -- loading ----------------------------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (self._source, self.gguf_file, self.trust_remote_code, self.identity()["revision"])

    def _not_found(self, e: BaseException) -> BackendError:
        if not self.is_local and self.model.startswith(("/", ".", "~")):
            return BackendError(f"hf: {self.model} is not a directory: point the model to a local "
                                f"checkpoint folder (with config.json) or a hub repo id")
        if self.is_local:
            return BackendError(f"hf: cannot load {self.model}: {_one_line(e)}")
        return BackendError(
            f"hf: model {self.model!r} could not be loaded from disk or the hub (offline?): set "
            f"HF_HUB_OFFLINE=1 with the model in the HF cache, or point to a local directory "
            f"({type(e).__name__})")

    def _load_tokenizer(self) -> Any:
        key = self._key()
        with _LOAD_LOCK:
            if key not in _TOKENIZERS:
                try:
                    from transformers import AutoTokenizer
                    kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
                    if self.gguf_file:
                        kwargs["gguf_file"] = self.gguf_file
                    _TOKENIZERS[key] = AutoTokenizer.from_pretrained(self._source, **kwargs)
                except ImportError as e:
                    raise BackendError(f"hf: {_one_line(e)}: pip install torch transformers") from None
                except Exception as e:
                    raise self._not_found(e) from None
            return _TOKENIZERS[key]

    def _load(self) -> _Loaded:
        """The model for this instance's revision, loading it on first use. Older revisions of
        the same checkpoint are dropped so a re-saved model does not stay in memory twice."""
        key = self._key()
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        tokenizer = self._load_tokenizer()
        with _LOAD_LOCK:
            if key in _MODELS:
                return _MODELS[key]
            try:
                import torch
                from transformers import AutoModelForCausalLM
                from transformers.utils import logging as hf_logging
                _set_threads()
                kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code,
                                          "dtype": self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)}
                if self.gguf_file:
                    kwargs["gguf_file"] = self.gguf_file
                # The loading bar would tear through the run's own progress line.
                bar = hf_logging.is_progress_bar_enabled()
                hf_logging.disable_progress_bar()
                try:
                    # Any: transformers' own annotations of .to() reject what it returns here
                    model: Any = AutoModelForCausalLM.from_pretrained(self._source, **kwargs)
                finally:
                    if bar:
                        hf_logging.enable_progress_bar()
                model.to(self.device).eval()
            except ImportError as e:
                raise BackendError(f"hf: {_one_line(e)}: pip install torch transformers") from None
            except Exception as e:
                raise self._not_found(e) from None
            for old in [k for k in _MODELS if k[:3] == key[:3]]:
                del _MODELS[old]
            _MODELS[key] = loaded = _Loaded(model, tokenizer)
            return loaded

    def tokenizer(self) -> Tokenizer:
        """The model's own tokenizer, exact; loads the tokenizer files only, never the weights."""
        return Tokenizer(name=f"{self.model} (hf)", exact=True, _encoding=_HFEncoding(self._load_tokenizer()))

    # -- generation -------------------------------------------------------------------------

    def _encode(self, tokenizer: Any, messages: list[dict[str, str]]) -> tuple[Any, bool]:
        return encode_prompt(tokenizer, messages)

    def _generate(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        """One blocking generation (runs in a worker thread)."""
        import torch
        schema = requested_schema(params, f"hf: {self.model}")
        loaded = self._load()
        tok, model = loaded.tokenizer, loaded.model
        eos = model.generation_config.eos_token_id
        eos_ids = sorted(set(eos if isinstance(eos, list) else [eos]) - {None})
        stops = params.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        temperature = float(params.get("temperature") or 0.0)
        max_new = int(params.get("max_tokens") or self.max_new_tokens)
        with loaded.lock:
            try:
                inputs, raw = self._encode(tok, messages)
                if raw:
                    stops += [s for s in RAW_STOP if s not in stops]
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                n_in = int(inputs["input_ids"].shape[-1])
                gen: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": temperature > 0}
                if temperature > 0:
                    gen["temperature"] = temperature
                    if params.get("top_p") is not None:
                        gen["top_p"] = float(params["top_p"])
                else:   # the checkpoint's sampling defaults must not leak into greedy decoding
                    gen.update(temperature=None, top_p=None, top_k=None)
                if params.get("seed") is not None:
                    torch.manual_seed(int(params["seed"]))
                if tok.pad_token_id is None and tok.eos_token_id is not None:
                    gen["pad_token_id"] = tok.eos_token_id
                if stops:   # stop as soon as one is written; the text is truncated below anyway
                    gen.update(stop_strings=stops, tokenizer=tok)
                if schema is not None:
                    from transformers import LogitsProcessorList
                    gen["logits_processor"] = LogitsProcessorList(
                        [_schema_mask(loaded, schema, n_in, eos_ids, f"hf: {self.model}")])
                with torch.inference_mode():
                    out = model.generate(**inputs, **gen)
            except BackendError:
                raise
            except Exception as e:
                raise BackendError(f"hf: generation failed for {self.model}: {type(e).__name__}: "
                                   f"{_one_line(e)}") from None
        new = out[0, n_in:]
        text, stopped = _truncate_at_stop(tok.decode(new, skip_special_tokens=True), stops)
        ended = stopped or (len(new) > 0 and int(new[-1]) in eos_ids) or len(new) < max_new
        return Completion(text=text.strip(), prompt_tokens=n_in, completion_tokens=len(new),
                          finish_reason="stop" if ended else "length", model=self.model)

    def _async_lock(self) -> asyncio.Lock:
        """One asyncio lock per event loop, so waiting calls queue here instead of each holding
        a worker thread (an asyncio.Lock cannot be shared across loops)."""
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    async def complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Completion:
        async with self._async_lock():
            return await asyncio.to_thread(self._generate, messages, params)
