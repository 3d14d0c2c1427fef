"""The conversation store (real SQLite) and the Python API's conversations (real index and model)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from qa.conversations import BadConversationId, Conversation, ConversationStore, check_id, new_id
from qa.followup import Turn
from tests.conftest import make_settings


def test_ids_are_unguessable_and_checked_in_form():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(check_id(i) == i for i in ids)
    for bad in ("", "x", "cv_short", "cv_" + "a" * 23, "cv_" + "a" * 25, "cv_" + "!" * 24, "CV_" + "a" * 24, "../../etc"):
        with pytest.raises(BadConversationId, match="not valid"):
            check_id(bad)


def test_turns_round_trip_and_unknown_ids_start_a_new_conversation(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite")
    first = store.open_conversation(None)
    assert first.new and not first.restarted and first.history == []
    assert store.add_turn(first.id, Turn("什么是容器镜像？", None, ["容器镜像", "是什么"])) == 1
    assert store.add_turn(first.id, Turn("它解决了什么问题？", "容器镜像解决了什么问题？", [], False, "容器镜像解决了什么问题？")) == 2
    again = store.open_conversation(first.id)
    assert not again.new and [t.question for t in again.history] == ["什么是容器镜像？", "它解决了什么问题？"]
    assert again.history[0].titles == ["容器镜像", "是什么"] and again.history[1].answered is False
    assert again.history[1].resolved == "容器镜像解决了什么问题？"
    unknown = store.open_conversation(new_id())
    assert unknown.new and unknown.restarted and unknown.history == [] and "new conversation" in unknown.notice
    with pytest.raises(BadConversationId):
        store.open_conversation("not-an-id")


def test_ttl_expires_a_conversation_and_purge_removes_it(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite", ttl_s=60)
    cid = store.open_conversation(None).id
    store.add_turn(cid, Turn("Helm 是什么？"))
    assert store.history(cid) is not None
    later = time.time() + 61
    assert store.history(cid, now=later) is None
    assert store.purge(now=later) == 1 and store.count() == 0


def test_only_the_last_max_turns_are_kept(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite", max_turns=3)
    cid = store.open_conversation(None).id
    for i in range(1, 8):
        assert store.add_turn(cid, Turn(f"问题 {i}")) == i
    assert [t.question for t in store.history(cid)] == ["问题 5", "问题 6", "问题 7"]


def test_concurrent_writers_in_threads_and_two_stores_on_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    a, b = ConversationStore(path), ConversationStore(path)  # e.g. two server processes
    cid = a.open_conversation(None).id
    a.add_turn(cid, Turn("第一个问题"))
    errors: list[BaseException] = []

    def work(store, k):
        try:
            for i in range(25):
                store.add_turn(cid, Turn(f"t{k}-{i}"))
                store.history(cid)
                other = store.open_conversation(None).id
                store.add_turn(other, Turn("别的对话"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a if k % 2 else b, k)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    turns = a.history(cid)
    assert len(turns) == 20  # max_turns default: the newest 20 of 151, none lost mid-way
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert a.count() == 1 + 6 * 25


def test_platform_keys_are_hashed_live_for_the_ttl_and_can_be_forgotten(tmp_path):
    path = tmp_path / "c.sqlite"
    store = ConversationStore(path, ttl_s=60)
    cid = new_id()
    store.bind_key("slack:C100:1700000000.000100", cid)
    assert store.for_key("slack:C100:1700000000.000100") == cid
    assert store.for_key("slack:C100:1700000000.000200") is None
    raw = sqlite3.connect(path).execute("SELECT key_hash FROM platform_keys").fetchall()
    assert all("C100" not in r[0] for r in raw)  # no platform id is stored in the clear
    store.forget_key("slack:C100:1700000000.000100")
    assert store.for_key("slack:C100:1700000000.000100") is None


def test_in_memory_store_is_shared_by_threads():
    store = ConversationStore(":memory:")
    cid = store.open_conversation(None).id
    t = threading.Thread(target=store.add_turn, args=(cid, Turn("在另一个线程")))
    t.start()
    t.join()
    assert [x.question for x in store.history(cid)] == ["在另一个线程"]


# ---- the Python API over a real index -----------------------------------------------------------


def test_assistant_conversation_resolves_follow_ups(assistant):
    conv = assistant.conversation()
    assert isinstance(conv, Conversation) and conv.id is None
    a1 = conv.ask("Redis 缓存默认多久过期？")
    assert a1.conversation.new and a1.conversation.turn == 1 and a1.searched is None and conv.id == a1.conversation_id
    a2 = conv.ask("它怎么清空？")
    assert a2.conversation_id == a1.conversation_id and a2.conversation.turn == 2
    assert a2.question == "它怎么清空？" and a2.searched and "Redis" in a2.searched
    assert a2.conversation.followup == "pronoun 它"
    assert a2.citations and a2.citations[0].path.endswith("redis-cache.md")
    a3 = conv.ask("换个问题，k8s 和 Docker 是什么关系？")
    assert a3.conversation.followup == "topic shift" and a3.searched == "k8s 和 Docker 是什么关系？"
    assert [t.question for t in conv.turns()][-1] == "换个问题，k8s 和 Docker 是什么关系？"


def test_follow_up_in_its_conversation_is_answered_and_the_plain_api_is_unchanged(assistant):
    alone = assistant.ask("它默认多久过期？")
    conv = assistant.conversation()
    conv.ask("Redis 缓存是怎么设计的？")
    follow = conv.ask("它默认多久过期？")
    assert "30 分钟" in follow.answer
    # the old signature: no conversation, nothing remembered, searched as asked
    assert alone.conversation_id is None and alone.conversation is None and alone.searched is None


def test_conversation_by_id_and_bad_id(assistant):
    first = assistant.ask("Helm 怎么回滚？", conversation=True)
    again = assistant.ask("它怎么安装 chart？", conversation=first.conversation_id)
    assert again.conversation_id == first.conversation_id and again.conversation.turn == 2
    with pytest.raises(BadConversationId):
        assistant.ask("Helm 是什么？", conversation="nope")
    expired = assistant.ask("Helm 是什么？", conversation=new_id())
    assert expired.conversation.restarted and expired.conversation.notice


@pytest.mark.model
def test_conversations_survive_a_re_ingest(tmp_path, corpus_dir):
    from qa.assistant import Assistant
    from qa.ingest import ingest

    index = tmp_path / "index"
    settings = make_settings(index)
    ingest(corpus_dir, settings)
    bot = Assistant.open(index, settings=settings)
    first = bot.ask("Redis 缓存默认多久过期？", conversation=True)
    ingest(corpus_dir, settings, rebuild=True)  # a new generation; the old one is deleted
    bot2 = Assistant.open(index, settings=settings)
    follow = bot2.ask("它怎么清空？", conversation=first.conversation_id)
    assert not follow.conversation.new and follow.conversation.turn == 2 and follow.searched
    assert (index / "conversations.sqlite").exists()


def test_followup_setting_off_searches_as_asked(built_index, tmp_path):
    from qa.assistant import Assistant

    settings = make_settings(built_index, followup=False, conversations_db=tmp_path / "c.sqlite")
    bot = Assistant.open(built_index, settings=settings)
    conv = bot.conversation()
    conv.ask("Redis 缓存默认多久过期？")
    assert conv.ask("它怎么清空？").searched is None
