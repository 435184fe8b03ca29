"""Half an emoji (a lone surrogate) in a reply must not stop later steps: it reaches the next
step's prompt (a translation, the English entities in the fusion prompt), which is hashed for the
cache, counted and sent as UTF-8. Before, that failed on every rerun, since the reply is cached."""

from __future__ import annotations

import json

import pytest

from tf_prompt.cli import main
from tf_prompt.testing import LoopbackServer


@pytest.mark.parametrize("half", ["\\ud83d", "\ud83d"], ids=["escaped", "raw"])
@pytest.mark.parametrize("method", ["transfusion", "translate-test"])
def test_a_lone_surrogate_in_a_reply_reaches_the_next_step(tmp_path, capsys, half, method):
    reply = '{"entities": [{"text": "Ali' + half + '", "type": "PER"}]}'
    with LoopbackServer(lambda body: reply) as srv:
        out = tmp_path / "run"
        args = ["run", "--base-url", srv.base_url, "--model", "loopback", "--method", method,
                "--limit", "2", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
        code = main(args)
        err = capsys.readouterr().err
        assert "Traceback" not in err and code == 0, err
        sent = [json.dumps(r) for r in srv.requests]
        # the surrogate reaches a later prompt (raw: the translation; escaped: parsed English
        # entities in the fusion prompt), which carried U+FFFD in its place
        if half == "\ud83d" or method == "transfusion":
            assert any("\\ufffd" in s for s in sent)
        again = main(args)                                # the rerun is answered from the cache
        err = capsys.readouterr().err
        assert again == 0 and len(srv.requests) == len(sent), err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["complete"] is True and metrics["usage"]["calls"] == 0


def test_valid_text_is_left_exactly_as_it_is():
    from tf_prompt.util.jsontext import encodable as _encodable

    for text in ["plain", "Shehu Gusau ya isa Kano", "ọmọ Ẹ̀kọ́ \u00a0\u3000 😀 \U0001F1F3\U0001F1EC"]:
        assert _encodable(text) is text
    assert _encodable("a\ud83db\udc00") == "a\ufffdb\ufffd"
