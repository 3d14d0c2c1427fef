"""Chat-platform webhooks end to end, over real HTTP on 127.0.0.1.

One real uvicorn server runs with all four platforms configured. A small threaded HTTP
server plays the platforms' side: it records what the bot posts back (Slack chat.postMessage
and response_url, Feishu auth + reply, DingTalk sessionWebhook, WeCom gettoken + message/send).
Requests are signed / encrypted here exactly as each platform documents it — with hashlib,
hmac and cryptography, independently of the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import string
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.conftest import free_port, start_server, stop_server

pytestmark = [pytest.mark.model, pytest.mark.server]

QUESTION = "Redis 缓存默认多久过期？"
FACT = "30 分钟"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TOKEN = "xoxb-test-token"
FEISHU_APP_ID, FEISHU_APP_SECRET = "cli_test", "feishu-app-secret"
FEISHU_TOKEN, FEISHU_KEY = "feishu-verification-token", "feishu-encrypt-key"
FEISHU_BOT = "ou_bot_open_id"
DINGTALK_SECRET = "dingtalk-app-secret"
WECOM_CORP, WECOM_TOKEN, WECOM_SECRET, WECOM_AGENT = "ww_corp_test", "wecomtoken", "wecom-secret", 1000002
WECOM_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom issues them
QUIET = 0.8  # how long "nothing more arrives" is watched for


# --------------------------------------------------------------------------- the platforms' side


class Recorded:
    def __init__(self, method: str, path: str, query: dict, headers: dict, body: bytes):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class FakePlatforms:
    """Answers the platform APIs our bot calls and records every call."""

    def __init__(self):
        self.calls: list[Recorded] = []
        self.cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep the test output clean
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                rec = Recorded(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
                status, payload = fake.respond(rec)
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with fake.cond:
                    fake.calls.append(rec)
                    fake.cond.notify_all()

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, r: Recorded) -> tuple[int, dict | bytes]:
        p = r.path
        if p == "/api/chat.postMessage":
            ok = r.headers.get("Authorization") == f"Bearer {SLACK_TOKEN}"
            return 200, {"ok": ok, "ts": "1700000000.000200"} if ok else {"ok": False, "error": "invalid_auth"}
        if p.startswith("/slack/respond/"):
            return 200, b"ok"
        if p == "/open-apis/auth/v3/tenant_access_token/internal":
            ok = r.json == {"app_id": FEISHU_APP_ID, "app_secret": FEISHU_APP_SECRET}
            return 200, {"code": 0, "msg": "ok", "tenant_access_token": "t-fake", "expire": 7200} if ok else {
                "code": 10014,
                "msg": "app secret invalid",
            }
        if p == "/open-apis/bot/v3/info":
            return 200, {"code": 0, "msg": "ok", "bot": {"open_id": FEISHU_BOT, "app_name": "问答"}}
        if p.startswith("/open-apis/im/v1/messages/") and p.endswith("/reply"):
            if r.headers.get("Authorization") != "Bearer t-fake":
                return 200, {"code": 99991663, "msg": "invalid tenant access token"}
            return 200, {"code": 0, "msg": "success", "data": {"message_id": "om_reply"}}
        if p.startswith("/dingtalk/session"):
            return 200, {"errcode": 0, "errmsg": "ok"}
        if p == "/cgi-bin/gettoken":
            ok = r.query.get("corpid") == [WECOM_CORP] and r.query.get("corpsecret") == [WECOM_SECRET]
            return 200, {"errcode": 0, "errmsg": "ok", "access_token": "wt-fake", "expires_in": 7200} if ok else {
                "errcode": 40001,
                "errmsg": "invalid secret",
            }
        if p == "/cgi-bin/message/send":
            ok = r.query.get("access_token") == ["wt-fake"]
            return 200, {"errcode": 0, "errmsg": "ok"} if ok else {"errcode": 40014, "errmsg": "invalid access_token"}
        return 404, {"error": "unknown path"}

    def of(self, prefix: str, **where) -> list[Recorded]:
        with self.cond:
            calls = [c for c in self.calls if c.path.startswith(prefix)]
        return [c for c in calls if all(f(c) for f in where.values())]

    def wait(self, prefix: str, count: int = 1, timeout: float = 20, **where) -> list[Recorded]:
        deadline = time.time() + timeout
        with self.cond:
            while len(self.of_locked(prefix, where)) < count:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} call(s) to {prefix}, got {len(self.of_locked(prefix, where))}"
                    )
                self.cond.wait(left)
            return self.of_locked(prefix, where)

    def of_locked(self, prefix, where):
        return [c for c in self.calls if c.path.startswith(prefix) and all(f(c) for f in where.values())]


def bot_env(fake: FakePlatforms) -> dict:
    """Every platform configured, all outgoing calls pointed at ``fake``.

    The ``fake`` and ``bot`` fixtures (tests/conftest.py) are session-scoped: this module,
    test_conversations_bots.py and test_feedback_bots.py share ONE such server."""
    return {
        "QA_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "QA_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "QA_SLACK_API_URL": fake.url + "/api/",
        "QA_SLACK_RESPONSE_URL_HOSTS": "127.0.0.1",  # the fake platform plays hooks.slack.com
        "QA_FEISHU_APP_ID": FEISHU_APP_ID,
        "QA_FEISHU_APP_SECRET": FEISHU_APP_SECRET,
        "QA_FEISHU_VERIFICATION_TOKEN": FEISHU_TOKEN,
        "QA_FEISHU_ENCRYPT_KEY": FEISHU_KEY,
        "QA_FEISHU_API_URL": fake.url,
        "QA_DINGTALK_APP_SECRET": DINGTALK_SECRET,
        "QA_DINGTALK_WEBHOOK_HOSTS": "127.0.0.1",
        "QA_WECOM_CORP_ID": WECOM_CORP,
        "QA_WECOM_TOKEN": WECOM_TOKEN,
        "QA_WECOM_ENCODING_AES_KEY": WECOM_AES,
        "QA_WECOM_SECRET": WECOM_SECRET,
        "QA_WECOM_AGENT_ID": str(WECOM_AGENT),
        "QA_WECOM_API_URL": fake.url,
    }


def quiet(fake: FakePlatforms, prefix: str, expected: int, **where) -> None:
    """Nothing beyond ``expected`` calls arrives within QUIET seconds (no second answer)."""
    time.sleep(QUIET)
    assert len(fake.of(prefix, **where)) == expected


# --------------------------------------------------------------------------- Slack


def slack_headers(body: bytes, ts: int | None = None, secret: str = SLACK_SECRET, **extra) -> dict:
    ts = int(time.time()) if ts is None else ts
    base = f"v0:{ts}:".encode() + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig, **extra}


def slack_event(event: dict, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "token": "deprecated",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10],
            "event_time": int(time.time()),
            "event": event,
        }
    ).encode()


def post_slack(bot, path: str, body: bytes, headers: dict | None = None, content_type="application/json"):
    h = {"content-type": content_type, **(headers if headers is not None else slack_headers(body))}
    return httpx.post(bot.url + path, content=body, headers=h, timeout=10)


def test_slack_url_verification(bot):
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    ).encode()
    r = post_slack(bot, "/bots/slack/events", body)
    assert r.status_code == 200 and r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_slack_rejects_bad_stale_and_unsigned_requests(bot, fake):
    body = slack_event(
        {"type": "app_mention", "text": f"<@UBOT> {QUESTION}", "user": "U1", "channel": "CX", "ts": "1.1"}
    )
    assert post_slack(bot, "/bots/slack/events", body, slack_headers(body, secret="wrong")).status_code == 401
    stale = post_slack(bot, "/bots/slack/events", body, slack_headers(body, ts=int(time.time()) - 6 * 60))
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "stale_request"
    assert post_slack(bot, "/bots/slack/events", body, {}).status_code == 401
    tampered = slack_headers(body)
    assert post_slack(bot, "/bots/slack/events", body.replace(b"CX", b"CY"), tampered).status_code == 401
    form = urlencode({"command": "/ask", "text": QUESTION, "response_url": fake.url + "/slack/respond/x"}).encode()
    r = post_slack(
        bot, "/bots/slack/commands", form, slack_headers(form, secret="wrong"), "application/x-www-form-urlencoded"
    )
    assert r.status_code == 401
    quiet(fake, "/api/chat.postMessage", 0, ch=lambda c: c.json["channel"] in ("CX", "CY"))


def test_slack_malformed_json_is_400(bot):
    r = post_slack(bot, "/bots/slack/events", b'{"type": "event_callback", ')
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


def test_slack_app_mention_answers_in_thread_once(bot, fake):
    event_id = "Ev" + uuid.uuid4().hex[:10]
    ev = {
        "type": "app_mention",
        "text": f"<@U0BOT> {QUESTION}",
        "user": "U1",
        "channel": "C100",
        "ts": "1700000000.000100",
    }
    body = slack_event(ev, event_id)
    r = post_slack(bot, "/bots/slack/events", body)
    assert r.status_code == 200  # acked at once; the answer is posted later (below)
    # Slack's retry of the same delivery, and a re-signed replay of the same event_id
    retry = post_slack(
        bot,
        "/bots/slack/events",
        body,
        slack_headers(body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}),
    )
    assert retry.status_code == 200 and retry.headers.get("x-slack-no-retry") == "1"
    replay = post_slack(bot, "/bots/slack/events", body, slack_headers(body, ts=int(time.time()) + 1))
    assert replay.status_code == 200 and replay.json()["ignored"] == "duplicate"

    (call,) = fake.wait("/api/chat.postMessage", ch=lambda c: c.json["channel"] == "C100")
    sent = call.json
    assert call.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert sent["thread_ts"] == "1700000000.000100"
    assert FACT in sent["text"] and "[1]" in sent["text"] and "*来源*" in sent["text"]
    assert sent["blocks"][0]["text"]["type"] == "mrkdwn" and len(sent["blocks"][0]["text"]["text"]) <= 3000
    quiet(fake, "/api/chat.postMessage", 1, ch=lambda c: c.json["channel"] == "C100")


def test_slack_direct_message_answered_bot_and_channel_chatter_ignored(bot, fake):
    dm = {
        "type": "message",
        "channel_type": "im",
        "text": QUESTION,
        "user": "U2",
        "channel": "D200",
        "ts": "1700000001.000100",
    }
    own = {**dm, "channel": "D201", "bot_id": "B1", "text": "我自己的回答 30 分钟"}
    chatter = {
        "type": "message",
        "channel_type": "channel",
        "text": QUESTION,
        "user": "U3",
        "channel": "C202",
        "ts": "2.2",
    }
    for ev in (dm, own, chatter):
        assert post_slack(bot, "/bots/slack/events", slack_event(ev)).status_code == 200
    (call,) = fake.wait("/api/chat.postMessage", ch=lambda c: c.json["channel"] == "D200")
    assert FACT in call.json["text"] and call.json["thread_ts"] == "1700000001.000100"
    quiet(fake, "/api/chat.postMessage", 0, ch=lambda c: c.json["channel"] in ("D201", "C202"))


def test_slack_slash_command_answers_via_response_url_and_escapes(bot, fake):
    hook = "/slack/respond/" + uuid.uuid4().hex
    # Slack sends user-typed <, >, & escaped; "<!channel>" typed by the user arrives as &lt;!channel&gt;
    form = urlencode(
        {
            "command": "/ask",
            "text": f"{QUESTION} &lt;!channel&gt; &amp;",
            "user_id": "U1",
            "channel_id": "C1",
            "response_url": fake.url + hook,
            "trigger_id": "1.2.3",
        }
    ).encode()
    headers = slack_headers(form)
    r = post_slack(bot, "/bots/slack/commands", form, headers, "application/x-www-form-urlencoded")
    assert r.status_code == 200
    assert r.json()["response_type"] == "ephemeral"
    again = post_slack(bot, "/bots/slack/commands", form, headers, "application/x-www-form-urlencoded")
    assert again.status_code == 200  # a replay of the very same signed request
    (call,) = fake.wait(hook)
    sent = call.json
    assert sent["response_type"] == "in_channel"
    assert FACT in sent["text"] and "[1]" in sent["text"]
    assert "<!channel>" not in sent["text"] and "&lt;!channel&gt; &amp;" in sent["text"]
    assert len(sent["blocks"][0]["text"]["text"]) <= 3000
    quiet(fake, hook, 1)


def test_slack_over_long_question_is_refused_politely(bot, fake):
    hook = "/slack/respond/" + uuid.uuid4().hex
    form = urlencode({"command": "/ask", "text": "缓存" * 400, "response_url": fake.url + hook}).encode()
    assert post_slack(bot, "/bots/slack/commands", form, None, "application/x-www-form-urlencoded").status_code == 200
    (call,) = fake.wait(hook)
    assert "800" in call.json["text"] and "500" in call.json["text"] and len(call.json["text"]) <= 3000


# --------------------------------------------------------------------------- Feishu / Lark


def feishu_encrypt(plain: dict, key: str = FEISHU_KEY) -> str:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(json.dumps(plain, ensure_ascii=False).encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def feishu_post(
    bot,
    payload: dict | bytes,
    *,
    encrypt: bool = True,
    key: str = FEISHU_KEY,
    ts: int | None = None,
    sign_key: str = FEISHU_KEY,
    signed: bool = True,
):
    if isinstance(payload, bytes):
        body = payload
    else:
        body = json.dumps({"encrypt": feishu_encrypt(payload, key)} if encrypt else payload).encode()
    ts_s, nonce = str(int(time.time()) if ts is None else ts), uuid.uuid4().hex
    headers = {"content-type": "application/json"}
    if signed:
        sig = hashlib.sha256((ts_s + nonce + sign_key).encode() + body).hexdigest()
        headers.update({"X-Lark-Request-Timestamp": ts_s, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": sig})
    return httpx.post(bot.url + "/bots/feishu/events", content=body, headers=headers, timeout=10)


def feishu_message(
    text: str,
    chat_type: str = "p2p",
    mentions: list | None = None,
    event_id: str | None = None,
    token: str = FEISHU_TOKEN,
) -> tuple[dict, str]:
    message_id = "om_" + uuid.uuid4().hex
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "token": token,
            "create_time": str(int(time.time() * 1000)),
            "event_type": "im.message.receive_v1",
            "tenant_key": "tk",
            "app_id": FEISHU_APP_ID,
        },
        "event": {
            "sender": {"sender_id": {"open_id": "ou_user"}, "sender_type": "user", "tenant_key": "tk"},
            "message": {
                "message_id": message_id,
                "chat_id": "oc_chat",
                "chat_type": chat_type,
                "message_type": "text",
                "content": json.dumps({"text": text}, ensure_ascii=False),
                "mentions": mentions,
                "create_time": str(int(time.time() * 1000)),
            },
        },
    }, message_id


def _mention(open_id: str, key: str = "@_user_1") -> dict:
    return {"key": key, "id": {"open_id": open_id, "union_id": "on_x", "user_id": "u"}, "name": "x", "tenant_key": "tk"}


def test_feishu_url_verification_plain_encrypted_and_wrong_token(bot):
    check = {"challenge": "ajls384kdjx98XX", "token": FEISHU_TOKEN, "type": "url_verification"}
    r = feishu_post(bot, check, encrypt=False, signed=False)
    assert r.status_code == 200 and r.json() == {"challenge": "ajls384kdjx98XX"}
    r = feishu_post(bot, check, signed=False)
    assert r.status_code == 200 and r.json() == {"challenge": "ajls384kdjx98XX"}
    r = feishu_post(bot, {**check, "token": "not-ours"}, encrypt=False, signed=False)
    assert r.status_code == 403


def test_feishu_p2p_message_gets_one_card_reply(bot, fake):
    event, message_id = feishu_message(QUESTION)
    assert feishu_post(bot, event).status_code == 200
    # Feishu re-delivers the same event_id until it sees a 200: a second answer must not follow
    assert feishu_post(bot, event).json() == {"msg": "duplicate"}
    (call,) = fake.wait(f"/open-apis/im/v1/messages/{message_id}/reply")
    assert call.headers["Authorization"] == "Bearer t-fake"
    assert fake.of("/open-apis/auth/v3/tenant_access_token/internal")
    assert call.json["msg_type"] == "interactive"
    card = json.loads(call.json["content"])
    text = card["elements"][0]["content"]
    assert FACT in text and "[1]" in text and "**来源**" in text
    assert card["header"]["title"]["content"] == QUESTION and card["header"]["title"]["tag"] == "plain_text"
    assert len(call.json["content"].encode()) < 30 * 1024
    quiet(fake, f"/open-apis/im/v1/messages/{message_id}/reply", 1)


def test_feishu_rejects_forgeries(bot, fake):
    event, message_id = feishu_message(QUESTION)
    assert feishu_post(bot, event, sign_key="other").status_code == 401  # wrong signature
    assert feishu_post(bot, event, signed=False).status_code == 401  # no signature headers
    assert feishu_post(bot, event, key="another-encrypt-key").status_code == 401  # not our Encrypt Key
    stale = feishu_post(bot, event, ts=int(time.time()) - 3 * 86400)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "stale_request"
    wrong_token, mid2 = feishu_message(QUESTION, token="not-ours")
    assert feishu_post(bot, wrong_token).status_code == 403
    assert feishu_post(bot, b"{not json").status_code == 400
    assert feishu_post(bot, json.dumps({"encrypt": "%%%not base64"}).encode()).status_code == 401
    quiet(fake, "/open-apis/im/v1/messages/", 0, m=lambda c: message_id in c.path or mid2 in c.path)


def test_feishu_group_needs_a_mention_of_this_bot(bot, fake):
    silent, m1 = feishu_message(QUESTION, chat_type="group")
    other, m2 = feishu_message(f"@_user_1 {QUESTION}", chat_type="group", mentions=[_mention("ou_someone_else")])
    addressed, m3 = feishu_message(f"@_user_1 {QUESTION}", chat_type="group", mentions=[_mention(FEISHU_BOT)])
    for ev in (silent, other, addressed):
        assert feishu_post(bot, ev).status_code == 200
    (call,) = fake.wait(f"/open-apis/im/v1/messages/{m3}/reply")
    assert FACT in json.loads(call.json["content"])["elements"][0]["content"]
    quiet(fake, "/open-apis/im/v1/messages/", 0, m=lambda c: m1 in c.path or m2 in c.path)


def test_feishu_escapes_user_text_in_the_card(bot, fake):
    # "<at id=all></at>" in lark markdown would notify everyone; it must arrive inert
    event, message_id = feishu_message(f"{QUESTION} <at id=all></at>")
    assert feishu_post(bot, event).status_code == 200
    (call,) = fake.wait(f"/open-apis/im/v1/messages/{message_id}/reply")
    assert "<at" not in call.json["content"]


# --------------------------------------------------------------------------- DingTalk


def dingtalk_sign(ts: str, secret: str = DINGTALK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()).decode()


def dingtalk_message(fake, text: str, webhook: str | None = None, msg_id: str | None = None) -> tuple[dict, str]:
    session = uuid.uuid4().hex
    return {
        "conversationId": "cid_x",
        "atUsers": [{"dingtalkId": "$:bot"}],
        "chatbotCorpId": "ding_corp",
        "chatbotUserId": "$:bot",
        "msgId": msg_id or "msg" + uuid.uuid4().hex,
        "senderNick": "张三",
        "isAdmin": False,
        "senderStaffId": "user123",
        "sessionWebhookExpiredTime": int(time.time() * 1000) + 3600_000,
        "createAt": int(time.time() * 1000),
        "senderCorpId": "ding_corp",
        "conversationType": "2",
        "senderId": "$:sender",
        "conversationTitle": "机器人测试",
        "isInAtList": True,
        "sessionWebhook": webhook or f"{fake.url}/dingtalk/session?session={session}",
        "text": {"content": f" {text}"},
        "msgtype": "text",
    }, session


def dingtalk_post(
    bot, payload: dict | bytes, ts: int | None = None, secret: str = DINGTALK_SECRET, headers: dict | None = None
):
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    ts_s = str(int(time.time() * 1000) if ts is None else ts)
    h = {"content-type": "application/json; charset=utf-8", "timestamp": ts_s, "sign": dingtalk_sign(ts_s, secret)}
    return httpx.post(bot.url + "/bots/dingtalk", content=body, headers=h if headers is None else headers, timeout=10)


def test_dingtalk_answers_once_through_session_webhook(bot, fake):
    msg, session = dingtalk_message(fake, QUESTION)
    assert dingtalk_post(bot, msg).json() == {"msgtype": "empty"}
    assert dingtalk_post(bot, msg).status_code == 200  # the same msgId again
    (call,) = fake.wait("/dingtalk/session", s=lambda c: c.query.get("session") == [session])
    sent = call.json
    assert sent["msgtype"] == "markdown" and sent["at"] == {"isAtAll": False}
    assert FACT in sent["markdown"]["text"] and "[1]" in sent["markdown"]["text"]
    assert sent["markdown"]["title"] == QUESTION and len(sent["markdown"]["text"]) <= 4000
    quiet(fake, "/dingtalk/session", 1, s=lambda c: c.query.get("session") == [session])


def test_dingtalk_rejects_bad_sign_stale_and_foreign_webhooks(bot, fake):
    msg, session = dingtalk_message(fake, QUESTION)
    assert dingtalk_post(bot, msg, secret="wrong").status_code == 401
    stale = dingtalk_post(bot, msg, ts=int(time.time() * 1000) - 2 * 3600_000)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "stale_request"
    assert dingtalk_post(bot, msg, headers={"content-type": "application/json"}).status_code == 401
    assert dingtalk_post(bot, b'{"msgtype": ').status_code == 400
    # a signed request whose sessionWebhook points elsewhere must not make us POST there
    foreign, _ = dingtalk_message(
        fake, QUESTION, webhook=f"http://localhost:{urlsplit(fake.url).port}/dingtalk/session?session=evil"
    )
    r = dingtalk_post(bot, foreign)
    assert r.status_code == 400 and r.json()["error"]["code"] == "webhook_not_allowed"
    quiet(fake, "/dingtalk/session", 0, s=lambda c: c.query.get("session") in ([session], ["evil"]))


# --------------------------------------------------------------------------- WeCom


def wecom_key() -> bytes:
    return base64.b64decode(WECOM_AES + "=")


def wecom_encrypt(msg: str, receive_id: str = WECOM_CORP) -> str:
    """AES-256-CBC, IV = key[:16]; 16 random bytes + 4-byte length + msg + ReceiveId, PKCS#7 to 32."""
    raw = msg.encode()
    plain = (
        "".join(random.choices(string.ascii_letters, k=16)).encode()
        + struct.pack(">I", len(raw))
        + raw
        + receive_id.encode()
    )
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    key = wecom_key()
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def wecom_signature(ts: str, nonce: str, encrypt: str, token: str = WECOM_TOKEN) -> str:
    return hashlib.sha1("".join(sorted([token, ts, nonce, encrypt])).encode()).hexdigest()


def wecom_text(content: str, msg_id: str | None = None, user: str = "zhangsan") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or random.randint(10**15, 10**16)}</MsgId>"
        f"<AgentID>{WECOM_AGENT}</AgentID></xml>"
    )


def wecom_post(
    bot,
    inner: str | None,
    *,
    receive_id: str = WECOM_CORP,
    token: str = WECOM_TOKEN,
    ts: int | None = None,
    body: bytes | None = None,
):
    ts_s, nonce = str(int(time.time()) if ts is None else ts), str(random.randint(10**8, 10**9))
    encrypt = wecom_encrypt(inner or "", receive_id)
    if body is None:
        body = (
            f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName><AgentID><![CDATA[{WECOM_AGENT}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ).encode()
    q = {"msg_signature": wecom_signature(ts_s, nonce, encrypt, token), "timestamp": ts_s, "nonce": nonce}
    return httpx.post(bot.url + "/bots/wecom", params=q, content=body, headers={"content-type": "text/xml"}, timeout=10)


def test_wecom_url_verification(bot):
    ts, nonce, echo = str(int(time.time())), "1372623149", "1616140317555161061"
    encrypted = wecom_encrypt(echo)
    q = {"msg_signature": wecom_signature(ts, nonce, encrypted), "timestamp": ts, "nonce": nonce, "echostr": encrypted}
    # WeCom URL-encodes the query; httpx does too, the server must decode before verifying
    r = httpx.get(bot.url + "/bots/wecom?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in q.items()), timeout=10)
    assert r.status_code == 200 and r.text == echo
    bad = httpx.get(bot.url + "/bots/wecom", params={**q, "msg_signature": "0" * 40}, timeout=10)
    assert bad.status_code == 401
    assert httpx.get(bot.url + "/bots/wecom", params={"timestamp": ts}, timeout=10).status_code == 400


def test_wecom_text_message_answered_once_with_markdown(bot, fake):
    msg_id = str(random.randint(10**15, 10**16))
    xml = wecom_text(QUESTION, msg_id, user="zhangsan")
    r = wecom_post(bot, xml)
    assert r.status_code == 200 and r.text == ""  # no passive reply: the answer follows via message/send
    assert wecom_post(bot, xml).status_code == 200  # WeCom's retry of the same MsgId
    (call,) = fake.wait("/cgi-bin/message/send", u=lambda c: c.json["touser"] == "zhangsan")
    sent = call.json
    assert sent["msgtype"] == "markdown" and sent["agentid"] == WECOM_AGENT
    content = sent["markdown"]["content"]
    assert FACT in content and "[1]" in content and len(content.encode()) <= 2048
    assert fake.of("/cgi-bin/gettoken")
    quiet(fake, "/cgi-bin/message/send", 1, u=lambda c: c.json["touser"] == "zhangsan")


def test_wecom_rejects_forgeries_and_ignores_events(bot, fake):
    xml = wecom_text(QUESTION, user="lisi")
    assert wecom_post(bot, xml, token="not-our-token").status_code == 401
    assert wecom_post(bot, xml, receive_id="ww_other_corp").status_code == 403
    assert wecom_post(bot, xml, ts=int(time.time()) - 3 * 86400).status_code == 401
    assert wecom_post(bot, xml, body=b"<xml><Encrypt>").status_code == 401  # no signed ciphertext in it
    event = (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName><FromUserName><![CDATA[lisi]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[enter_agent]]></Event><AgentID>{WECOM_AGENT}</AgentID></xml>"
    )
    assert wecom_post(bot, event).status_code == 200
    quiet(fake, "/cgi-bin/message/send", 0, u=lambda c: c.json["touser"] == "lisi")


def test_wecom_never_sends_to_all(bot, fake):
    assert wecom_post(bot, wecom_text(QUESTION, user="@all")).status_code == 200
    quiet(fake, "/cgi-bin/message/send", 0, u=lambda c: c.json["touser"] == "@all")


# --------------------------------------------------------------------------- configuration


def test_only_configured_platforms_are_mounted(tmp_path, monkeypatch):
    """No secrets, no /bots routes; each platform appears only with what it needs to verify."""
    from api.main import create_app
    from qa.config import Settings

    for name in list(os.environ):
        if name.startswith(("QA_SLACK", "QA_FEISHU", "QA_DINGTALK", "QA_WECOM")):
            monkeypatch.delenv(name)

    def bot_paths(**kw) -> set[str]:
        paths = create_app(Settings(index_dir=tmp_path, **kw)).openapi()["paths"]
        return {p for p in paths if p.startswith("/bots")}

    assert bot_paths() == set()
    assert bot_paths(slack_signing_secret="s") == {"/bots/slack/events", "/bots/slack/commands", "/bots/slack/interactions"}
    # Feishu without a Verification Token or Encrypt Key could not tell forgeries apart: off
    assert bot_paths(feishu_app_id="a", feishu_app_secret="b") == set()
    assert bot_paths(feishu_app_id="a", feishu_app_secret="b", feishu_verification_token="t") == {"/bots/feishu/events"}
    assert bot_paths(dingtalk_app_secret="d") == {"/bots/dingtalk"}
    wecom = dict(wecom_corp_id="c", wecom_token="t", wecom_encoding_aes_key=WECOM_AES, wecom_secret="s")
    assert bot_paths(**wecom) == set()  # no agent id: it could not send the answer
    assert bot_paths(**wecom, wecom_agent_id=1) == {"/bots/wecom"}


# --------------------------------------------------------------------------- hardening (issue 15)


def test_slack_slash_command_answers_only_to_slack_hosts(bot, fake):
    """A validly signed command cannot make the bot POST its answer to a listener of the sender's choosing."""
    port = urlsplit(fake.url).port
    for url in (f"http://localhost:{port}/slack/respond/evil", "https://evil.example/slack/respond/evil",
                f"http://user@127.0.0.1:{port}/slack/respond/evil"):
        form = urlencode({"command": "/ask", "text": QUESTION, "response_url": url}).encode()
        r = post_slack(bot, "/bots/slack/commands", form, None, "application/x-www-form-urlencoded")
        assert r.status_code == 400 and r.json()["error"]["code"] == "response_url_not_allowed", (url, r.text)
    quiet(fake, "/slack/respond/evil", 0)


def test_slack_response_url_hosts_default_to_slacks_own():
    from api.bots.slack import response_url_allowed
    from qa.config import Settings

    hosts = set(Settings().slack_response_url_hosts.split(","))
    assert response_url_allowed("https://hooks.slack.com/commands/T1/2/abc", hosts)
    assert not response_url_allowed("http://hooks.slack.com/commands/T1/2/abc", hosts)  # never plain http
    assert not response_url_allowed("https://hooks.slack.com.evil.example/x", hosts)
    assert not response_url_allowed("https://127.0.0.1/x", hosts)


def test_feishu_checks_the_signature_before_reading_the_body(bot):
    """A forged request is refused as unsigned whatever its body: nothing is parsed or decrypted first."""
    for body in (b"{not json", json.dumps({"encrypt": "%%%not base64"}).encode(), b"\x00\xff" * 10):
        r = feishu_post(bot, body, sign_key="forged")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature", (body, r.text)
    # a validly signed body is parsed, and its faults reported as before
    assert feishu_post(bot, b"{not json").status_code == 400


def _wecom_raw(bot, body: bytes, encrypt: str, token: str = WECOM_TOKEN):
    ts, nonce = str(int(time.time())), str(random.randint(10**8, 10**9))
    q = {"msg_signature": wecom_signature(ts, nonce, encrypt, token), "timestamp": ts, "nonce": nonce}
    return httpx.post(bot.url + "/bots/wecom", params=q, content=body, headers={"content-type": "text/xml"}, timeout=10)


def test_wecom_checks_the_signature_before_parsing_xml(bot, fake):
    encrypt = wecom_encrypt(wecom_text(QUESTION, user="wangwu"))
    broken = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><!DOCTYPE".encode()  # not well-formed XML
    r = _wecom_raw(bot, broken, encrypt, token="forged")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"
    r = _wecom_raw(bot, broken, encrypt)  # signed: only now is it parsed, and refused as XML
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_xml"
    quiet(fake, "/cgi-bin/message/send", 0, u=lambda c: c.json["touser"] == "wangwu")


def test_delivered_ids_survive_a_restart(built_index, fake, tmp_path):
    """WeCom accepts day-old requests: a replay after a restart must still not be answered twice."""
    env = {
        "QA_WECOM_CORP_ID": WECOM_CORP, "QA_WECOM_TOKEN": WECOM_TOKEN, "QA_WECOM_ENCODING_AES_KEY": WECOM_AES,
        "QA_WECOM_SECRET": WECOM_SECRET, "QA_WECOM_AGENT_ID": str(WECOM_AGENT), "QA_WECOM_API_URL": fake.url,
        "QA_BOT_STATE_DIR": str(tmp_path / "bot-state"),
    }
    xml = wecom_text(QUESTION, str(random.randint(10**15, 10**16)), user="zhaoliu")
    encrypt = wecom_encrypt(xml)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    ts, nonce = str(int(time.time())), "1234567"
    q = {"msg_signature": wecom_signature(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
    for run in range(2):  # the very same signed request, to a server restarted in between
        srv = start_server(built_index, env_extra=env, ready_path="/readyz")
        try:
            r = httpx.post(srv.url + "/bots/wecom", params=q, content=body, timeout=10)
            assert r.status_code == 200
            if run == 0:
                fake.wait("/cgi-bin/message/send", u=lambda c: c.json["touser"] == "zhaoliu")
            else:
                quiet(fake, "/cgi-bin/message/send", 1, u=lambda c: c.json["touser"] == "zhaoliu")
        finally:
            stop_server(srv)
    assert (tmp_path / "bot-state" / "dedup.sqlite").exists()


def test_sqlite_dedup_forgets_after_the_ttl_and_falls_back_to_memory(tmp_path):
    from api.bots.common import Deduper
    from api.bots.dedupstore import SqliteDeduper, open_deduper
    from qa.config import Settings

    d = SqliteDeduper(tmp_path / "d.sqlite", ttl_s=60)
    assert d.first_time("a") and not d.first_time("a") and d.first_time("b")
    d._conn.execute("UPDATE seen SET at = at - 120 WHERE key = 'a'")  # remembered two minutes ago
    assert d.first_time("a") and not d.first_time("a")
    again = SqliteDeduper(tmp_path / "d.sqlite", ttl_s=60)  # another process, or after a restart
    assert not again.first_time("b")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        fallback = open_deduper(Settings(index_dir=tmp_path / "index", bot_state_dir=ro / "state"))
        if os.geteuid() != 0:  # root can write anywhere
            assert isinstance(fallback, Deduper) and fallback.first_time("x") and not fallback.first_time("x")
    finally:
        ro.chmod(0o700)
