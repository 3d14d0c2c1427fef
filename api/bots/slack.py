"""Slack: Events API (app_mention, DMs) at /bots/slack/events, slash commands at /bots/slack/commands.

Protocol (docs: "Verifying requests from Slack", Events API, slash commands):

* every request carries ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` =
  ``v0=`` + HMAC-SHA256(signing secret, ``v0:{timestamp}:{raw body}``); requests older than
  five minutes are refused. ``slack_sdk.signature.SignatureVerifier`` does both checks.
* Slack waits 3 s for the ack and retries with ``X-Slack-Retry-Num``; we answer 200 at once
  and ignore retries (the first delivery is already being answered), and also remember each
  ``event_id`` and each signature so a replayed request is never answered twice.
* answers are posted afterwards: events with ``chat.postMessage`` in the message's thread
  (slack_sdk ``WebClient``, ``base_url`` from ``QA_SLACK_API_URL``), slash commands to the
  command's ``response_url`` (slack_sdk ``WebhookClient``). The signature does not make the
  ``response_url`` Slack's (anyone holding a validly signed form can choose it), so it must be
  https on one of ``QA_SLACK_RESPONSE_URL_HOSTS`` (Slack's hooks hosts by default); otherwise the
  bot could be made to POST answers to any listener.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from api.bots.common import BotRuntime, parse_json, read_body, secret, unauthorized
from api.bots.votes import slack_block, slack_interaction, votes_on
from api.errors import APIError
from qa.chat import SLACK, Reply, slack_escape

log = logging.getLogger("api.bots.slack")


class SlackEvent(BaseModel):
    """The inner ``event`` of an ``event_callback`` (only the fields we use)."""

    model_config = ConfigDict(extra="ignore")
    type: str
    text: str = ""
    user: str | None = None
    channel: str | None = None
    channel_type: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    subtype: str | None = None


def blocks(reply: Reply, votes: bool = False) -> list[dict]:
    """One mrkdwn section (≤ 3000 characters, which ``SLACK``'s limit guarantees), then 👍/👎."""
    out = [{"type": "section", "text": {"type": "mrkdwn", "text": reply.text}}]
    if votes and reply.answer is not None:
        out.append(slack_block(reply.answer.answer_id))  # presses arrive at /bots/slack/interactions
    return out


def _verify(rt: BotRuntime, body: bytes, request: Request) -> None:
    verifier = SignatureVerifier(secret(rt.settings.slack_signing_secret))
    ts = request.headers.get("x-slack-request-timestamp")
    sig = request.headers.get("x-slack-signature")
    if not ts or not sig:
        raise unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    if not ts.isdigit():
        raise unauthorized("X-Slack-Request-Timestamp is not a number")
    if not verifier.is_valid(body, ts, sig):
        # SignatureVerifier folds both failures together; tell them apart for the caller.
        if abs(time.time() - int(ts)) > 300:
            raise unauthorized("stale request: timestamp outside the 5-minute window", "stale_request")
        raise unauthorized("X-Slack-Signature does not match")


def conversation_keys(ev: SlackEvent) -> tuple[str, tuple[str, ...]]:
    """A thread is a conversation: a reply in it continues it, a new top-level message starts one.

    In a direct message the whole DM is one conversation too (within the TTL), since people
    there type the next question below rather than in the thread; the thread the bot's answer
    opens is bound to the same conversation."""
    thread = f"slack:{ev.channel}:{ev.thread_ts or ev.ts}"
    if ev.channel_type == "im" and not ev.thread_ts:
        return f"slack:{ev.channel}", (thread,)
    return thread, ()


def _post_in_thread(rt: BotRuntime, client: WebClient, ev: SlackEvent) -> None:
    key, also = conversation_keys(ev)
    reply = rt.chat.reply(ev.text, SLACK, conversation_key=key, also_keys=also)
    client.chat_postMessage(
        channel=ev.channel, thread_ts=ev.thread_ts or ev.ts, text=reply.text, blocks=blocks(reply, votes_on(rt)),
        unfurl_links=False, unfurl_media=False,
    )


def _post_to_response_url(rt: BotRuntime, url: str, text: str) -> None:
    reply = rt.chat.reply(text, SLACK, quote_question=True)
    resp = WebhookClient(url, timeout=int(rt.settings.bot_http_timeout_s)).send(
        text=reply.text, blocks=blocks(reply, votes_on(rt)), response_type="in_channel",
        unfurl_links=False, unfurl_media=False,
    )
    if resp.status_code >= 300:
        log.warning("response_url answered %s", resp.status_code)


def response_url_allowed(url: str, hosts: set[str]) -> bool:
    """https on an allowed host (http only for a host listed as 127.0.0.1/localhost, for tests)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    local = host in ("127.0.0.1", "localhost", "::1")
    return host in hosts and (parts.scheme == "https" or (parts.scheme == "http" and local)) and not parts.username


def build_router(rt: BotRuntime) -> APIRouter:
    router = APIRouter(prefix="/bots/slack", tags=["bots"])
    response_hosts = {h.strip().lower() for h in rt.settings.slack_response_url_hosts.split(",") if h.strip()}
    token = secret(rt.settings.slack_bot_token)
    # posting needs the bot token; without it only slash commands (response_url) can answer
    client = WebClient(
        token=token, base_url=rt.settings.slack_api_url, timeout=int(rt.settings.bot_http_timeout_s)
    ) if token else None

    @router.post("/events")
    async def events(request: Request):
        """Events API: url_verification, then app_mention and direct messages."""
        body = await read_body(request)
        _verify(rt, body, request)
        if request.headers.get("x-slack-retry-num"):
            # the first delivery is being answered; "X-Slack-No-Retry" stops further retries
            return JSONResponse({"ok": True, "ignored": "retry"}, headers={"X-Slack-No-Retry": "1"})
        data = parse_json(body)
        if data.get("type") == "url_verification":
            return {"challenge": str(data.get("challenge", ""))}
        if data.get("type") != "event_callback" or not isinstance(data.get("event"), dict):
            return {"ok": True, "ignored": "not an event callback"}
        event_id = str(data.get("event_id") or "")
        sig_key = "slack-sig:" + request.headers["x-slack-signature"]
        if not rt.dedup.first_time(sig_key) or (event_id and not rt.dedup.first_time("slack:" + event_id)):
            return {"ok": True, "ignored": "duplicate"}
        try:
            ev = SlackEvent.model_validate(data["event"])
        except ValueError:
            raise APIError(400, "malformed_event", "event has an unexpected shape") from None
        if ev.bot_id or ev.subtype or not ev.channel:
            return {"ok": True, "ignored": "bot or edited message"}  # our own posts come back as events
        addressed = ev.type == "app_mention" or (ev.type == "message" and ev.channel_type == "im")
        if not addressed:
            return {"ok": True, "ignored": ev.type}
        if client is None:
            log.warning("Slack event received but QA_SLACK_BOT_TOKEN is not set; cannot post")
            return {"ok": True, "ignored": "no bot token"}
        rt.submit("slack chat.postMessage", _post_in_thread, rt, client, ev)
        return {"ok": True}

    @router.post("/commands")
    async def commands(request: Request):
        """Slash command (e.g. /ask 问题): ack within 3 s, answer via response_url."""
        body = await read_body(request)
        _verify(rt, body, request)
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=False).items()}
        except UnicodeDecodeError:
            raise APIError(400, "malformed_form", "body is not UTF-8 form data") from None
        url = form.get("response_url", "")
        if not url.startswith(("https://", "http://")) or "command" not in form:
            raise APIError(400, "malformed_form", "not a slash command payload")
        if not response_url_allowed(url, response_hosts):
            log.info("rejected slash command: response_url host not allowed")
            raise APIError(400, "response_url_not_allowed", "response_url is not on an allowed Slack host")
        if not rt.dedup.first_time("slack-sig:" + request.headers["x-slack-signature"]):
            return Response(status_code=200)  # a replayed command: acknowledged, not answered
        text = form.get("text", "")
        if not text.strip():
            return {"response_type": "ephemeral", "text": rt.chat.reply("", SLACK).text}
        rt.submit("slack response_url", _post_to_response_url, rt, url, text)
        # ephemeral, so only the asker sees it; the answer itself is posted in_channel
        return {"response_type": "ephemeral", "text": f"正在查找：{slack_escape(text[:200])}"}

    @router.post("/interactions")
    async def interactions(request: Request):
        """Interactivity: a press on an answer's 👍/👎 button (signed like events)."""
        body = await read_body(request)
        _verify(rt, body, request)
        return await slack_interaction(request, rt, body, lambda url: response_url_allowed(url, response_hosts))

    return router
