"""WeCom (企业微信) self-built app: callback at /bots/wecom (GET: URL check, POST: messages).

Protocol (docs: 回调配置, 加解密方案说明, 接收消息, 发送应用消息):

* every callback has query ``msg_signature``, ``timestamp``, ``nonce``; the signature is
  SHA1 of the sorted, concatenated [Token, timestamp, nonce, encrypted text];
* encryption is AES-256-CBC with key = base64decode(EncodingAESKey + "="), IV = key[:16],
  PKCS#7 padding to 32 bytes; plaintext = 16 random bytes + 4-byte big-endian length + msg +
  ReceiveId (the CorpID). ``wechatpy.enterprise.crypto.WeChatCrypto`` implements it
  (tested on Python 3.11 with the ``cryptography`` backend);
* the URL check (GET with ``echostr``) is answered with the decrypted echostr, as plain text;
* messages are ``<xml><Encrypt>…</Encrypt></xml>``; the ciphertext is found with a regular
  expression and the signature checked before the XML is parsed or anything decrypted;
  WeCom waits 5 s and retries 3 times, so
  the POST is answered at once with an empty body (no passive reply) and ``MsgId`` is
  remembered;
* the answer is sent with the app message API: ``/cgi-bin/gettoken`` (corpid + corpsecret,
  cached) then ``/cgi-bin/message/send`` with ``msgtype: markdown`` to the sender — not a
  passive reply, because a passive reply must come within those 5 s in the HTTP response.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import xml.etree.ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from api.bots.common import BotRuntime, TokenCache, forbidden, read_body, same_secret, secret, unauthorized
from api.errors import APIError
from qa.chat import WECOM

log = logging.getLogger("api.bots.wecom")

# <Encrypt> holds base64, as CDATA or plain text
_ENCRYPT = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]+)\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>")


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """SHA1 of the sorted, concatenated Token, timestamp, nonce and ciphertext (WeCom's scheme)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()


# a member's UserID; never "@all", never a "|"-separated list
_USER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class WeComClient:
    def __init__(self, rt: BotRuntime):
        self.rt = rt
        self.base = rt.settings.wecom_api_url.rstrip("/")
        self.tokens = TokenCache(self._fetch_token)

    def _fetch_token(self) -> tuple[str, float]:
        s = self.rt.settings
        data = self.rt.http.get(
            f"{self.base}/cgi-bin/gettoken", params={"corpid": s.wecom_corp_id, "corpsecret": secret(s.wecom_secret)}
        ).json()
        if data.get("errcode", 0) != 0 or not data.get("access_token"):
            raise RuntimeError(f"gettoken failed: errcode={data.get('errcode')} errmsg={data.get('errmsg')}")
        return data["access_token"], float(data.get("expires_in", 7200))

    def send_markdown(self, user: str, content: str) -> None:
        body = {
            "touser": user, "msgtype": "markdown", "agentid": self.rt.settings.wecom_agent_id,
            "markdown": {"content": content},
        }
        for attempt in range(2):
            data = self.rt.http.post(
                f"{self.base}/cgi-bin/message/send", params={"access_token": self.tokens.get()}, json=body
            ).json()
            if data.get("errcode") in (40014, 42001) and attempt == 0:  # invalid / expired token
                self.tokens.invalidate()
                continue
            if data.get("errcode", 0) != 0:
                log.warning("WeCom message/send failed: errcode=%s errmsg=%s", data.get("errcode"), data.get("errmsg"))
            return


def _answer(rt: BotRuntime, client: WeComClient, user: str, text: str) -> None:
    # messages to a self-built app are one-to-one: one conversation per member (within the TTL)
    reply = rt.chat.reply(text, WECOM, conversation_key=f"wecom:{rt.settings.wecom_agent_id}:{user}")
    client.send_markdown(user, reply.text)


def build_router(rt: BotRuntime) -> APIRouter:
    router = APIRouter(prefix="/bots", tags=["bots"])
    s = rt.settings
    crypto = WeChatCrypto(secret(s.wecom_token), secret(s.wecom_encoding_aes_key), s.wecom_corp_id)
    client = WeComClient(rt)

    def query(request: Request, *names: str) -> list[str]:
        values = [request.query_params.get(n, "") for n in names]
        if not all(values):
            raise APIError(400, "missing_parameters", f"query parameters {', '.join(names)} are required")
        return values

    def fresh(timestamp: str) -> None:
        # WeCom does not document a window; refuse what is older than our replay memory
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > s.bot_dedup_ttl_s:
            raise unauthorized("stale request timestamp", "stale_request")

    @router.get("/wecom", response_class=PlainTextResponse)
    async def verify_url(request: Request):
        """URL check when the callback is saved: echo the decrypted echostr."""
        sig, ts, nonce, echostr = query(request, "msg_signature", "timestamp", "nonce", "echostr")
        fresh(ts)
        try:
            plain = crypto.check_signature(sig, ts, nonce, echostr)
        except InvalidSignatureException:
            raise unauthorized("msg_signature does not match") from None
        except InvalidCorpIdException:
            raise forbidden("echostr is for another CorpID", "wrong_receiver") from None
        except Exception:
            raise unauthorized("echostr cannot be decrypted", "invalid_encryption") from None
        return PlainTextResponse(plain)

    @router.post("/wecom")
    async def receive(request: Request):
        """An encrypted message from a member; answered later through the message API."""
        sig, ts, nonce = query(request, "msg_signature", "timestamp", "nonce")
        body = await read_body(request)
        fresh(ts)
        # the signature covers <Encrypt>'s text: find it without an XML parser, check it, and only
        # then parse anything (the body of a forged request is never given to a parser)
        m = _ENCRYPT.search(body)
        if not m:
            raise unauthorized("msg_signature does not match: no signed <Encrypt> element")
        encrypt = (m.group(1) or m.group(2)).decode("ascii")
        if not same_secret(sig, msg_signature(secret(s.wecom_token), ts, nonce, encrypt)):
            raise unauthorized("msg_signature does not match")
        try:
            if ET.fromstring(body).findtext("Encrypt") != encrypt:
                raise APIError(400, "malformed_xml", "body has more than one <Encrypt> element")
        except ET.ParseError:
            raise APIError(400, "malformed_xml", "body is not well-formed XML") from None
        try:
            xml = crypto.decrypt_message({"Encrypt": encrypt}, sig, ts, nonce)
        except InvalidSignatureException:
            raise unauthorized("msg_signature does not match") from None
        except InvalidCorpIdException:
            raise forbidden("message is for another CorpID", "wrong_receiver") from None
        except Exception:  # bad base64, bad padding, garbage length: not from our WeCom app
            raise unauthorized("message cannot be decrypted", "invalid_encryption") from None
        try:
            msg = parse_message(xml)
        except Exception:
            raise APIError(400, "malformed_xml", "decrypted message is not well-formed XML") from None
        if getattr(msg, "type", "") != "text":
            return Response(status_code=200)  # events (enter_agent, …) and media: nothing to answer
        key = str(msg.id or f"{msg.source}:{msg.time}")
        if not rt.dedup.first_time("wecom:" + key):
            return Response(status_code=200)
        if not _USER_ID.match(msg.source or ""):
            log.warning("WeCom message from an unexpected UserID; not answering")
            return Response(status_code=200)
        rt.submit("wecom message/send", _answer, rt, client, msg.source, msg.content or "")
        return Response(status_code=200)  # empty body: no passive reply

    return router
