"""DingTalk: the enterprise robot's HTTP message callback at /bots/dingtalk.

Protocol (docs: 机器人接收消息 / "企业内部机器人" HTTP 回调):

* headers ``timestamp`` (ms) and ``sign`` = base64(HmacSHA256(key=appSecret,
  msg=timestamp + "\\n" + appSecret)); a timestamp more than one hour away from now is refused;
* the JSON body has ``msgtype`` (text), ``text.content``, ``msgId``, ``conversationType``
  (1 single chat, 2 group), ``sessionWebhook`` and ``sessionWebhookExpiredTime``;
* the answer is a markdown message POSTed to ``sessionWebhook`` after the ack.

The signature covers only the timestamp, not the body, so a captured request could be
replayed with another body within the hour. Hence ``msgId`` is remembered, and the
``sessionWebhook`` host must be one of ``QA_DINGTALK_WEBHOOK_HOSTS`` (DingTalk's own hosts
by default) — otherwise the bot could be made to POST answers to any URL.

The official ``dingtalk-stream`` SDK implements Stream mode (an outgoing WebSocket), not this
HTTP callback, so the documented HTTP protocol is implemented here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from api.bots.common import BotRuntime, parse_json, read_body, same_secret, secret, unauthorized
from api.errors import APIError
from qa.chat import DINGTALK, fit_text

log = logging.getLogger("api.bots.dingtalk")

MAX_SKEW_MS = 3600 * 1000


def sign(timestamp: str, app_secret: str) -> str:
    mac = hmac.new(app_secret.encode("utf-8"), f"{timestamp}\n{app_secret}".encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


class Text(BaseModel):
    content: str = ""


class RobotMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    msgtype: str
    msgId: str
    text: Text = Text()
    conversationType: str = ""
    sessionWebhook: str
    sessionWebhookExpiredTime: int | None = None
    senderStaffId: str | None = None
    senderId: str | None = None
    conversationId: str | None = None


def conversation_key(msg: RobotMessage) -> str | None:
    """A one-to-one chat keeps one conversation per person (within the TTL). DingTalk groups have
    no threads, so a group keeps one per person in that group; None when the ids are missing."""
    sender = msg.senderStaffId or msg.senderId
    if not sender:
        return None
    if msg.conversationType == "1":
        return f"dingtalk:user:{sender}"
    return f"dingtalk:{msg.conversationId}:{sender}" if msg.conversationId else None


def _post(rt: BotRuntime, msg: RobotMessage) -> None:
    if msg.sessionWebhookExpiredTime and msg.sessionWebhookExpiredTime < time.time() * 1000:
        log.warning("sessionWebhook expired before the answer was ready; dropping it")
        return
    reply = rt.chat.reply(msg.text.content, DINGTALK, conversation_key=conversation_key(msg))
    body = {
        "msgtype": "markdown",
        # the title is what notifications and the chat list show
        "markdown": {"title": fit_text(reply.question or "问答", DINGTALK, 60), "text": reply.text},
        "at": {"isAtAll": False},
    }
    data = rt.http.post(msg.sessionWebhook, json=body).json()
    if data.get("errcode", 0) != 0:
        log.warning("DingTalk sessionWebhook failed: errcode=%s errmsg=%s", data.get("errcode"), data.get("errmsg"))


def build_router(rt: BotRuntime) -> APIRouter:
    router = APIRouter(prefix="/bots", tags=["bots"])
    app_secret = secret(rt.settings.dingtalk_app_secret)
    hosts = {h.strip().lower() for h in rt.settings.dingtalk_webhook_hosts.split(",") if h.strip()}

    @router.post("/dingtalk")
    async def callback(request: Request):
        """A message @-mentioning the robot (or sent to it directly)."""
        body = await read_body(request)
        ts = request.headers.get("timestamp", "")
        given = request.headers.get("sign", "")
        if not ts or not given:
            raise unauthorized("missing timestamp or sign header")
        if not ts.isdigit():
            raise unauthorized("timestamp is not a number")
        if abs(time.time() * 1000 - int(ts)) > MAX_SKEW_MS:
            raise unauthorized("stale request: timestamp more than one hour away", "stale_request")
        if not same_secret(given, sign(ts, app_secret)):
            raise unauthorized("sign does not match")
        data = parse_json(body)
        try:
            msg = RobotMessage.model_validate(data)
        except ValidationError:
            raise APIError(400, "malformed_event", "not a robot message") from None
        target = urlsplit(msg.sessionWebhook)
        if target.scheme not in ("https", "http") or (target.hostname or "").lower() not in hosts:
            raise APIError(400, "webhook_not_allowed", "sessionWebhook host is not allowed")
        if not rt.dedup.first_time("dingtalk:" + msg.msgId):
            return {"msgtype": "empty"}
        if msg.msgtype != "text":
            return {"msgtype": "empty"}
        rt.submit("dingtalk sessionWebhook", _post, rt, msg)
        # nothing in the HTTP response: the answer follows through sessionWebhook
        return {"msgtype": "empty"}

    return router
