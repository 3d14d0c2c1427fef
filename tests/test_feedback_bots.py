"""👍/👎 in Slack and Feishu answers, pressed through the platforms' signed callbacks.

Reuses tests/test_bots.py's real server (every platform configured) and its local server that
plays the platforms' side. Slack interactivity payloads and Feishu ``card.action.trigger``
callbacks are built and signed here as the platforms document them.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from urllib.parse import urlencode

import pytest

from tests.test_bots import (  # bot and fake are the shared session fixtures (tests/conftest.py)
    FEISHU_APP_ID,
    FEISHU_TOKEN,
    QUESTION,
    feishu_message,
    feishu_post,
    post_slack,
    slack_event,
    slack_headers,
)

pytestmark = [pytest.mark.model, pytest.mark.server]


def votes_for(built_index, answer_id: str) -> list[tuple]:
    with sqlite3.connect(built_index / "questions.sqlite") as c:
        return c.execute("SELECT voter, vote FROM votes WHERE answer_id=?", (answer_id,)).fetchall()


def logged(built_index, answer_id: str, timeout: float = 10) -> tuple:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with sqlite3.connect(built_index / "questions.sqlite") as c:
            row = c.execute("SELECT channel, question FROM questions WHERE answer_id=?", (answer_id,)).fetchone()
        if row:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{answer_id} not logged")


def slack_interaction(answer_id: str, action_id: str, user: str, response_url: str) -> bytes:
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "team"},
        "user": {"id": user, "username": "u", "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1700000000.000200", "channel_id": "C300"},
        "trigger_id": "1.2.3",
        "channel": {"id": "C300", "name": "general"},
        "response_url": response_url,
        "actions": [{"type": "button", "block_id": "qa_feedback", "action_id": action_id, "value": answer_id,
                     "text": {"type": "plain_text", "text": "x"}, "action_ts": str(time.time())}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_slack_answer_has_vote_buttons_and_a_press_is_recorded(bot, fake, built_index):
    channel = "C" + uuid.uuid4().hex[:8].upper()
    ev = {"type": "app_mention", "text": f"<@U0BOT> {QUESTION}", "user": "U1", "channel": channel, "ts": "1700000000.000300"}
    assert post_slack(bot, "/bots/slack/events", slack_event(ev)).status_code == 200
    (call,) = fake.wait("/api/chat.postMessage", ch=lambda c: c.json.get("channel") == channel)
    actions = call.json["blocks"][-1]
    assert actions["type"] == "actions" and [e["action_id"] for e in actions["elements"]] == ["qa_vote_up", "qa_vote_down"]
    answer_id = actions["elements"][0]["value"]
    assert answer_id == actions["elements"][1]["value"] and answer_id.startswith("ans_")
    assert logged(built_index, answer_id) == ("slack", QUESTION)

    hook = "/slack/respond/" + uuid.uuid4().hex
    body = slack_interaction(answer_id, "qa_vote_down", "U1", fake.url + hook)
    r = post_slack(bot, "/bots/slack/interactions", body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json() == {"ok": True, "vote": "ok"}
    (thanks,) = fake.wait(hook)
    assert thanks.json["response_type"] == "ephemeral" and thanks.json["replace_original"] is False
    # the same person pressing again, then changing their mind: still one vote
    for action in ("qa_vote_down", "qa_vote_up"):
        body = slack_interaction(answer_id, action, "U1", fake.url + hook)
        assert post_slack(bot, "/bots/slack/interactions", body, content_type="application/x-www-form-urlencoded").status_code == 200
    votes = votes_for(built_index, answer_id)
    assert [v[1] for v in votes] == ["up"] and "U1" not in votes[0][0]


def test_slack_interactions_are_verified_and_unknown_answers_refused(bot, fake, built_index):
    body = slack_interaction("ans_00000000000000000000", "qa_vote_up", "U2", fake.url + "/slack/respond/x")
    forged = post_slack(bot, "/bots/slack/interactions", body, slack_headers(body, secret="wrong"), "application/x-www-form-urlencoded")
    assert forged.status_code == 401
    stale = post_slack(bot, "/bots/slack/interactions", body, slack_headers(body, ts=int(time.time()) - 600), "application/x-www-form-urlencoded")
    assert stale.status_code == 401
    r = post_slack(bot, "/bots/slack/interactions", body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json()["vote"] == "unknown"
    assert votes_for(built_index, "ans_00000000000000000000") == []
    junk = post_slack(bot, "/bots/slack/interactions", b"payload=%7Bnot+json", content_type="application/x-www-form-urlencoded")
    assert junk.status_code == 400


def card_action(answer_id: str, vote: str, open_id: str = "ou_voter", token: str = FEISHU_TOKEN) -> dict:
    return {
        "schema": "2.0",
        "header": {"event_id": uuid.uuid4().hex, "token": token, "create_time": str(int(time.time() * 1000)),
                   "event_type": "card.action.trigger", "tenant_key": "tk", "app_id": FEISHU_APP_ID},
        "event": {
            "operator": {"tenant_key": "tk", "user_id": "u1", "open_id": open_id},
            "token": "c-" + uuid.uuid4().hex,
            "action": {"value": {"qa_vote": vote, "answer_id": answer_id}, "tag": "button"},
            "host": "im_message",
            "context": {"open_message_id": "om_x", "open_chat_id": "oc_chat"},
        },
    }


def test_feishu_card_has_vote_buttons_and_the_callback_records_the_vote(bot, fake, built_index):
    event, message_id = feishu_message(QUESTION)
    assert feishu_post(bot, event).status_code == 200
    (call,) = fake.wait(f"/open-apis/im/v1/messages/{message_id}/reply")
    card = json.loads(call.json["content"])
    buttons = card["elements"][-1]["actions"]
    assert card["elements"][-1]["tag"] == "action" and [b["value"]["qa_vote"] for b in buttons] == ["up", "down"]
    answer_id = buttons[0]["value"]["answer_id"]
    assert logged(built_index, answer_id) == ("feishu", QUESTION)

    r = feishu_post(bot, card_action(answer_id, "up"))
    assert r.status_code == 200 and r.json()["toast"]["type"] == "success"
    assert feishu_post(bot, card_action(answer_id, "up")).status_code == 200  # pressed twice: one vote
    assert [v[1] for v in votes_for(built_index, answer_id)] == ["up"]
    # forgeries never reach the vote
    assert feishu_post(bot, card_action(answer_id, "down"), sign_key="other").status_code == 401
    assert feishu_post(bot, card_action(answer_id, "down"), signed=False).status_code == 401
    assert feishu_post(bot, card_action(answer_id, "down", token="not-ours")).status_code == 403
    assert [v[1] for v in votes_for(built_index, answer_id)] == ["up"]
    unknown = feishu_post(bot, card_action("ans_00000000000000000000", "down"))
    assert unknown.status_code == 200 and unknown.json()["toast"]["type"] == "info"


def test_admin_page_is_closed_on_a_server_without_api_keys(bot):
    import httpx

    r = httpx.get(bot.url + "/admin/gaps", auth=("writer", "anything"), timeout=30)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_closed"


def test_slack_vote_thanks_only_go_to_allowed_response_urls(bot, fake, built_index):
    """A signed payload may name any response_url: the vote counts, but nothing is sent there."""
    channel = "C" + uuid.uuid4().hex[:8].upper()
    ev = {"type": "app_mention", "text": f"<@U0BOT> {QUESTION}", "user": "U3", "channel": channel, "ts": "1700000000.000400"}
    assert post_slack(bot, "/bots/slack/events", slack_event(ev)).status_code == 200
    (call,) = fake.wait("/api/chat.postMessage", ch=lambda c: c.json.get("channel") == channel)
    answer_id = call.json["blocks"][-1]["elements"][0]["value"]
    hook = "/slack/respond/" + uuid.uuid4().hex
    body = slack_interaction(answer_id, "qa_vote_up", "U3", fake.url.replace("127.0.0.1", "localhost") + hook)
    r = post_slack(bot, "/bots/slack/interactions", body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json()["vote"] == "ok"
    assert [v[1] for v in votes_for(built_index, answer_id)] == ["up"]
    time.sleep(1)
    assert fake.of(hook) == []
