"""Cache keys are a promise: a rerun after an upgrade must hit the replies it paid for.

Speed work touches everything on the request path (schema look-ups, template variables, the
backend's request building); these tests pin the key of a fixed request and the keys a whole
transfusion run produces, so any change to the prompt bytes or to the key derivation shows up
here instead of as a silently re-paid run. A deliberate prompt or key change updates the pins
(and says so in its commit).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tf_prompt.api import run_async
from tf_prompt.backends.function import FunctionBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cache import _LAST_RUN, ReplyCache, cache_key
from tf_prompt.settings import RunSettings
from tf_prompt.testing import oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]


def test_cache_key_of_a_fixed_request_is_pinned() -> None:
    identity = {"kind": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:8000/v1"}
    messages = [{"role": "system", "content": "You extract named entities."},
                {"role": "user", "content": "Sentence: Shehu Gusau ya isa Kano ranar Litinin ọ̀yọ́."}]
    params = {"temperature": 0.0, "max_tokens": 1024}
    key = cache_key(identity, messages, params, "direct.v2@0123456789ab")
    assert key == "fbebdbc608207ebaf8a9468538e380c3d8b6239a6095b96629ca94c46dc78268"


def _run_keys(tmp_path: Path, **settings: object) -> list[str]:
    sentences = read_conll(sample_path())[:3]
    # the replies the keys were pinned with: the oracle translating by echoing the source (its
    # earlier default), and the pivot check off, which then pivots through the echo as before
    respond = oracle_responder(sentences, LABELS, translation=lambda s: s.text)
    backend = FunctionBackend(model="pinned", fn=lambda messages: respond({"messages": messages}))
    cache_dir = tmp_path / "cache"
    run = RunSettings(model="pinned", cache_dir=str(cache_dir), progress=False, concurrency=2, pivot_check=False,
                      **settings)
    asyncio.run(run_async(run, sentences, backend=backend))
    cache = ReplyCache(cache_dir)
    try:
        return sorted(k for k in cache._cache.iterkeys() if k != _LAST_RUN)
    finally:
        cache.close()


def test_transfusion_run_sends_the_pinned_prompts(tmp_path: Path) -> None:
    """Every prompt of a default transfusion run (translate, annotate, fuse, direct) over the
    shipped sample: same bytes, same keys, so a cached rerun after this change is free."""
    keys = _run_keys(tmp_path, method="transfusion")
    assert keys == [
        "012b8689a0453ee008ebbf53dec44f919921bc90bd9d7f15c40df92defaebea2",
        "4d563f5338dd8b9600524d1bfe211acb38ab0dd8a5a04766a2eacce1848920e3",
        "808141a6f2455fd35d19a09a03dc905aa8300d591c846c091249ffbce062c1a8",
        "823151f56f5ba46ff2ff62aabd8d99a883b75380d8eb957bbe779538a4a3fd7a",
        "91f80f62136cab163d55857a54672b0c44af62a7ad0e62072ceab3340da8468c",
        "b20da69005e1ebfc392e17a79e3efbbe97ea8a35df61bc0b391936f0dd87f291",
        "b6d01cc0134843f912bbc54879bcc99084499bc89a82c4788f212b3ee46167c6",
        "b83a1413d616d0002687a938c73bab60dff70128b1fdceaad3ce4eda4bbe706e",
        "b89ca785b96e1283a7763913cf83370ded029ebc16a56cfb40e6de4bcb714755",
        "bdc760117c4900009fde95123f23b8dd72fa19723effac3976c1e6de00afb5f8",
        "d324bd5f95b9d8a9dd11d4c1184479a5b38b4cfebec5e010c78f685e8817dcaa",
        "fc21be0155921319630cce088243799e4ad627e8a5322d08a6cd1f579db7418a",
    ]


def test_few_shot_run_with_a_label_selection_sends_the_pinned_prompts(tmp_path: Path) -> None:
    """Examples and a label subset go through the cached template variables: still the same bytes."""
    keys = _run_keys(tmp_path, method="transfusion", shots=2, shots_from=str(sample_path()),
                     labels=["PER", "ORG", "LOC"])
    assert keys == [
        "382fccc14d7d10e2e4b8b55a1f3c600eb3b3268fa0457ea4645ad271fed5f676",
        "46321a01ea378838b67016626c927e3f4bfdd871d946829260f046e749eded75",
        "4d4ee1b82cebd69534ee286dc1b6e3c26cc47f0294f57e6a9f6590a858ed87a3",
        "76964143c3bca1280bde1392dbb0e428f0724cab33f8791923769027500e0fa7",
        "79d219908666b81b3252ebd3e7cd19da2526ad371f5ef3d477cede367a4159fe",
        "808141a6f2455fd35d19a09a03dc905aa8300d591c846c091249ffbce062c1a8",
        "91f80f62136cab163d55857a54672b0c44af62a7ad0e62072ceab3340da8468c",
        "98bc91ecc491aac0a4280ef503c71c8b4d3f7ed0dbfb45410cb09b57facf14cb",
        "ac3eb35ac9ba78d98e917ac0068156c08482aeb790101a10d3a3036701e50fbb",
        "b20da69005e1ebfc392e17a79e3efbbe97ea8a35df61bc0b391936f0dd87f291",
        "e669a2753a0232a6aaad5e443b2cd43f732f0cffe600b92a2f1da762495625dd",
        "f48150e236097feae5c342d5aa95824dc2ce26de70c00ab2fbbf080fc8578d64",
    ]
