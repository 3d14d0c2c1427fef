"""The chat page in a real headless Chromium against real servers on 127.0.0.1.

Needs Debian's ``chromium`` (driven by Playwright with ``executable_path``; ``playwright install``
is never run: these machines are offline). Without it every test here is skipped.

Set ``QA_SCREENSHOT_DIR=bench/results/screenshots`` to refresh the screenshots in the docs;
by default they go to a temporary folder (still taken, so a broken screenshot path fails here).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.model]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
API_KEY = "web-test-key"
HOSTILE_ARTICLE = """---
title: 跨站脚本测试 <img src=x onerror="window.__pwned='title'">
url: "javascript:window.__pwned='url'"
---

# 防护 `<img src=x onerror="window.__pwned='heading'">` 标签

跨站脚本攻击（XSS）的防护办法是把文章内容当作纯文本显示。文章正文里可能出现 <script>window.__pwned='body'</script> 这样的脚本标签。

例如 `<img src=x onerror="window.__pwned='inline'">` 这样的图片标签必须原样显示，还有下面的代码：

```html
<script>window.__pwned='code'</script>
<img src=x onerror="alert('xss')">
```
"""
HOSTILE_QUESTION = "<img src=x onerror=alert(1)> 这样的图片标签怎么显示？"


def _guarded_server(tmp: Path) -> object:
    """A key-protected server over a corpus with a hostile article (one server: each costs ~20 s of model loading)."""
    from qa.ingest import ingest

    corpus, index = tmp / "corpus", tmp / "index"
    corpus.mkdir()
    (corpus / "xss.md").write_text(HOSTILE_ARTICLE, encoding="utf-8")
    (corpus / "notes.md").write_text("# 笔记\n\n部署前先在测试环境验证配置。\n", encoding="utf-8")
    assert ingest(corpus, make_settings(index)).published
    return start_server(index, {"QA_API_KEYS": f"other-key,{API_KEY}"})


def _playwright_or_skip():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make install-test` installs Debian's chromium")
    return pytest.importorskip("playwright.sync_api", reason="playwright is missing: `make install-test` installs it")


@pytest.fixture(scope="module")
def sync_api():
    api = _playwright_or_skip()
    # a first answer on a cold or busy CI machine can take longer than expect()'s 5 s default
    api.expect.set_options(timeout=30_000)
    return api


@pytest.fixture(scope="session", autouse=True)
def guarded(request, tmp_path_factory):
    """Started in the background before the shared ``server``, so their model loading overlaps.

    Session scope (visible in this module only) is what puts it ahead of ``server`` in set-up order;
    ``built_index`` first loads the embedding model in this process, so the ingest here is quick.
    """
    _playwright_or_skip()  # before building anything: a machine without a browser skips at once
    request.getfixturevalue("built_index")
    pool = ThreadPoolExecutor(1)
    future: Future = pool.submit(_guarded_server, tmp_path_factory.mktemp("guarded"))
    yield future
    if future.exception() is None:
        stop_server(future.result())
    pool.shutdown()


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("QA_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """A Playwright page plus what it must never do: open dialogs, throw, or break the CSP."""

    def __init__(self, browser, url: str, viewport: dict, locale: str, storage_key: str | None = None):
        scale = 2 if viewport is PHONE else 1
        self.context = browser.new_context(viewport=viewport, locale=locale, device_scale_factor=scale,
                                           reduced_motion="reduce", is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
        self.context.set_default_timeout(20_000)
        if storage_key:
            self.context.add_init_script(f"localStorage.setItem('qa.apiKey', {storage_key!r})")
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url + "/")

    def ask(self, question: str) -> None:
        box = self.page.locator("#question")
        box.fill(question)
        box.press("Enter")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages: list[Page] = []

    def make(url: str, viewport: dict = DESKTOP, locale: str = "zh-CN", **kw) -> Page:
        pages.append(Page(browser, url, viewport, locale, **kw))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def test_ask_read_the_answer_and_open_a_cited_passage(server, open_page, shots, sync_api):
    expect = sync_api.expect
    p = open_page(server.url)
    page = p.page
    expect(page.locator("#index-summary")).to_have_text(re.compile(r"^4 篇文章 · \d+ 个段落$"))
    page.screenshot(path=shots / "desktop-start.png")
    p.ask("k8s 和 Docker 是什么关系？")
    answer = page.locator(".turn.answered").last
    expect(answer).to_be_visible()
    assert page.locator(".turn.user p").last.inner_text() == "k8s 和 Docker 是什么关系？"
    markers = answer.locator(".answer-text button.cite")
    assert markers.count() >= 1
    assert answer.locator(".sources button.source").count() == 5
    page.screenshot(path=shots / "desktop-answer.png")

    markers.first.click()
    panel = page.locator("#passage")
    expect(panel).to_be_visible()
    expect(page.locator("#passage-title")).to_have_text("Docker和k8s关系")
    assert page.locator("#passage-heading").inner_text().strip()
    assert re.fullmatch(r".*2024-06-11-docker-k8s-relationship\.md:\d+(-\d+)?", page.locator("#passage-loc").inner_text())
    marks = page.locator("#passage-text mark")
    assert marks.count() >= 1
    answer_text = squash(answer.locator(".answer-text").inner_text())
    for text in marks.all_inner_texts():
        assert squash(text) in answer_text
    assert markers.first.evaluate("b => b.classList.contains('active')")
    page.screenshot(path=shots / "desktop-passage.png")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert markers.first.evaluate("b => b === document.activeElement")
    assert not p.dialogs and not p.errors


def test_off_topic_question_shows_the_not_covered_state(server, open_page, shots, sync_api):
    p = open_page(server.url)
    p.ask("今天北京的天气怎么样？")
    card = p.page.locator(".turn.abstained")
    sync_api.expect(card).to_be_visible()
    assert "文章中没有涉及" in card.inner_text()
    assert card.locator("button.cite, button.source").count() == 0
    assert p.page.locator(".turn.answered").count() == 0
    p.page.screenshot(path=shots / "desktop-not-covered.png")


def test_keyboard_only_in_english(server, open_page, sync_api):
    """Enter sends, Shift+Enter is a newline, markers open with Enter and Escape returns focus."""
    expect = sync_api.expect
    p = open_page(server.url, locale="en-US")
    page = p.page
    expect(page.locator("h1")).to_have_text("Article Q&A")
    assert page.evaluate("document.documentElement.lang") == "en"
    for _ in range(8):  # from the top of the page, Tab reaches the question box
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "question":
            break
    assert page.evaluate("document.activeElement.id") == "question"
    page.keyboard.type("Helm")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("怎么回滚？")
    assert page.locator("#question").input_value() == "Helm\n怎么回滚？"
    assert page.locator(".turn").count() == 0
    page.keyboard.press("Enter")
    expect(page.locator(".turn.answered")).to_be_visible()
    assert page.locator("#question").input_value() == ""

    for _ in range(3):  # back from the question box into the answer's sources
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.matches('button[data-n]')"):
            break
    assert page.evaluate("document.activeElement.matches('button[data-n]')")
    page.keyboard.press("Enter")
    expect(page.locator("#passage")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "passage"
    expect(page.locator("#passage-n")).to_contain_text("Source [")
    page.keyboard.press("Escape")
    expect(page.locator("#passage")).to_be_hidden()
    assert page.evaluate("document.activeElement.matches('button[data-n]')")
    assert not p.errors


def test_phone_width(server, open_page, shots, sync_api):
    expect = sync_api.expect
    p = open_page(server.url, viewport=PHONE)
    page = p.page
    p.ask("Redis 缓存的过期时间是多少？")
    expect(page.locator(".turn.answered")).to_be_visible()
    no_sideways_scroll = "document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"
    assert page.evaluate(no_sideways_scroll)
    page.screenshot(path=shots / "phone-answer.png")
    page.locator(".answer-text button.cite").first.click()
    expect(page.locator("#passage mark").first).to_be_visible()
    box = page.locator("#passage").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
    page.screenshot(path=shots / "phone-passage.png")
    page.locator("#close-passage").click()
    p.ask("今天北京的天气怎么样？")
    expect(page.locator(".turn.abstained")).to_be_visible()
    assert page.evaluate(no_sideways_scroll)
    page.screenshot(path=shots / "phone-not-covered.png")


def test_sources_view_lists_the_indexed_articles(server, open_page, shots, sync_api):
    expect = sync_api.expect
    p = open_page(server.url)
    page = p.page
    page.locator("#open-sources").click()
    rows = page.locator("#sources-table tbody tr")
    expect(rows).to_have_count(4)
    text = page.locator("#sources-table").inner_text()
    for title in ("Docker和k8s关系", "集群升级记录", "Helm 入门", "缓存设计"):
        assert title in text
    assert "ops/helm-basics.md" in text
    expect(rows.first.locator("td.num")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#sources-summary")).to_contain_text("multilingual-e5-small")
    page.screenshot(path=shots / "desktop-sources.png")
    page.keyboard.press("Escape")
    expect(page.locator("#sources-dialog")).to_be_hidden()

    phone = open_page(server.url, viewport=PHONE, locale="en-US")
    phone.page.locator("#open-sources").click()
    expect(phone.page.locator("#sources-table tbody tr")).to_have_count(4)
    phone.page.screenshot(path=shots / "phone-sources.png")


def test_unreachable_server_and_rate_limit_are_explained(server, open_page, shots, sync_api):
    expect = sync_api.expect
    p = open_page(server.url)
    page = p.page
    page.route("**/ask/stream*", lambda route: route.abort("connectionrefused"))
    p.ask("Helm 怎么回滚？")
    card = page.locator(".turn.error").last
    expect(card).to_contain_text("无法连接服务器")
    page.screenshot(path=shots / "desktop-unreachable.png")

    page.unroute("**/ask/stream*")
    page.route("**/ask/stream*", lambda route: route.fulfill(
        status=429, headers={"Retry-After": "7"}, content_type="application/json",
        body='{"error": {"code": "rate_limited", "message": "too many requests"}}'))
    card.locator("button[data-action=retry]").click()
    expect(page.locator(".turn.error").last).to_contain_text("请等待 7 秒")

    page.unroute("**/ask/stream*")  # the server is back: Retry answers the same question
    page.locator(".turn.error button[data-action=retry]").last.click()
    expect(page.locator(".turn.answered")).to_contain_text("helm rollback")
    assert page.locator(".turn.error").count() == 0
    assert page.locator(".turn.user").count() == 1


def test_protected_server_asks_for_the_api_key(guarded, open_page, shots, sync_api):
    expect = sync_api.expect
    srv = guarded.result(timeout=180)
    if httpx.get(srv.url + "/ask", params={"q": "x"}).status_code != 401:
        pytest.xfail("the API does not require a key yet (GET /ask without one is not 401); /ask/stream does")
    p = open_page(srv.url)
    page = p.page
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/ask/stream" in r.url else None)
    p.ask("跨站脚本攻击怎么防护？")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator(".turn.error")).to_contain_text("需要 API 密钥")
    assert page.evaluate("document.activeElement.id") == "key-input"
    page.screenshot(path=shots / "desktop-api-key.png")

    page.locator("#key-input").fill("not-the-key")
    page.locator("#key-input").press("Enter")
    expect(page.locator("#key-reason")).to_contain_text("无效")
    page.locator("#key-input").fill(API_KEY)
    page.locator("#key-save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".turn.answered")).to_be_visible()
    assert sent == [None, "Bearer not-the-key", f"Bearer {API_KEY}"]
    assert page.evaluate("localStorage.getItem('qa.apiKey')") == API_KEY
    expect(page.locator("#open-key")).to_be_visible()


def test_hostile_article_is_shown_as_text_and_never_runs(guarded, open_page, shots, sync_api):
    expect = sync_api.expect
    srv = guarded.result(timeout=180)
    p = open_page(srv.url, storage_key=API_KEY)
    page = p.page
    p.ask(HOSTILE_QUESTION)
    answer = page.locator(".turn.answered")
    expect(answer).to_be_visible()
    assert page.locator(".turn.user p").inner_text() == HOSTILE_QUESTION
    answer.locator(".answer-text button.cite").first.click()
    expect(page.locator("#passage-title")).to_have_text("跨站脚本测试 <img src=x onerror=\"window.__pwned='title'\">")
    expect(page.locator("#passage-text")).to_contain_text("<script>window.__pwned='code'</script>")
    expect(page.locator("#passage-heading")).to_contain_text("<img src=x onerror=")
    expect(page.locator("#passage-link")).to_be_hidden()  # a javascript: URL is never made a link
    page.screenshot(path=shots / "desktop-hostile-article.png")
    page.keyboard.press("Escape")
    page.locator("#open-sources").click()
    expect(page.locator("#sources-table")).to_contain_text("<img src=x onerror=")

    page.wait_for_timeout(300)  # give any injected handler (img onerror) time to fire
    assert p.dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))") == ["/static/app.js"]
    assert page.locator("a[href^='javascript']").count() == 0
    assert not p.errors
