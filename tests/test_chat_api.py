"""The embedding API (qa.chat): cleaning, rendering within limits, escaping, concurrency."""

from __future__ import annotations

import importlib.util
import io
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from qa.chat import (
    DINGTALK, FEISHU, MARKDOWN, SLACK, TEXT, WECOM, Chat, clean_question, fit_text, render,
)
from qa.responses import Answer, Citation, IndexInfo, Scores
from tests.conftest import ROOT

QUESTION = "Redis 缓存默认多久过期？"


@pytest.fixture(scope="module")
def chat(assistant):
    return Chat(assistant, max_question_chars=500)


def _answer(text: str, citations: list[Citation]) -> Answer:
    return Answer(
        question="q", answer=text, abstained=False, confidence=0.9, citations=citations, took_ms=1.0,
        index=IndexInfo(generation="gen-x", model="m"),
    )


def _cite(n: int, title: str = "标题", url: str | None = None, low: bool = False, heading: str = "一节") -> Citation:
    return Citation(
        n=n, title=title, path=f"docs/a{n}.md", url=url, heading=heading, text="t", start=0, end=1,
        line_start=n, line_end=n + 1, low_confidence=low, scores=Scores(fused=0.1),
    )


def test_clean_question_strips_platform_mentions():
    assert clean_question("<@U0BOT|qa>  Redis &lt;TTL&gt;?\n", SLACK) == "Redis <TTL>?"
    assert clean_question("<!here> 看 <https://x.io/a|这篇> 里", SLACK) == "看 这篇 里"
    assert clean_question("@_user_1 Redis 过期？ @_all", FEISHU) == "Redis 过期？"
    assert clean_question("   多个\t空白\n\n", MARKDOWN) == "多个 空白"


def test_reply_answers_with_numbered_sources(chat):
    reply = chat.reply(f"<@U0BOT> {QUESTION}", SLACK)
    assert reply.status == "answered" and reply.question == QUESTION
    assert "30 分钟" in reply.text and "[1]" in reply.text and "*来源*" in reply.text
    assert reply.answer is not None and reply.answer.citations and reply.answer.timings.embed_ms >= 0
    assert 1 in reply.sources


def test_reply_is_polite_for_empty_too_long_and_unavailable(chat):
    assert chat.reply("  <@U1>  ", SLACK).status == "empty"
    long = chat.reply("问" * 501, WECOM)
    assert long.status == "too_long" and "501" in long.text and long.answer is None

    def no_index():
        raise RuntimeError("index missing")

    down = Chat(no_index).reply(QUESTION, TEXT)
    assert down.status == "unavailable" and "稍后" in down.text


def test_off_topic_abstains_without_sources(chat):
    reply = chat.reply("今天天气怎么样", MARKDOWN)
    assert reply.status == "abstained" and "来源" not in reply.text


@pytest.mark.parametrize("dialect", [SLACK, FEISHU, DINGTALK, WECOM, MARKDOWN, TEXT])
@pytest.mark.parametrize("limit", [60, 150, 400])
def test_render_always_fits_the_limit(chat, dialect, limit):
    answer = chat.reply(QUESTION, MARKDOWN).answer
    full = render(answer, dialect, limit=100_000)
    r = render(answer, dialect, limit=limit, question=QUESTION + " <b>&</b>" * 5)
    assert dialect.size(r.text) <= limit
    # "truncated" tells exactly whether the answer or its sources were shortened
    assert r.truncated == (dialect.escape(answer.answer) not in r.text or r.sources != full.sources)


def test_render_drops_uncited_sources_before_cutting_the_answer():
    ans = _answer("答案在这里[2]。", [_cite(1), _cite(2), _cite(3)])
    full = render(ans, MARKDOWN)
    assert full.sources == [2] and not full.truncated  # only the cited source is listed
    uncited = _answer("没有标记的答案。", [_cite(1), _cite(2), _cite(3, low=True)])
    assert render(uncited, MARKDOWN).sources == [1, 2]  # confident ones when nothing is cited
    many = _answer("答" * 50 + "[1][2][3]", [_cite(1, "甲" * 30), _cite(2, "乙" * 30), _cite(3, "丙" * 30)])
    r = render(many, MARKDOWN, limit=160)
    assert len(r.text) <= 160 and r.truncated and r.sources == [1] and "答" * 50 in r.text


def test_wecom_limit_is_in_utf8_bytes():
    ans = _answer("中" * 1000 + "[1]", [_cite(1)])
    r = render(ans, WECOM)
    size = len(r.text.encode())
    assert 1800 < size <= 2048 and r.text.count("…") == 1  # cut at the limit, not far below it


def test_fit_text_never_cuts_an_escape():
    out = fit_text("&" * 100, SLACK, 53)
    assert out.endswith("…") and out[:-1] == "&amp;" * 10
    assert fit_text("<>" * 50, FEISHU, 40).replace("&#60;", "").replace("&#62;", "") == "…"


def test_escaping_disarms_mentions_and_links():
    evil = _answer("回答 <!channel> <at id=all></at> <@all> & [x](javascript:alert(1))", [
        _cite(1, "标题|<b>", url="https://example.com/a b)|c"), _cite(2, url="javascript:alert(1)"),
    ])
    slack = render(evil, SLACK).text
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack and "&amp;" in slack
    assert "<https://example.com/a%20b%29%7Cc|标题|&lt;b&gt; › 一节>" in slack  # url can't close the link
    assert "javascript:" not in slack.split("*来源*")[1]  # never rendered as a link
    lark = render(evil, FEISHU).text
    assert "<at" not in lark and "&#60;at id=all&#62;" in lark
    wecom = render(evil, WECOM).text
    assert "<@all>" not in wecom and "＜@all＞" in wecom
    md = render(evil, MARKDOWN).text
    assert "[1] [标题|<b> › 一节](https://example.com/a%20b%29%7Cc)" in md


def test_concurrent_callers_get_the_same_answers_as_one_caller(chat):
    questions = [QUESTION, "k8s 和 Docker 是什么关系？", "Helm 怎么回滚？", "今天天气怎么样"] * 6
    alone = {q: chat.reply(q, SLACK).text for q in set(questions)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda q: (q, chat.reply(q, SLACK).text), questions))
    assert all(text == alone[q] for q, text in together)


def test_example_bot_runs(built_index, monkeypatch, capsys):
    """examples/minimal_bot.py as a user runs it (in-process, to reuse the loaded model)."""
    spec = importlib.util.spec_from_file_location("minimal_bot", ROOT / "examples" / "minimal_bot.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{QUESTION}\n\nk8s 和 Docker 是什么关系？\n"))
    assert example.main(["--index", str(built_index), "--dialect", "text"]) == 0
    out = capsys.readouterr().out
    assert "30 分钟" in out and "[1]" in out and "来源" in out and "Docker" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(QUESTION + "\n"))
    assert example.main(["--index", str(built_index), "--json"]) == 0
    assert Answer.model_validate_json(capsys.readouterr().out.strip()).citations


@pytest.mark.parametrize("dialect", [SLACK, FEISHU, DINGTALK, WECOM])
def test_stub_section_reads_as_not_written_yet_in_every_bot(chat, dialect):
    reply = chat.reply("Dockerfile 是什么？", dialect)
    assert reply.status == "stub"
    assert reply.text.startswith("📝") and "还没有写完" in reply.text and "待补充" not in reply.text
    assert reply.sources  # the stub section is cited, so a writer can find it
