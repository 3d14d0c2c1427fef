"""A three-turn conversation on the chat page, in headless Chromium against the real server.

Skipped without Debian's chromium or Playwright (see tests/test_web_browser.py)."""

from __future__ import annotations

import pytest

from tests.test_web_browser import DESKTOP, Page, browser, sync_api  # noqa: F401  (fixtures)


def test_three_turn_dialogue_survives_a_reload_and_new_conversation_starts_fresh(server, browser, sync_api, tmp_path):
    expect = sync_api.expect
    p = Page(browser, server.url, DESKTOP, "zh-CN")
    page = p.page
    try:
        new_button = page.locator("#new-conversation")
        expect(new_button).to_be_hidden()  # nothing to start over from yet

        p.ask("Redis 缓存是怎么设计的？")
        expect(page.locator(".turn.assistant:not(.pending)")).to_have_count(1)
        assert page.locator(".turn.assistant .searched").count() == 0  # a first question is searched as asked
        expect(new_button).to_be_visible()
        expect(new_button).to_have_text("新对话")

        p.ask("它默认多久过期？")
        expect(page.locator(".turn.answered")).to_have_count(2)
        second = page.locator(".turn.answered").nth(1)
        searched = second.locator(".searched")
        expect(searched).to_contain_text("检索：")
        expect(searched).to_contain_text("Redis")
        assert "30 分钟" in second.locator(".answer-text").inner_text()

        p.ask("那 Helm 呢？")
        expect(page.locator(".turn.assistant:not(.pending)")).to_have_count(3)
        expect(page.locator(".turn.assistant").nth(2).locator(".searched")).to_contain_text("Helm")
        page.screenshot(path=tmp_path / "conversation.png")

        # the conversation is kept in the tab: a reload shows the turns and continues the thread
        page.reload()
        expect(page.locator(".turn.user")).to_have_count(3)
        assert page.locator("#welcome").is_hidden()
        p.ask("它怎么回滚？")
        expect(page.locator(".turn.assistant:not(.pending)")).to_have_count(4)
        expect(page.locator(".turn.assistant").nth(3).locator(".searched")).to_contain_text("Helm")

        # a new conversation: the page is cleared and the same follow-up is searched as asked
        new_button.click()
        expect(page.locator(".turn")).to_have_count(0)
        expect(page.locator("#welcome")).to_be_visible()
        p.ask("它怎么回滚？")
        expect(page.locator(".turn.assistant:not(.pending)")).to_have_count(1)
        assert page.locator(".turn.assistant .searched").count() == 0
        stored = page.evaluate("JSON.parse(sessionStorage.getItem('qa.conversation'))")
        assert stored["id"].startswith("cv_") and [t["q"] for t in stored["turns"]] == ["它怎么回滚？"]
        assert not p.dialogs and not p.errors
    finally:
        p.close()
