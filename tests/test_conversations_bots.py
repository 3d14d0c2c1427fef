"""Chat threads are conversations: Slack, Feishu, DingTalk and WeCom against their local protocol servers.

Reuses tests/test_bots.py's platform side (a threaded HTTP server speaking each documented
protocol) and its signing helpers; one real uvicorn server with every platform configured.
"""

from __future__ import annotations

import json
import uuid

from tests.test_bots import (  # bot and fake are session fixtures in tests/conftest.py
    FEISHU_BOT, _mention, dingtalk_message, dingtalk_post, feishu_message, feishu_post,
    post_slack, slack_event, wecom_post, wecom_text,
)

FIRST = "Redis 缓存是怎么设计的？"
FOLLOW = "它默认多久过期？"
FACT = "30 分钟"


def _slack(bot, fake, channel: str, text: str, ts: str, thread_ts: str | None = None) -> dict:
    ev = {"type": "app_mention", "text": f"<@U0BOT> {text}", "user": "U1", "channel": channel, "ts": ts}
    if thread_ts:
        ev["thread_ts"] = thread_ts
    before = len(fake.of("/api/chat.postMessage", c=lambda c: c.json["channel"] == channel))
    assert post_slack(bot, "/bots/slack/events", slack_event(ev)).status_code == 200
    calls = fake.wait("/api/chat.postMessage", count=before + 1, c=lambda c: c.json["channel"] == channel)
    return calls[-1].json


def test_slack_thread_reply_is_a_follow_up_and_a_new_message_starts_fresh(bot, fake):
    channel = "C" + uuid.uuid4().hex[:8].upper()
    root = "1700000100.000100"
    first = _slack(bot, fake, channel, FIRST, root)
    assert "检索" not in first["text"]
    follow = _slack(bot, fake, channel, FOLLOW, "1700000100.000200", thread_ts=root)
    assert follow["thread_ts"] == root
    assert FACT in follow["text"] and "检索：" in follow["text"] and "Redis" in follow["text"].split("\n\n")[0]
    # the same words as a new top-level message: no earlier turns, searched as asked
    fresh = _slack(bot, fake, channel, FOLLOW, "1700000100.000300")
    assert "检索" not in fresh["text"]


def test_slack_new_conversation_command_in_a_thread(bot, fake):
    channel = "C" + uuid.uuid4().hex[:8].upper()
    root = "1700000200.000100"
    _slack(bot, fake, channel, FIRST, root)
    reset = _slack(bot, fake, channel, "新对话", "1700000200.000200", thread_ts=root)
    assert "新的对话" in reset["text"]
    after = _slack(bot, fake, channel, FOLLOW, "1700000200.000300", thread_ts=root)
    assert "检索" not in after["text"]


def _feishu(bot, fake, text: str, chat_id: str, root_id: str | None = None, chat_type: str = "group") -> tuple[str, str]:
    event, message_id = feishu_message(f"@_user_1 {text}", chat_type=chat_type, mentions=[_mention(FEISHU_BOT)])
    event["event"]["message"]["chat_id"] = chat_id
    if root_id:
        event["event"]["message"]["root_id"] = root_id
        event["event"]["message"]["parent_id"] = root_id
    assert feishu_post(bot, event).status_code == 200
    (call,) = fake.wait(f"/open-apis/im/v1/messages/{message_id}/reply")
    return message_id, json.loads(call.json["content"])["elements"][0]["content"]


def test_feishu_reply_chain_is_a_follow_up_and_a_new_group_message_starts_fresh(bot, fake):
    chat = "oc_" + uuid.uuid4().hex
    root, first = _feishu(bot, fake, FIRST, chat)
    assert "检索" not in first
    _, follow = _feishu(bot, fake, FOLLOW, chat, root_id=root)
    assert FACT in follow and "检索：" in follow and "Redis" in follow.split("\n\n")[0]
    _, fresh = _feishu(bot, fake, FOLLOW, chat)
    assert "检索" not in fresh


def test_feishu_p2p_chat_is_one_conversation(bot, fake):
    chat = "oc_" + uuid.uuid4().hex
    _feishu(bot, fake, FIRST, chat, chat_type="p2p")
    _, follow = _feishu(bot, fake, FOLLOW, chat, chat_type="p2p")
    assert "检索：" in follow and FACT in follow


def _dingtalk(bot, fake, text: str, sender: str, conversation_type: str = "1") -> str:
    msg, session = dingtalk_message(fake, text)
    msg.update(senderStaffId=sender, conversationType=conversation_type, conversationId="cid_" + sender)
    assert dingtalk_post(bot, msg).status_code == 200
    (call,) = fake.wait("/dingtalk/session", s=lambda c: c.query.get("session") == [session])
    return call.json["markdown"]["text"]


def test_dingtalk_one_to_one_chat_keeps_a_conversation_per_person(bot, fake):
    me, other = "u" + uuid.uuid4().hex[:8], "u" + uuid.uuid4().hex[:8]
    _dingtalk(bot, fake, FIRST, me)
    follow = _dingtalk(bot, fake, FOLLOW, me)
    assert "检索：" in follow and FACT in follow
    assert "检索" not in _dingtalk(bot, fake, FOLLOW, other)  # another person's chat: their own, empty


def _wecom(bot, fake, text: str, user: str) -> str:
    before = len(fake.of("/cgi-bin/message/send", u=lambda c: c.json["touser"] == user))
    assert wecom_post(bot, wecom_text(text, user=user)).status_code == 200
    calls = fake.wait("/cgi-bin/message/send", count=before + 1, u=lambda c: c.json["touser"] == user)
    return calls[-1].json["markdown"]["content"]


def test_wecom_member_keeps_a_conversation(bot, fake):
    me, other = "m" + uuid.uuid4().hex[:8], "m" + uuid.uuid4().hex[:8]
    _wecom(bot, fake, FIRST, me)
    follow = _wecom(bot, fake, FOLLOW, me)
    assert "检索：" in follow and FACT in follow
    assert "检索" not in _wecom(bot, fake, FOLLOW, other)
