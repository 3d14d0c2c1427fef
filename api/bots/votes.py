"""👍/👎 buttons under chat answers, and what happens when someone presses one.

* Slack: an ``actions`` block with two Block Kit buttons whose ``value`` is the answer id;
  a press arrives at ``/bots/slack/interactions`` (the app's Interactivity Request URL) as a
  form field ``payload`` holding a ``block_actions`` JSON, signed exactly like events
  (``X-Slack-Signature``, checked by the same code). We acknowledge with 200 at once and
  thank the voter with an ephemeral message to the payload's ``response_url`` when it is on
  ``QA_SLACK_RESPONSE_URL_HOSTS`` (as for slash commands).
* Feishu/Lark: an ``action`` element with two card buttons whose ``value`` holds the answer id
  and the vote; a press arrives as the ``card.action.trigger`` callback (schema 2.0), encrypted
  and signed like the message events, so the existing ``/bots/feishu/events`` endpoint checks
  it before it gets here (set the card callback URL to that endpoint). The answer is a toast.

The voter is a salted hash of the platform and user id (never the id itself); a vote is
one per answer and voter like ``POST /feedback``, and goes through the same rate limit.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Callable
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from slack_sdk.webhook import WebhookClient

from api.bots.common import BotRuntime, parse_json
from api.errors import APIError
from qa.questionlog import UnknownAnswer

log = logging.getLogger("api.bots.votes")

SLACK_ACTIONS = {"qa_vote_up": "up", "qa_vote_down": "down"}
LABELS = {"up": "👍 有用", "down": "👎 没帮助"}
THANKS = {
    "ok": "谢谢反馈！(Thanks for the feedback!)",
    "unknown": "这条回答已无法评价。(This answer can no longer be rated.)",
    "off": "此服务器不记录评价。(Votes are not recorded on this server.)",
    "limited": "评价太频繁了，请稍后再试。(Too many votes; try again later.)",
}
_ANSWER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def slack_block(answer_id: str) -> dict:
    return {
        "type": "actions",
        "block_id": "qa_feedback",
        "elements": [
            {"type": "button", "action_id": action, "value": answer_id,
             "text": {"type": "plain_text", "text": LABELS[vote], "emoji": True}}
            for action, vote in SLACK_ACTIONS.items()
        ],
    }


def feishu_element(answer_id: str) -> dict:
    return {
        "tag": "action",
        "actions": [
            {"tag": "button", "type": "default", "text": {"tag": "plain_text", "content": LABELS[vote]},
             "value": {"qa_vote": vote, "answer_id": answer_id}}
            for vote in ("up", "down")
        ],
    }


def votes_on(rt: BotRuntime) -> bool:
    return bool(getattr(rt.settings, "question_log", False))


async def record_vote(request: Request, platform: str, user: str, answer_id: str, vote: str) -> str:
    """ok | unknown | off | limited — never raises: the platform gets its 200 either way."""
    qlog = getattr(request.app.state.holder, "questions", None)
    if qlog is None:
        return "off"
    if not _ANSWER_ID.match(answer_id or "") or vote not in ("up", "down"):
        return "unknown"
    identity = f"{platform}:{user or 'unknown'}"
    try:
        request.app.state.guard.throttle(identity)
    except APIError:
        return "limited"
    try:
        await run_in_threadpool(qlog.vote, answer_id, qlog.hash_identity(identity), vote, None)
    except UnknownAnswer:
        return "unknown"
    return "ok"


def _slack_thank(rt: BotRuntime, url: str, outcome: str) -> None:
    WebhookClient(url, timeout=int(rt.settings.bot_http_timeout_s)).send(
        text=THANKS[outcome], response_type="ephemeral", replace_original=False,
    )


async def slack_interaction(request: Request, rt: BotRuntime, body: bytes, url_ok: Callable[[str], bool]) -> dict:
    """A signed ``block_actions`` payload (the caller verified the signature). The thanks go to
    the payload's ``response_url`` only when ``url_ok`` accepts it (Slack's hosts, like slash
    commands: a signature does not make the URL Slack's)."""
    try:
        form = parse_qs(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise APIError(400, "malformed_form", "body is not UTF-8 form data") from None
    raw = (form.get("payload") or [""])[0]
    if not raw:
        raise APIError(400, "malformed_form", "no payload field: not a Slack interaction")
    payload = parse_json(raw)
    if payload.get("type") != "block_actions":
        return {"ok": True, "ignored": str(payload.get("type"))[:40]}
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    outcome = None
    for action in payload.get("actions") or []:
        if isinstance(action, dict) and action.get("action_id") in SLACK_ACTIONS:
            vote = SLACK_ACTIONS[action["action_id"]]
            who = f"{team.get('id', '')}:{user.get('id', '')}"
            outcome = await record_vote(request, "slack", who, str(action.get("value") or ""), vote)
            break
    if outcome is None:
        return {"ok": True, "ignored": "not a vote"}
    url = str(payload.get("response_url") or "")
    if url and url_ok(url):
        rt.submit("slack vote thanks", _slack_thank, rt, url, outcome)
    elif url:
        log.info("vote recorded; thanks not sent: response_url host not allowed")
    return {"ok": True, "vote": outcome}


async def feishu_card_action(request: Request, data: dict) -> dict:
    """``card.action.trigger`` (verified by the events endpoint): record the vote, answer a toast."""
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    action = event.get("action") if isinstance(event.get("action"), dict) else {}
    value = action.get("value")
    if isinstance(value, str):  # older clients send the value as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or "qa_vote" not in value:
        return {}
    operator = event.get("operator") if isinstance(event.get("operator"), dict) else {}
    who = str(operator.get("open_id") or operator.get("user_id") or "")
    outcome = await record_vote(request, "feishu", who, str(value.get("answer_id") or ""), str(value.get("qa_vote")))
    return {"toast": {"type": "success" if outcome == "ok" else "info", "content": THANKS[outcome]}}
