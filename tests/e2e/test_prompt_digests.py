"""Every method's prompts, pinned: a restructure of the code must not change one byte of them.

Each configuration below runs over the first sentences of the shipped sample with a small
deterministic responder (defined here, so that a change to the test oracle cannot move these
digests), and pins two digests: one over every message list the model was sent, one over the
cache keys of the run (which also cover template identities and decoding parameters). A changed
digest means a cached rerun would pay again; a deliberate prompt change updates the pin and says
so in its commit. The digests were taken on main at 8e3a8b4, before the move into subpackages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.api import run_async
from tf_prompt.backends.function import FunctionBackend
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cache import _LAST_RUN, ReplyCache
from tf_prompt.settings import RunSettings

_WORD = re.compile(r"\b[A-Z][a-z]{2,}\b")


def _respond(messages: list[dict[str, str]]) -> str:
    """A reply that depends only on the prompt: capitalised words of the last message as
    entities, and as the translation, in one JSON object (numbered items for batched prompts)."""
    last = messages[-1]["content"]
    words = _WORD.findall(last)[-4:]
    entities = [{"text": w, "type": ("PER", "LOC")[i % 2]} for i, w in enumerate(words[:2])]
    answer: dict[str, Any] = {"translation": " ".join(words) or "nothing", "entities": entities,
                              "english_entities": entities}
    if "items" in last.lower() or re.search(r"(?m)^\s*\[?1[\].:)]", last):
        return json.dumps({str(i): answer for i in (1, 2, 3)})
    return json.dumps(answer)


CONFIGS: dict[str, dict[str, Any]] = {
    "direct": dict(method="direct"),
    "direct-gollie": dict(method="direct", style="gollie"),
    "direct-shots": dict(method="direct", shots=2),
    "direct-batch": dict(method="direct", batch_sentences=3),
    "translate-test": dict(method="translate-test"),
    "translate-test-gollie": dict(method="translate-test", style="gollie"),
    "translate-test-batch": dict(method="translate-test", batch_sentences=3),
    "transfusion": dict(method="transfusion"),
    "transfusion-none": dict(method="transfusion", combine="none"),
    "transfusion-shots-labels": dict(method="transfusion", shots=2, labels=["PER", "LOC"]),
    "transfusion-batch": dict(method="transfusion", batch_sentences=3),
    "transfusion-hints": dict(method="transfusion", prompts="hints"),
    "transfusion-gollie": dict(method="transfusion", style="gollie"),
    "transfusion-gollie-vote": dict(method="transfusion", style="gollie", combine="vote"),
    "transfusion-1call": dict(method="transfusion-1call"),
    "transfusion-1call-batch": dict(method="transfusion-1call", batch_sentences=3),
}

PINS: dict[str, tuple[str, str]] = {
    "direct": ("773e9827db51836f163de498f1f528ab417287d0260b30971475cd8af6121c32",
        "62cbf962c47528c0f6bcaa92c4db49cbff7125efa945df76d789f16863abc7d4"),
    "direct-batch": ("023e70f20dea9daa33a0e829d94a68072c666975769b097cc08f2ecb2097b2f4",
        "7d7895963822c9281961a36c1fce4a6728ca73fceda4003a157fc4b06dd1f12b"),
    "direct-gollie": ("fd4c940089fdaccd9072d1b9cdfe15024bc866e6cf19d882e7fc7c515d60b355",
        "ddc1786453a4c7f16f57846fa186be1d58b8f8921c488a36b30c4e55be55754d"),
    "direct-shots": ("0892e8cb07876e38a72200f5c1785f05cbbb77f4151e1b1dbee7c36148961954",
        "d50444a2c28db783f823a1854bb8a843ce9b3f24e4346ba87e61e0e0eb595a58"),
    "transfusion": ("964a213c8164391f27864826076ebba57a2319fa0703d4139585f23624e5fb79",
        "b4d06e412dff173db1d8d567f1eb34d47f32413d0776f94f05af25629fc1aa54"),
    "transfusion-1call": ("dbbaf84292f93dbb053bcd3fb79a07994d57f09897c1b4549ab484c9de6a95a2",
        "61bceb124f549a51317dec740f6d08cc4cc03b07e0dbefd1e24d8c64ec3ca05c"),
    "transfusion-1call-batch": ("7fe6f34fab148a2e60b84136e6133043d88f09bcf812e63d0580068cfaedd53f",
        "600e40699d5602c0e12fcb19626cce16feacf887a03d938ac9b4780554dcb684"),
    "transfusion-batch": ("d6e7239c2760db2ff9b97d477ad281d2cd9bea9da8c2825ddc41812c923f02b0",
        "3d7aa2e7fe71eec8ccd000f8c177363818fe5367b246303278c8419ad1612c85"),
    "transfusion-gollie": ("d278f358e600c9809be69fe0ec9be698b9b9338160269195bac6b9427eac4930",
        "17163e4ff2f6f7abcf8dc0036ede5dcef66f9d7bf6bd3ab1ec60e2a25cccfb64"),
    "transfusion-gollie-vote": ("629c8b4e25b633d0a4419b9c167b3b215fa78706f259f0e63257572742a6226d",
        "18d8c01153db4ee8e9c77aa4157ecb1ddee513e69f3c7b2eddb54ce3df9f006e"),
    "transfusion-hints": ("bb61c843f896d3c19d049d1625530877a1f879ce791b5fe5a20a344f01658796",
        "74ed4f7c142a9d19f2343c4e6016e9131a26183b09449f8ae9affdd8a4f55ea1"),
    "transfusion-none": ("58642efb2067441cfea9a5abfd25525c77725e157d553428de45443ed72fe3ae",
        "401a6677afeb7e0a9000b0426d11a550314a1e09c85edfc3e3808b294b7b01fa"),
    "transfusion-shots-labels": ("0abdd7b8145ba2a7317c656b69170b541d3efda561d4a85229cf0cccb83636a1",
        "d625682af44e61aa81bdb1963f928486c0238a4ce764651ba51c86d3c5fcee94"),
    "translate-test": ("c193df14084a825599c85f5b3fdc218082d0aaf5e91e4073fd423b2d11e32f6f",
        "d79da42d78ce2b70cf2cc5e50772862935e0312ac9fa4a7cf7e4b00ce27059a2"),
    "translate-test-batch": ("fedddf5bbd85e5d6b40784d7dcdeedea5a9b64044cf2ad6bbd7e87955c9ed0d0",
        "28f3bd3903864b6684e89538650adf264c3ecf06e74b583d9738157b2f694ed2"),
    "translate-test-gollie": ("4d05f5828bf089c115ae419f24d1fa6a84d5ebfab9333453e31975239dc492ba",
        "0439a28a0fb5dbad3b37b5fc5ca1e3f8058515782bb7c414798b76c3fe89145a"),
}


def _digests(tmp_path: Path, settings: dict[str, Any]) -> tuple[str, str]:
    sentences = read_conll(sample_path())[4:10]
    sent: list[str] = []

    def fn(messages: list[dict[str, str]]) -> str:
        sent.append(json.dumps(messages, ensure_ascii=False, sort_keys=True))
        return _respond(messages)

    extra = {"shots_from": str(sample_path())} if settings.get("shots") else {}
    run = RunSettings(model="pinned", cache_dir=str(tmp_path / "cache"), progress=False, concurrency=3,
                      **settings, **extra)
    asyncio.run(run_async(run, sentences, backend=FunctionBackend(model="pinned", fn=fn)))
    cache = ReplyCache(tmp_path / "cache")
    try:
        keys = sorted(k for k in cache._cache.iterkeys() if k != _LAST_RUN)
    finally:
        cache.close()
    prompts = hashlib.sha256("\n".join(sorted(sent)).encode()).hexdigest()
    return prompts, hashlib.sha256("\n".join(keys).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prompts_and_cache_keys_are_unchanged(tmp_path: Path, name: str) -> None:
    assert _digests(tmp_path, CONFIGS[name]) == PINS[name]
