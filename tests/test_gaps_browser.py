"""👍/👎 on the chat page and the admin gap report, in a real headless Chromium.

Like tests/test_web_browser.py: Debian's chromium driven by Playwright, real servers on
127.0.0.1; skipped without chromium. Hostile questions and comments (``<img onerror>``,
``<script>``, attribute breakouts) must show as text and never run, on the served page and in
the ``qa gaps --html`` file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server, stop_server
from tests.test_web_browser import DESKTOP, Page, browser, sync_api  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.model, pytest.mark.server, pytest.mark.browser]
KEY = "admin-browser-key"
HOSTILE_Q = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> Kafka 消息积压怎么处理？'
HOSTILE_COMMENT = '"><svg onload="window.__pwned=3"></svg> 没有这篇文章'


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("QA_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def keyed(built_index, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    srv = start_server(built_index, {"QA_API_KEYS": KEY, "QA_STATE_DIR": str(state)}, ready_path="/readyz")
    srv.state = state
    yield srv
    stop_server(srv)


def test_vote_buttons_by_keyboard_are_recorded(server, browser, built_index, sync_api):
    expect = sync_api.expect
    p = Page(browser, server.url, DESKTOP, "zh-CN")
    try:
        page = p.page
        p.ask("Helm 怎么回滚？")
        answer = page.locator(".turn.answered").last
        expect(answer).to_be_visible()
        bar = answer.locator(".votes")
        expect(bar.locator("button.vote")).to_have_count(2)
        assert bar.locator("button[data-vote=up]").get_attribute("aria-label") == "有帮助"
        # the vote buttons are the last controls of the answer: Shift+Tab from the question box
        page.locator("#question").focus()
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.dataset.vote") == "down"
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.dataset.vote") == "up"
        page.keyboard.press("Enter")
        expect(bar.locator("button[data-vote=up]")).to_have_attribute("aria-pressed", "true")
        expect(bar.locator(".vote-status")).to_have_text("谢谢，已记录。")
        assert bar.locator("button[data-vote=down]").get_attribute("aria-pressed") == "false"
        answer_id = bar.get_attribute("data-answer-id")
        with sqlite3.connect(built_index / "questions.sqlite") as c:
            votes = c.execute("SELECT vote FROM votes WHERE answer_id=?", (answer_id,)).fetchall()
            channel = c.execute("SELECT channel FROM questions WHERE answer_id=?", (answer_id,)).fetchone()
        assert votes == [("up",)] and channel == ("web",)
        # a not-covered answer can be voted on too (the writers want to know what people missed)
        p.ask("今天北京的天气怎么样？")
        expect(page.locator(".turn.abstained .votes button.vote")).to_have_count(2)
        assert not p.dialogs and not p.errors
    finally:
        p.close()


def _check_hostile_page(page, sync_api) -> None:
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text("What the articles don't cover yet")
    expect(page.locator("body")).to_contain_text('<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>')
    expect(page.locator("body")).to_contain_text('"><svg onload="window.__pwned=3"></svg> 没有这篇文章')
    page.wait_for_timeout(300)  # time for an injected handler to fire, if any had been made
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0 and page.locator("script").count() == 0
    assert page.locator("svg").count() == 1 and page.locator("svg polyline").count() == 1  # only our chart


def test_admin_page_and_html_file_show_hostile_questions_as_text(keyed, browser, shots, sync_api, tmp_path):
    auth = {"Authorization": f"Bearer {KEY}"}
    a = httpx.post(keyed.url + "/ask", json={"question": HOSTILE_Q}, headers=auth, timeout=60).json()
    r = httpx.post(keyed.url + "/feedback", json={"answer_id": a["answer_id"], "vote": "down", "comment": HOSTILE_COMMENT}, headers=auth, timeout=30)
    assert r.status_code == 200
    ctx = browser.new_context(viewport=DESKTOP, http_credentials={"username": "writer", "password": KEY})
    dialogs: list[str] = []
    try:
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        resp = page.goto(keyed.url + "/admin/gaps")
        assert resp.status == 200
        _check_hostile_page(page, sync_api)
        page.screenshot(path=shots / "admin-gaps-hostile.png", full_page=True)

        from qa.config import Settings
        from qa.gaps import build_report
        from qa.gaps_html import render_html
        from qa.questionlog import close_logs, open_log

        ql = open_log(Settings(index_dir=tmp_path, state_dir=keyed.state), force=True)
        out = tmp_path / "gaps.html"
        out.write_text(render_html(build_report(ql)), encoding="utf-8")
        close_logs()
        page.goto(out.as_uri())
        _check_hostile_page(page, sync_api)
        assert not dialogs
    finally:
        ctx.close()
    # without a key the browser is challenged (headless Chromium cannot prompt, so it gives up)
    nokey = browser.new_context()
    try:
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
            nokey.new_page().goto(keyed.url + "/admin/gaps")
    finally:
        nokey.close()
