"""The budget's worst case for one call, at its edges (client.py, step 2 of a call).

A call is sent only if its worst case fits: its counted prompt tokens -- plus 15% when the count
is approximate (another model's tokenizer) -- and `max_tokens` of output, or 4096 when no
`max_tokens` is set. Prices of $1 per token make the worst case a token count, so each cap below
sits exactly on, or one token under, the edge. Real HTTP to the loopback server; the server's
request log says whether the call was sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tf_prompt.backends.openai_compat import OpenAIBackend
from tf_prompt.llm.client import BudgetExceeded, ClientOptions, ModelClient
from tf_prompt.llm.cost import Price, PriceTable, Tokenizer, tokenizer_for
from tf_prompt.prompting.templates import Prompt

MESSAGES = [{"role": "system", "content": "You find named entities."},
            {"role": "user", "content": "Shehu Gusau ya isa Kano ranar Litinin, in ji Hukumar INEC."}]
PROMPT = Prompt(step="direct", template="direct.test", digest="0" * 12, messages=MESSAGES)
PER_TOKEN = 1_000_000.0   # USD per 1M tokens: $1 per token


def counter(exact: bool) -> Tokenizer:
    """cl100k_base counts, labelled exact (the model's own) or not (a stand-in for another's)."""
    enc = tokenizer_for("gpt-4")
    assert enc.exact
    return Tokenizer(enc.name, exact, None if exact else "a stand-in tokenizer", enc._encoding)


def sent(server, *, cap: float, exact: bool, max_tokens: int | None, price: Price) -> bool:
    """Whether one call with this cap reached the server (False: refused by the budget)."""
    before = len(server.requests)

    async def go() -> bool:
        params: dict[str, Any] = {"temperature": 0.0}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        client = ModelClient(OpenAIBackend(model="m", base_url=server.base_url), params,
                             options=ClientOptions(max_cost=cap, max_retries=0),
                             prices=PriceTable("test", "test", {"m": price}), tokenizer=counter(exact))
        try:
            await client.ask(PROMPT)
            return True
        except BudgetExceeded as e:
            assert "budget reached" in str(e)
            return False
        finally:
            await client.aclose()

    ok = asyncio.run(go())
    assert len(server.requests) - before == (1 if ok else 0)
    return ok


def test_approximate_counts_get_a_15_percent_margin(server) -> None:
    p = counter(True).count_messages(MESSAGES)
    assert p > 20                                      # large enough for 15% to be whole tokens
    prompt_only = Price(input=PER_TOKEN, output=0.0)   # the worst case is the prompt alone
    with_margin = int(p * 1.15) + 1
    assert with_margin > p + 1
    # an exact count needs no margin: the prompt (+1) is the worst case
    assert sent(server, cap=p + 1, exact=True, max_tokens=64, price=prompt_only)
    assert not sent(server, cap=p, exact=True, max_tokens=64, price=prompt_only)
    # the same count, approximate: 15% more must fit
    assert not sent(server, cap=p + 1, exact=False, max_tokens=64, price=prompt_only)
    assert not sent(server, cap=with_margin - 1, exact=False, max_tokens=64, price=prompt_only)
    assert sent(server, cap=with_margin, exact=False, max_tokens=64, price=prompt_only)


@pytest.mark.parametrize("max_tokens,worst_output", [(100, 100), (None, 4096)])
def test_worst_output_is_max_tokens_else_4096(server, max_tokens: int | None, worst_output: int) -> None:
    output_only = Price(input=0.0, output=PER_TOKEN)   # the worst case is the output alone
    assert not sent(server, cap=worst_output - 1, exact=True, max_tokens=max_tokens, price=output_only)
    assert sent(server, cap=worst_output, exact=True, max_tokens=max_tokens, price=output_only)


def test_worst_case_covers_a_prompt_written_to_the_providers_cache(tmp_path) -> None:
    """Anthropic bills a prompt-cache write above the input price (1.25x): a call whose whole
    prompt is written must still cost no more than the budget reserved for it, so --max-cost
    stays a cap. Real `anthropic` SDK against the loopback Messages API server, whose usage
    reports the marked prefix as written (first sight of it)."""
    pytest.importorskip("anthropic")
    from tf_prompt.backends.anthropic import AnthropicBackend
    from tf_prompt.testing.anthropic_server import AnthropicLoopback

    tok = counter(True)
    long = " ".join(["Shehu Gusau ya isa Kano ranar Litinin, in ji Hukumar INEC."] * 12)
    messages = [{"role": "system", "content": "You find named entities."}, {"role": "user", "content": long}]
    prompt = Prompt(step="direct", template="direct.test", digest="0" * 12, messages=messages,
                    fixed=len(long))   # the whole user message is the shared prefix
    p = tok.count_messages(messages)
    price = Price(input=PER_TOKEN, output=PER_TOKEN, cached_input=PER_TOKEN / 10, cache_write=PER_TOKEN * 1.25)
    old_worst = (p + 1) + 1   # every prompt token (+1) at the input price, one token of output

    def go(srv: AnthropicLoopback, cap: float) -> tuple[bool, float]:
        async def run() -> tuple[bool, float]:
            client = ModelClient(AnthropicBackend(model="claude-test", base_url=srv.base_url, api_key="k"),
                                 {"temperature": 0.0, "max_tokens": 1},
                                 options=ClientOptions(max_cost=cap, max_retries=0),
                                 prices=PriceTable("test", "test", {"claude-test": price}), tokenizer=tok)
            try:
                await client.ask(prompt)
                return True, client.budget.spent if client.budget else 0.0
            except BudgetExceeded:
                return False, client.budget.spent if client.budget else 0.0
            finally:
                await client.aclose()
        return asyncio.run(run())

    # the server counts what it caches with the same tokenizer, and answers one token
    with AnthropicLoopback(lambda body: "a", count_tokens=tok.count) as srv:
        ok, spent = go(srv, old_worst)
        assert spent <= old_worst, f"spent ${spent} of a ${old_worst} cap"
        assert not ok and srv.served == 0
    with AnthropicLoopback(lambda body: "a", count_tokens=tok.count) as srv:
        cap = (p + 1) * 1.25 + 1
        ok, spent = go(srv, cap)
        assert ok and srv.served == 1 and srv.cache_write_tokens > 0.8 * p
        assert spent <= cap
