"""The platform-neutral chat core: a chat message in, a reply that fits the platform out.

Bot authors embed the assistant with three things from here::

    from qa.chat import Chat, MARKDOWN, render

    chat = Chat.open("index/")                 # open the index once (loads the model)
    reply = chat.reply("@bot Redis 缓存默认多久过期？", MARKDOWN)
    send_to_my_chat(reply.text)                # within MARKDOWN.limit, user text escaped
    reply.answer                               # the pydantic qa.responses.Answer (citations, timings)

``Chat`` is safe to share between threads: ``Assistant.ask`` is thread-safe and ``Chat``
keeps no per-call state. Webhook adapters (``api/bots``) stay thin because everything a chat
reply needs lives here: cleaning the message (platform @-mentions, whitespace, length),
answering, and rendering for a *dialect* — the platform's markup, escaping rules and size
limit. Rendering never cuts a reply in the middle of an escape sequence or a source line: it
drops uncited sources first, then shortens the answer text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from qa.limits import QuestionTooLong, check_question
from qa.responses import Answer, Citation

log = logging.getLogger("qa.chat")

ELLIPSIS = "…"
Status = Literal["answered", "abstained", "stub", "empty", "too_long", "unavailable", "error", "new_conversation"]
STUB_MARK = "📝 "  # a stub answer ("not written yet") must not read like an answer at a glance
# what a person types to drop the thread's earlier turns (a topic-shift phrase also works)
NEW_CONVERSATION = frozenset({"/new", "/reset", "新对话", "新的对话", "重新开始", "new conversation"})


# --------------------------------------------------------------------------- escaping


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters: only &, < and > (so ``<!channel>`` cannot be injected)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def lark_escape(text: str) -> str:
    """Feishu/Lark card markdown renders HTML entities; escaping < and > disarms ``<at id=all>``."""
    return text.replace("&", "&#38;").replace("<", "&#60;").replace(">", "&#62;")


def neutral_escape(text: str) -> str:
    """For markdowns without a documented escape (DingTalk, WeCom): make tags inert.

    Both render a few HTML-like tags (``<font>``, ``<@userid>``); full-width brackets keep the
    text readable while no tag or mention can be formed from user or article text.
    """
    return text.replace("<", "＜").replace(">", "＞")


def _safe_url(url: str | None) -> str | None:
    """Only absolute http(s) links, with characters that would end a link percent-encoded."""
    if not url or not url.startswith(("http://", "https://")):
        return None
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


def _md_label(text: str) -> str:
    return text.replace("[", "(").replace("]", ")")


# --------------------------------------------------------------------------- mentions


_SLACK_MENTION = re.compile(r"<[@!#][^>]*>")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^>|]*)(?:\|([^>]*))?>")
_LARK_MENTION = re.compile(r"@_(?:user_\d+|all)\b")


def strip_slack(text: str) -> str:
    """``<@U123>``/``<!here>`` removed, ``<url|label>`` → label, then Slack's entities decoded."""
    text = _SLACK_MENTION.sub(" ", text)
    text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def strip_lark(text: str) -> str:
    """Feishu puts ``@_user_1`` placeholders where a message @-mentions someone."""
    return _LARK_MENTION.sub(" ", text)


def _identity(text: str) -> str:
    return text


# --------------------------------------------------------------------------- dialects


@dataclass(frozen=True)
class Dialect:
    """How one chat platform wants a reply: markup, escaping, size limit and its unit."""

    name: str
    limit: int
    unit: Literal["chars", "bytes"] = "chars"
    escape: Callable[[str], str] = _identity
    bold: Callable[[str], str] = lambda s: f"**{s}**"
    link: Callable[[str, str], str] | None = lambda label, url: f"[{_md_label(label)}]({url})"
    quote: Callable[[str], str] = lambda s: f"> {s}"
    strip_mentions: Callable[[str], str] = _identity
    sources_title: str = "来源"

    def size(self, text: str) -> int:
        return len(text.encode("utf-8")) if self.unit == "bytes" else len(text)


def _slack_link(label: str, url: str) -> str:
    return f"<{url.replace('|', '%7C')}|{label}>"


# Slack: a section block's mrkdwn text is limited to 3000 characters.
SLACK = Dialect(
    "slack", 3000, "chars", escape=slack_escape, bold=lambda s: f"*{s}*", link=_slack_link,
    strip_mentions=strip_slack,
)
# Feishu/Lark: a card message may be 30 KB in all; 10 KB of markdown leaves room for the JSON.
FEISHU = Dialect("feishu", 10_000, "bytes", escape=lark_escape, strip_mentions=strip_lark)
# DingTalk: no published limit for sessionWebhook markdown; 4000 characters is a safe bound.
DINGTALK = Dialect("dingtalk", 4000, "chars", escape=neutral_escape)
# WeCom: markdown content of the message API is limited to 2048 bytes of UTF-8.
WECOM = Dialect("wecom", 2048, "bytes", escape=neutral_escape)
# Generic Markdown (custom bots, Discord-like targets) and plain text.
MARKDOWN = Dialect("markdown", 4000, "chars")
TEXT = Dialect("text", 2000, "chars", bold=lambda s: s, link=None, quote=lambda s: f"问：{s}")

DIALECTS = {d.name: d for d in (SLACK, FEISHU, DINGTALK, WECOM, MARKDOWN, TEXT)}


# --------------------------------------------------------------------------- rendering


class Rendered(BaseModel):
    text: str
    truncated: bool = Field(description="sources were dropped or the answer shortened to fit")
    sources: list[int] = Field(default_factory=list, description="citation numbers listed")


_MARKER = re.compile(r"\[(\d+)\]")


def cited_numbers(answer: Answer) -> list[int]:
    """Citation numbers the answer text refers to, in order of first use."""
    seen: list[int] = []
    for m in _MARKER.finditer(answer.answer):
        n = int(m.group(1))
        if n not in seen:
            seen.append(n)
    return seen


def chosen_sources(answer: Answer, max_sources: int = 5) -> list[Citation]:
    """The sources worth showing in chat: those the answer cites, else the confident ones."""
    by_n = {c.n: c for c in answer.citations}
    picked = [by_n[n] for n in cited_numbers(answer) if n in by_n]
    if not picked:
        picked = [c for c in answer.citations if not c.low_confidence]
    return sorted(picked, key=lambda c: c.n)[:max_sources]


UNVERIFIED = "（⚠ 未能在引用的原文中核实）"


def answer_text(answer: Answer) -> str:
    """The text a chat shows: an LLM answer's unsupported sentences carry a visible flag."""
    if answer.writer != "llm" or not answer.sentences or all(s.supported for s in answer.sentences):
        return answer.answer
    return "".join(s.text if s.supported else s.text + UNVERIFIED for s in answer.sentences)


def _source_line(c: Citation, d: Dialect) -> str:
    label = f"{c.title} › {c.heading}" if c.heading else c.title
    url = _safe_url(c.url)
    where = f"{_short_path(c.path)}:{c.line_start}-{c.line_end}"
    if url and d.link is not None:
        return f"[{c.n}] {d.link(d.escape(label), url)}"
    if url:
        return f"[{c.n}] {d.escape(label)} {url}"
    return f"[{c.n}] {d.escape(label)} ({d.escape(where)})"


def _short_path(path: str) -> str:
    p = Path(path)
    return "/".join(p.parts[-2:]) if p.is_absolute() else path


def _assemble(head: list[str], body: str, sources: list[str], d: Dialect) -> str:
    parts = [*head, body]
    if sources:
        parts += ["", d.bold(d.sources_title), *sources]
    return "\n".join(parts)


def fit_text(text: str, d: Dialect, limit: int | None = None) -> str:
    """Escape ``text`` and shorten it (never inside an escape) to the dialect's limit."""
    limit = limit or d.limit
    out = d.escape(text)
    if d.size(out) <= limit:
        return out
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix whose escaped form plus "…" fits
        mid = (lo + hi + 1) // 2
        if d.size(d.escape(text[:mid]) + ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return d.escape(text[:lo]) + ELLIPSIS


def render(
    answer: Answer,
    dialect: Dialect = MARKDOWN,
    limit: int | None = None,
    question: str | None = None,
    max_sources: int = 5,
    searched: str | None = None,
) -> Rendered:
    """An Answer as one chat message in ``dialect``, at most ``limit`` (default: the dialect's).

    Numbered sources follow the answer ("[1] title › heading" as a link when the article has a
    URL). ``question``, when given, is quoted first — escaped, since it is user input;
    ``searched`` (what a follow-up was searched as) comes next. When
    the whole does not fit, uncited sources go first, then cited ones from the last, then the
    answer text is shortened; the result always fits.
    """
    d = dialect
    limit = limit or d.limit
    head = [d.quote(fit_text(question, d, max(16, limit // 4))), ""] if question else []
    if searched:  # a follow-up: say what was searched, so the reader can tell how it was understood
        head += [fit_text(f"（检索：{searched}）", d, max(16, limit // 4)), ""]
    sources = chosen_sources(answer, max_sources)
    lines = [_source_line(c, d) for c in sources]
    mark = STUB_MARK if answer.status == "stub" else ""
    shown = answer_text(answer)
    body = mark + d.escape(shown)
    text = _assemble(head, body, lines, d)
    if d.size(text) <= limit:
        return Rendered(text=text, truncated=False, sources=[c.n for c in sources])

    cited = set(cited_numbers(answer))
    keep = list(zip(sources, lines))
    # drop uncited sources (from the last), then cited ones, keeping at least one
    for pred in (lambda c: c.n not in cited, lambda c: True):
        while len(keep) > 1 and d.size(_assemble(head, body, [ln for _, ln in keep], d)) > limit:
            idx = next((i for i in range(len(keep) - 1, -1, -1) if pred(keep[i][0])), None)
            if idx is None:
                break
            keep.pop(idx)
    kept = [ln for _, ln in keep]
    text = _assemble(head, body, kept, d)
    if d.size(text) > limit:
        room = limit - d.size(_assemble(head, "", kept, d))
        if room < 40 and kept:  # not even a short answer fits next to a source: drop sources
            keep, kept = [], []
            room = limit - d.size(_assemble(head, "", [], d))
        body = fit_text(shown, d, max(1, room))
        text = _assemble(head, body, kept, d)
    if d.size(text) > limit:  # a pathological limit: plain cut of the escaped-safe body only
        text = fit_text(shown, d, limit)
        keep = []
    return Rendered(text=text, truncated=True, sources=[c.n for c, _ in keep])


# --------------------------------------------------------------------------- the chat core


class Reply(BaseModel):
    """What a bot sends back: ``text`` is ready to post (escaped, within the dialect's limit)."""

    status: Status
    text: str
    question: str = Field(description="the cleaned question (mentions removed, trimmed)")
    answer: Answer | None = None
    truncated: bool = False
    sources: list[int] = Field(default_factory=list)
    conversation_id: str | None = Field(None, description="the conversation this message continued or started")


MESSAGES = {
    "empty": "请在消息里写上问题，例如：k8s 和 Docker 是什么关系？(Ask a question, e.g. \"k8s 和 Docker 是什么关系？\")",
    "too_long": "问题太长了（{n} 字），请精简到 {limit} 字以内再问。(The question is {n} characters; the limit is {limit}.)",
    "unavailable": "知识库索引还没有准备好，请稍后再试。(The index is not ready yet; try again later.)",
    "error": "抱歉，回答时出了点问题，请稍后再试。(Sorry, something went wrong; try again later.)",
    "new_conversation": "好的，开始新的对话：接下来的问题不再接着前面的内容。(OK, a new conversation: the next question starts afresh.)",
}


def clean_question(text: str, dialect: Dialect = MARKDOWN) -> str:
    """Mentions removed, whitespace collapsed and trimmed: the words the person asked."""
    text = dialect.strip_mentions(text or "")
    return re.sub(r"\s+", " ", text).strip()


class Chat:
    """Question in, rendered reply out; share one instance between threads.

    ``assistant`` is an :class:`qa.assistant.Assistant` or a zero-argument callable returning
    one (the web service passes its lazy holder, so a missing index becomes a polite reply
    instead of an exception).
    """

    def __init__(
        self,
        assistant,
        *,
        max_question_chars: int = 500,
        top_k: int | None = None,
        max_sources: int = 5,
        on_answer: Callable[[Answer, str], None] | None = None,
    ):
        self._get = assistant if callable(assistant) else (lambda: assistant)
        # called with (answer, dialect name) after each answer: the service logs it (qa.questionlog)
        self.on_answer = on_answer
        self.max_question_chars = max_question_chars
        self.top_k = top_k
        self.max_sources = max_sources

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings=None) -> "Chat":
        from qa.assistant import Assistant
        from qa.config import get_settings

        settings = settings or get_settings()
        assistant = Assistant.open(index_dir, settings)
        return cls(assistant, max_question_chars=settings.max_question_chars)

    def reply(
        self,
        text: str,
        dialect: Dialect = MARKDOWN,
        *,
        limit: int | None = None,
        quote_question: bool = False,
        collection: str | None = None,
        conversation_key: str | None = None,
        also_keys: tuple[str, ...] = (),
    ) -> Reply:
        """Answer a raw chat message. Never raises: failures become a polite ``Reply``.

        ``conversation_key`` is the platform's name for the conversation this message belongs
        to (a Slack thread, a Feishu reply chain, a DingTalk or WeCom one-to-one chat): a
        follow-up ("它怎么删除？") is then resolved against the earlier turns under that key,
        which lasts ``QA_CONVERSATION_TTL_S`` after its last message. ``also_keys`` are bound to
        the same conversation (e.g. the thread a top-level message opens). Without a key every
        message stands alone."""
        question = clean_question(text, dialect)
        if not question:
            return self._say("empty", question, dialect, limit)
        if conversation_key and question.lower() in NEW_CONVERSATION:
            return self._forget(conversation_key, also_keys, question, dialect, limit)
        try:
            check_question(question, self.max_question_chars)
        except QuestionTooLong:
            return self._say("too_long", question[:200], dialect, limit, n=len(question))
        try:
            assistant = self._get()
        except Exception as exc:  # e.g. the service's holder: no index built yet
            log.warning("assistant unavailable: %s", getattr(exc, "detail", exc))
            return self._say("unavailable", question, dialect, limit)
        conversation = self._conversation(assistant, conversation_key)
        try:
            answer = assistant.ask(question, top_k=self.top_k, collection=collection, conversation=conversation)
        except Exception:
            log.exception("answering %r failed", question[:80])
            return self._say("error", question, dialect, limit)
        if self.on_answer is not None:
            try:
                self.on_answer(answer, dialect.name)
            except Exception:  # noqa: BLE001 - logging must never cost a reply
                log.exception("on_answer hook failed")
        if conversation_key and answer.conversation_id:
            self._bind(assistant, (conversation_key, *also_keys), answer.conversation_id)
        r = render(answer, dialect, limit, question if quote_question else None, self.max_sources,
                   searched=answer.searched)
        return Reply(
            status="abstained" if answer.abstained else ("stub" if answer.status == "stub" else "answered"),
            text=r.text,
            question=question,
            answer=answer,
            truncated=r.truncated,
            sources=r.sources,
            conversation_id=answer.conversation_id,
        )

    @staticmethod
    def _conversation(assistant, key: str | None):
        """The live conversation id under ``key``, True for a new one, None without a key.

        A broken conversation store must not silence the bot: the message is answered alone."""
        if not key:
            return None
        try:
            return assistant.conversations.for_key(key) or True
        except Exception:
            log.exception("conversation store unavailable; answering without the thread")
            return None

    @staticmethod
    def _bind(assistant, keys, conversation_id: str) -> None:
        try:
            for k in keys:
                assistant.conversations.bind_key(k, conversation_id)
        except Exception:
            log.exception("could not remember the conversation of a chat thread")

    def _forget(self, key: str, also_keys, question: str, d: Dialect, limit: int | None) -> Reply:
        """"/new" or "新对话": the key's next message starts a fresh conversation."""
        try:
            store = self._get().conversations
            for k in (key, *also_keys):
                store.forget_key(k)
        except Exception as exc:
            log.warning("could not start a new conversation: %s", getattr(exc, "detail", exc))
        return self._say("new_conversation", question, d, limit)

    def _say(self, status: Status, question: str, d: Dialect, limit: int | None, n: int = 0) -> Reply:
        msg = MESSAGES[status].format(n=n, limit=self.max_question_chars)
        return Reply(status=status, text=fit_text(msg, d, limit), question=question)


__all__ = [
    "Chat", "Reply", "Rendered", "Dialect", "render", "fit_text", "clean_question", "chosen_sources",
    "SLACK", "FEISHU", "DINGTALK", "WECOM", "MARKDOWN", "TEXT", "DIALECTS",
    "slack_escape", "lark_escape", "neutral_escape",
]
