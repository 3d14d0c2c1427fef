"""The chat page with an LLM writer (scripted endpoint): the draft streams in, then the verified
answer replaces it with its unverified sentence visibly marked. Skipped without Chromium."""

from __future__ import annotations

import pytest

from tests.conftest import start_server, stop_server
from tests.fake_llm import FakeLLM, Reply
from tests.test_web_browser import browser, open_page, sync_api  # noqa: F401  (fixtures)
from tests.test_writers import Q, cited

MADE_UP = "缓存数据每周会自动迁移到磁盘[1]。"


@pytest.fixture(scope="module")
def llm_page_server(built_index, sync_api):  # noqa: F811
    fake = FakeLLM(lambda body: Reply(cited(body, "30 分钟", MADE_UP), chunk_delay_s=0.05))
    srv = start_server(built_index, {"QA_LLM_BASE_URL": fake.url, "QA_LLM_MODEL": "test", "QA_LLM_TIMEOUT_S": "20"},
                       ready_path="/readyz", timeout=240)
    yield srv
    stop_server(srv)
    fake.close()


def test_llm_answer_streams_and_marks_the_unverified_sentence(llm_page_server, open_page, sync_api):  # noqa: F811
    expect = sync_api.expect
    p = open_page(llm_page_server.url)
    p.ask(Q)
    expect(p.page.locator(".turn.pending .draft")).to_contain_text("30")  # tokens shown as they arrive
    answer = p.page.locator(".turn.answered").last
    expect(answer).to_be_visible()
    bad = answer.locator(".sentence.unsupported")
    expect(bad).to_have_count(1)
    assert "迁移到磁盘" in bad.inner_text() and "未核实" in bad.inner_text()
    good = answer.locator(".sentence:not(.unsupported)")
    assert "30 分钟" in good.first.inner_text() and good.first.locator("button.cite").count() == 1
    assert "由大模型撰写" in answer.locator(".meta").inner_text()
    assert not p.dialogs and not p.errors
