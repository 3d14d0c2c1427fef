"""Feishu / Lark: event subscription v2 (``im.message.receive_v1``) at /bots/feishu/events.

Protocol (docs: 事件订阅 "配置请求地址", "接收事件", 回复消息, 获取 tenant_access_token):

* with an Encrypt Key the body is ``{"encrypt": base64}``: AES-256-CBC with key =
  SHA-256(Encrypt Key), IV = the first 16 bytes of the decoded payload, PKCS#7 padding;
* events (not the URL check) are signed: ``X-Lark-Signature`` =
  hex SHA-256(``X-Lark-Request-Timestamp`` + ``X-Lark-Request-Nonce`` + Encrypt Key + raw body);
  a signed request is verified before its body is parsed or decrypted; an unsigned one is
  accepted only as the URL check (authenticated by the Verification Token inside);
* the Verification Token is ``token`` (URL check) or ``header.token`` (v2 events);
* the URL check (``type: url_verification``) is answered with its ``challenge`` within 1 s;
* Feishu retries an event until it gets HTTP 200, so ``header.event_id`` is remembered and a
  second delivery is acknowledged without a second answer;
* the answer is a message card sent with the reply API
  (``POST /open-apis/im/v1/messages/{message_id}/reply``) using a tenant_access_token from
  ``/open-apis/auth/v3/tenant_access_token/internal``; both under ``QA_FEISHU_API_URL``.
* in groups only messages that @-mention the bot are answered (its open_id is
  ``QA_FEISHU_BOT_OPEN_ID`` or looked up once via ``/open-apis/bot/v3/info``); p2p always.

The official SDK (lark-oapi) was not used: importing it takes ~7 s, its webhook handler answers
signature failures with HTTP 500 and does not deduplicate; the protocol is small and documented.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from api.bots.common import BotRuntime, TokenCache, forbidden, parse_json, read_body, same_secret, secret, unauthorized
from api.bots.votes import feishu_card_action, feishu_element, votes_on
from api.errors import APIError
from qa.chat import FEISHU, Reply, neutral_escape

log = logging.getLogger("api.bots.feishu")

_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class DecryptError(ValueError):
    pass


def decrypt(encrypt_key: str, payload: str) -> str:
    """Feishu's documented AES-256-CBC scheme; raises DecryptError on anything malformed."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("encrypt is not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise DecryptError("encrypt has an invalid length")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = dec.update(raw[16:]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise DecryptError("wrong Encrypt Key or corrupted payload") from None


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


class Mention(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str = ""
    id: dict = {}
    name: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message_id: str
    root_id: str | None = None  # set on a reply: the message the reply chain (thread) started from
    parent_id: str | None = None
    thread_id: str | None = None
    chat_id: str = ""
    chat_type: str = ""
    message_type: str = ""
    content: str = ""
    mentions: list[Mention] | None = None


class Sender(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sender_type: str = ""


class MessageEvent(BaseModel):
    """``event`` of ``im.message.receive_v1`` (fields we use)."""

    model_config = ConfigDict(extra="ignore")
    sender: Sender = Sender()
    message: Message


def card(reply: Reply, votes: bool = False) -> dict:
    """A message card: the question as header, answer and numbered sources as markdown.

    The header is plain_text (not parsed), but it is user text: brackets are made inert anyway
    so that no client-side rendering could turn it into an ``<at>`` tag.
    """
    title = neutral_escape(reply.question[:100]) or "问答"
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": title},
            "template": "blue" if reply.status == "answered" else "grey",
        },
        "elements": [{"tag": "markdown", "content": reply.text}]
        + ([feishu_element(reply.answer.answer_id)] if votes and reply.answer is not None else []),
    }


class FeishuClient:
    """The two or three Open API calls the bot makes, with the token cached."""

    def __init__(self, rt: BotRuntime):
        self.rt = rt
        self.base = rt.settings.feishu_api_url.rstrip("/")
        self.tokens = TokenCache(self._fetch_token)
        self._bot_open_id = rt.settings.feishu_bot_open_id
        self._lock = threading.Lock()

    def _fetch_token(self) -> tuple[str, float]:
        s = self.rt.settings
        r = self.rt.http.post(
            f"{self.base}/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": s.feishu_app_id, "app_secret": secret(s.feishu_app_secret)},
        )
        data = r.json()
        if data.get("code") != 0 or not data.get("tenant_access_token"):
            raise RuntimeError(f"tenant_access_token failed: code={data.get('code')} msg={data.get('msg')}")
        return data["tenant_access_token"], float(data.get("expire", 7200))

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.tokens.get()}"}

    def bot_open_id(self) -> str | None:
        with self._lock:
            if self._bot_open_id is None:
                r = self.rt.http.get(f"{self.base}/open-apis/bot/v3/info", headers=self._headers())
                data = r.json()
                self._bot_open_id = (data.get("bot") or {}).get("open_id") or None
                if self._bot_open_id is None:
                    log.warning("could not look up the bot's open_id (code=%s)", data.get("code"))
            return self._bot_open_id

    def reply(self, message_id: str, body: dict) -> None:
        url = f"{self.base}/open-apis/im/v1/messages/{message_id}/reply"
        for attempt in range(2):
            data = self.rt.http.post(url, json=body, headers=self._headers()).json()
            if data.get("code") in (99991661, 99991663, 99991668) and attempt == 0:
                self.tokens.invalidate()  # token missing/expired: fetch a fresh one once
                continue
            if data.get("code") != 0:
                log.warning("Feishu reply failed: code=%s msg=%s", data.get("code"), data.get("msg"))
            return


def conversation_keys(msg: Message) -> tuple[str, tuple[str, ...]]:
    """A reply chain (``root_id``) or topic thread is a conversation; a new group message starts one.

    A one-to-one (p2p) chat is one conversation within the TTL; the reply chain the bot's
    answer opens is bound to it as well."""
    thread = f"feishu:{msg.chat_id}:{msg.thread_id or msg.root_id or msg.message_id}"
    if msg.chat_type == "p2p" and not (msg.root_id or msg.thread_id):
        return f"feishu:p2p:{msg.chat_id}", (thread,)
    return thread, ()


def _answer(client: FeishuClient, msg: Message, text: str) -> None:
    if msg.chat_type != "p2p":
        bot = client.bot_open_id()
        if not bot or not any(m.id.get("open_id") == bot for m in msg.mentions or []):
            return  # a group message that does not @-mention this bot
    key, also = conversation_keys(msg)
    reply = client.rt.chat.reply(text, FEISHU, conversation_key=key, also_keys=also)
    body = card(reply, votes_on(client.rt))
    client.reply(msg.message_id, {"msg_type": "interactive", "content": json.dumps(body, ensure_ascii=False)})


def build_router(rt: BotRuntime) -> APIRouter:
    router = APIRouter(prefix="/bots/feishu", tags=["bots"])
    settings = rt.settings
    encrypt_key = secret(settings.feishu_encrypt_key)
    token = secret(settings.feishu_verification_token)
    client = FeishuClient(rt)

    @router.post("/events")
    async def events(request: Request):
        """URL verification and im.message.receive_v1, plain or encrypted."""
        body = await read_body(request)
        ts = request.headers.get("x-lark-request-timestamp", "")
        nonce = request.headers.get("x-lark-request-nonce", "")
        sig = request.headers.get("x-lark-signature", "")
        signed = bool(ts or nonce or sig)
        if encrypt_key and signed:
            # the signature covers the raw body: checked before anything is decrypted or parsed
            if not (ts and nonce and sig):
                raise unauthorized("missing X-Lark-Signature headers")
            if not same_secret(sig, signature(ts, nonce, encrypt_key, body)):
                raise unauthorized("X-Lark-Signature does not match")
            # older than our replay memory: a replay we could no longer recognise
            if not ts.isdigit() or abs(time.time() - int(ts)) > settings.bot_dedup_ttl_s:
                raise unauthorized("stale request timestamp", "stale_request")
        outer = parse_json(body)
        if "encrypt" in outer:
            if not encrypt_key:
                raise APIError(400, "encrypted_without_key", "encrypted event but QA_FEISHU_ENCRYPT_KEY is not set")
            try:
                data = parse_json(decrypt(encrypt_key, str(outer["encrypt"])))
            except DecryptError as exc:
                raise unauthorized(f"cannot decrypt: {exc}", "invalid_encryption") from None
        else:
            data = outer

        if data.get("type") == "url_verification":
            if token and not same_secret(str(data.get("token") or ""), token):
                raise forbidden("verification token does not match")
            return {"challenge": str(data.get("challenge", ""))}

        header = data.get("header") if isinstance(data.get("header"), dict) else {}
        if encrypt_key and not signed:  # only the URL check comes unsigned (its token is checked above)
            raise unauthorized("missing X-Lark-Signature headers")
        if token and not same_secret(str(header.get("token") or ""), token):
            raise forbidden("verification token does not match")

        if data.get("schema") == "2.0" and header.get("event_type") == "card.action.trigger":
            return await feishu_card_action(request, data)  # a 👍/👎 press, verified above like events
        if data.get("schema") != "2.0" or header.get("event_type") != "im.message.receive_v1":
            return {"msg": "ignored"}
        event_id = str(header.get("event_id") or "")
        if not event_id or not rt.dedup.first_time("feishu:" + event_id):
            return {"msg": "duplicate"}
        try:
            ev = MessageEvent.model_validate(data.get("event") or {})
        except ValidationError:
            raise APIError(400, "malformed_event", "event has an unexpected shape") from None
        if ev.sender.sender_type not in ("user", "") or ev.message.message_type != "text":
            return {"msg": "ignored"}
        if not _MESSAGE_ID.match(ev.message.message_id):
            raise APIError(400, "malformed_event", "message_id has an unexpected form")
        if ev.message.chat_type != "p2p" and not ev.message.mentions:
            return {"msg": "ignored"}
        try:
            text = json.loads(ev.message.content).get("text", "")
        except (ValueError, AttributeError):
            raise APIError(400, "malformed_event", "message content is not JSON text") from None
        rt.submit("feishu reply", _answer, client, ev.message, str(text))
        return {"msg": "ok"}

    return router


__all__ = ["build_router", "decrypt", "signature", "card"]
