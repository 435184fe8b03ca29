"""Provider prompt caching: every template puts what is the same for every sentence first, the
shared prefix found (Prompt.fixed) is that part, and the cache's tokens reach the usage, the reply
cache and the cost, for OpenAI (automatic caching, `cached_tokens`) and in `tf-prompt estimate`.

Anthropic's side, through the real SDK, is in tests/backends/test_anthropic.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tf_prompt.api import estimate
from tf_prompt.cli import main
from tf_prompt.data.conll import read_conll
from tf_prompt.data.datasets import sample_path
from tf_prompt.llm.cost import Price, PriceTable
from tf_prompt.prompting.templates import TemplateSet, packaged_prompts_dir
from tf_prompt.testing import LoopbackServer, oracle_responder

LABELS = ["PER", "ORG", "LOC", "DATE"]
LABEL_VARS = [
    {"name": "PER", "description": "People: the guideline of PER.", "class_name": "Person", "examples": ["Amina"]},
    {"name": "LOC", "description": "Places: the guideline of LOC.", "class_name": "Location", "examples": ["Kano"]},
]
EXAMPLES = [{"text": "Example sentence one about Kano .", "answer": '{"entities": [{"text": "Kano", "type": "LOC"}]}'},
            {"text": "Example sentence two about Amina .",
             "answer": '{"entities": [{"text": "Amina", "type": "PER"}]}'}]
#: The fixed text every rendering must hold in its shared prefix (when the template shows it).
FIXED = [lab["description"] for lab in LABEL_VARS] + [ex["text"] for ex in EXAMPLES] + [ex["answer"] for ex in EXAMPLES]


def sentence_vars(tag: str, n_items: int = 3) -> dict[str, Any]:
    """The per-sentence variables of every template, for sentence `tag` (two tags differ from
    their first character on, as two real sentences may)."""
    return {
        "text": f"{tag} Shehu Gusau ya isa Kano .",
        "translation": f"{tag} Shehu Gusau arrived in Kano .",
        "english_entities": [{"text": f"{tag} Shehu Gusau", "type": "PER"}],
        "hints": [{"text": f"{tag} Kano", "type": "LOC", "found": f"{tag} Kano"}],
        "items": [{"n": i + 1, "text": f"{tag} item {i}", "translation": f"{tag} tr {i}",
                   "english_entities": [{"text": f"{tag} x", "type": "PER"}]} for i in range(n_items)],
    }


def all_templates() -> list[tuple[str | None, str]]:
    """(--prompts variant or None, template name) for every packaged template file."""
    found = []
    root = packaged_prompts_dir()
    for path in sorted(root.rglob("*.jinja")):
        variant = None if path.parent == root else path.parent.name
        found.append((variant, path.name[: -len(".jinja")]))
    return found


@pytest.mark.parametrize(("variant", "name"), all_templates(),
                         ids=[f"{v or 'packaged'}/{n}" for v, n in all_templates()])
def test_every_template_puts_its_fixed_text_before_the_sentence(variant: str | None, name: str) -> None:
    """Rendered for two sentences, the part the two prompts share holds every guideline and
    example the prompt shows, and Prompt.fixed is exactly that shared part: after it comes only
    the sentence's own data and a few words of framing ("Sentence:", "Answer:")."""
    fixed_vars = {"language": "Hausa", "labels": LABEL_VARS, "label_names": ["PER", "LOC"], "examples": EXAMPLES}
    ts = TemplateSet(variant)
    step = name.split(".")[0]
    a = ts.render(step, template_step=name, **fixed_vars, **sentence_vars("Alpha"))
    b = TemplateSet(variant).render(step, template_step=name, **fixed_vars, **sentence_vars("Bravo"))
    assert [m["role"] for m in a.messages] == [m["role"] for m in b.messages]
    for ma, mb in zip(a.messages[:-1], b.messages[:-1], strict=True):   # system messages: all fixed
        assert ma == mb
    ua, ub = a.messages[-1]["content"], b.messages[-1]["content"]
    shared = next((i for i, (x, y) in enumerate(zip(ua, ub, strict=False)) if x != y), min(len(ua), len(ub)))
    assert a.fixed == b.fixed == shared, (a.fixed, b.fixed, shared)
    for text in FIXED:
        if text in ua:
            assert ua.index(text) + len(text) <= shared, f"{text!r} comes after the sentence in {name}"
    # what follows the shared prefix is the sentence's data and short framing only
    rest = ua[shared:]
    for value in sorted(strings(sentence_vars("Alpha")), key=len, reverse=True):
        rest = rest.replace(value, "")
    items = len(sentence_vars("Alpha")["items"]) if name.startswith("batch_") else 0
    # (gollie_tf keeps ~160 characters of code comments after `text`: ~35 tokens, not worth
    # changing a prompt and its cached replies for)
    assert len(rest) < 200 + 100 * items, f"{name}: {len(rest)} other characters after the shared prefix:\n{rest}"


def strings(value: Any) -> set[str]:
    """Every string in `value` (nested lists and dicts)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings(v) for v in value)) if value else set()
    return set()


def test_a_second_template_set_finds_the_same_prefix_and_remembers_it() -> None:
    """The prefix found by a second rendering is kept per template: a later sentence whose
    prompt starts with it is not rendered twice, and gets the same length."""
    ts = TemplateSet()
    fixed_vars = {"language": "Hausa", "labels": LABEL_VARS, "label_names": ["PER", "LOC"], "examples": EXAMPLES}
    first = ts.render("direct", **fixed_vars, text="Amina ta je Kano .")
    assert 0 < first.fixed < len(first.messages[-1]["content"])
    assert first.messages[-1]["content"][first.fixed:].startswith("Amina")
    second = ts.render("direct", **fixed_vars, text="Kano ce birni .")
    assert second.fixed == first.fixed
    assert second.messages[-1]["content"][second.fixed:].startswith("Kano ce")
    # other fixed variables (another language): the remembered prefix does not fit, found anew
    other = ts.render("direct", **{**fixed_vars, "language": "Yoruba"}, text="Amina lo si Eko .")
    assert other.messages[-1]["content"][other.fixed:].startswith("Amina lo")


def test_price_table_prices_cache_reads_and_writes() -> None:
    table = PriceTable(date="d", source="s", prices={
        "m": Price(input=2.0, output=8.0, cached_input=0.2, cache_write=2.5),
        "plain": Price(input=2.0, output=8.0)})
    # 1M prompt tokens of which 600k read and 100k written, 1M output tokens
    assert table.cost("m", 10**6, 10**6, cache_read=600_000, cache_write=100_000) == pytest.approx(
        0.3 * 2.0 + 0.6 * 0.2 + 0.1 * 2.5 + 8.0)
    # a model without cache prices is charged plain input: an upper bound
    assert table.cost("plain", 10**6, 0, cache_read=600_000) == pytest.approx(2.0)
    # anthropic: and openai: prefixes select a backend, not a price
    real = PriceTable.load()
    assert real.lookup("anthropic:claude-sonnet-4-5") == real.lookup("claude-sonnet-4-5") is not None
    sonnet = real.lookup("claude-sonnet-4-5-20250929")
    assert sonnet is not None and sonnet.cached_input == pytest.approx(sonnet.input * 0.1)
    assert sonnet.cache_write == pytest.approx(sonnet.input * 1.25)


def write_prices(path: Path, model: str, minimum: int) -> Path:
    path.write_text(json.dumps({"date": "test", "models": {model: {
        "input": 1.0, "output": 4.0, "cached_input": 0.1, "cache_write": 1.25, "cache_min_tokens": minimum}}}))
    return path


def test_estimate_assumes_the_prefix_cached_after_the_first_concurrent_calls(tmp_path: Path, monkeypatch) -> None:
    """Per template, the first --concurrency calls write the prefix and later ones read it; the
    cost is priced so, and is below the cost without caching; below the minimum nothing is cached."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-estimate")
    model = "anthropic:claude-test"
    prices = write_prices(tmp_path / "p.json", "claude-test", 100)
    common = {"model": model, "method": "direct", "prices": str(prices), "cache_dir": str(tmp_path / "c"),
              "progress": False}
    one = estimate(**common, concurrency=1)
    four = estimate(**common, concurrency=4)
    n = one["calls"]
    assert n == 12
    assert one["cache_write_tokens"] > 0 and one["cache_read_tokens"] > 0
    per_prefix = one["cache_write_tokens"]                      # one write of the prefix
    assert one["cache_read_tokens"] == per_prefix * (n - 1)     # then every call reads it
    assert four["cache_write_tokens"] == 4 * per_prefix
    assert four["cache_read_tokens"] == per_prefix * (n - 4)
    expected = (one["prompt_tokens"] - per_prefix * n + per_prefix * 1.25 + per_prefix * (n - 1) * 0.1
                + one["completion_tokens"] * 4.0) / 1e6
    assert one["cost_usd"] == pytest.approx(expected, abs=1e-6)   # (metrics round to 6 decimals)
    assert one["cost_usd_without_prompt_cache"] == pytest.approx(
        (one["prompt_tokens"] + 4 * one["completion_tokens"]) / 1e6)
    assert one["cost_usd"] < four["cost_usd"] < one["cost_usd_without_prompt_cache"]
    # the same prompts under a minimum above their prefix: no caching assumed
    high = estimate(**{**common, "prices": str(write_prices(tmp_path / "q.json", "claude-test", 10**6))})
    assert high["cache_read_tokens"] == high["cache_write_tokens"] == 0
    assert high["cost_usd"] == pytest.approx(high["cost_usd_without_prompt_cache"], abs=1e-6)


def test_estimate_cli_says_approximate_and_shows_the_saving(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-estimate")
    prices = write_prices(tmp_path / "p.json", "claude-test", 100)
    assert main(["estimate", "--model", "anthropic:claude-test", "--method", "direct", "--prices", str(prices),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "approximate counts" in out
    assert "provider prompt cache" in out and "saving" in out


def test_openai_cached_tokens_reach_metrics_cache_and_cost(tmp_path: Path) -> None:
    """The OpenAI loopback reports cached_tokens like OpenAI's automatic caching: metrics.json
    counts them (total and per step), the reply cache stores them, and the cost prices them at
    gpt-4o-mini's cached-input price."""
    sentences = read_conll(sample_path())
    out, cache = tmp_path / "out", tmp_path / "cache"
    with LoopbackServer(oracle_responder(sentences, LABELS), prompt_cache_min=64) as srv:
        args = ["run", "--model", "gpt-4o-mini", "--base-url", srv.base_url, "--method", "transfusion",
                "--out", str(out), "--cache-dir", str(cache), "--concurrency", "1"]
        assert main(args) == 0
        usage = json.loads((out / "metrics.json").read_text())["usage"]
        assert srv.cached_tokens > 0
        assert usage["cache_read_tokens"] == srv.cached_tokens
        assert usage["cache_write_tokens"] == 0
        assert sum(s["cache_read_tokens"] for s in usage["by_step"].values()) == srv.cached_tokens
        price = PriceTable.load().lookup("gpt-4o-mini")
        assert price is not None and price.cached_input is not None
        expected = ((usage["prompt_tokens"] - srv.cached_tokens) * price.input + srv.cached_tokens * price.cached_input
                    + usage["completion_tokens"] * price.output) / 1e6
        assert usage["cost_usd"] == pytest.approx(expected, abs=1e-6)
        served = srv.served
        # the reply cache holds the cached_tokens of each reply: a rerun sends nothing
        import diskcache

        with diskcache.Cache(str(cache / "replies")) as dc:
            stored = [dc[k] for k in dc if not str(k).startswith("__")]
        assert sum(r.get("cache_read_tokens", 0) for r in stored) == srv.cached_tokens
        assert main([*args, "--overwrite"]) == 0
        assert srv.served == served


def test_a_template_with_the_sentence_before_its_last_message_claims_no_shared_prefix(tmp_path: Path) -> None:
    """A --prompts template that puts the sentence in its system message: nothing is the same for
    every sentence from the first message on. Marking the last message (or, with no prefix, the
    system prompt) for Anthropic's cache would write a new prefix on every call, billed at 1.25x
    input and never read; and the estimate would assume reads. No prefix is claimed, nothing is
    marked, and the estimate assumes no caching."""
    pytest.importorskip("anthropic")
    from tf_prompt.backends.anthropic import request_body

    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "direct.v9.jinja").write_text(
        "{% block system %}Annotate this sentence: {{ text }}{% endblock %}"
        "{% block user %}Answer with the entities as JSON. Types: {{ label_names | join(', ') }}.{% endblock %}",
        encoding="utf-8")
    ts = TemplateSet(folder)
    for text in ("Amina ta je Kano .", "Kano ce birni ."):
        prompt = ts.render("direct", text=text, label_names=["PER", "LOC"])
        assert prompt.fixed < 0
        body = request_body("claude-test", prompt.messages, {}, prompt.fixed)
        assert "cache_control" not in json.dumps(body)
        # the text sent is still exactly the prompt's
        assert body["system"][0]["text"] == prompt.messages[0]["content"]
        assert body["messages"][0]["content"] == prompt.messages[1]["content"]
