"""The gap report over a real log: real model vectors, real index, real SQLite.

Questions about topics the fixture articles do not cover (Kafka lag, TLS renewal, Jenkins)
are asked in several phrasings through the real Assistant and logged; the report must put
each topic's phrasings in one group, say that nothing near covers it, list the down-voted
answer with its sources, and escape hostile questions in its HTML.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time

import pytest

from qa.gaps import build_report, describe, parse_since
from qa.gaps_html import render_html
from qa.questionlog import QuestionLog, cached_vector
from tests.conftest import ROOT

TOPICS = {
    "kafka": ["Kafka 消息积压怎么处理？", "Kafka 消费延迟很高怎么办？", "Kafka consumer lag 怎么排查？", "Kafka 消息积压了应该怎么设置？"],
    "tls": ["TLS 证书快过期了怎么续期？", "HTTPS 证书怎么更新？", "cert-manager 自动续期证书怎么配置？"],
    "jenkins": ["Jenkins 流水线怎么配置？", "Jenkinsfile 流水线出错了怎么办？", "Jenkins 自动构建有没有推荐的做法？"],
}
ANSWERED = ["Helm 怎么回滚？", "helm rollback 怎么用？", "Redis 缓存默认多久过期？"]
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script> Kafka 消息积压 "quoted" & more'


@pytest.fixture(scope="module")
def logged(assistant, tmp_path_factory):
    """A log of real answers: each topic phrasing asked a few times, plus answered questions."""
    ql = QuestionLog(tmp_path_factory.mktemp("log") / "questions.sqlite")
    answers = {}
    for qs in [*TOPICS.values(), ANSWERED, [HOSTILE]]:
        for q in qs:
            a = assistant.ask(q)
            answers[q] = a
            for _ in range(3):
                ql.record(a.model_copy(update={"answer_id": a.answer_id + f"_{_}"}), "http", cached_vector(assistant.embedder, a.question))
    ql.flush()
    down = answers[ANSWERED[0]].answer_id + "_0"
    ql.vote(down, ql.hash_identity("ip:1"), "down", "<b>wrong</b> version")
    ql.vote(answers[HOSTILE].answer_id + "_0", ql.hash_identity("ip:2"), "down", '"><svg onload=alert(3)>')
    yield ql, answers
    ql.close()


def test_each_missing_topic_is_one_group_that_nothing_covers(logged, assistant):
    ql, answers = logged
    r = build_report(ql, parse_since("1d"), reader=assistant.reader, settings=assistant.settings)
    assert r.questions == 3 * sum(len(v) for v in [*TOPICS.values(), ANSWERED, [HOSTILE]])
    group_of = {ex: g for g in r.groups for ex in g.examples}
    for topic, qs in TOPICS.items():
        gs = {group_of[q].id for q in qs if q in group_of}
        assert len(gs) == 1, (topic, gs)
        g = group_of[qs[0]]
        assert g.count >= 3 * len(qs)
        if all(answers[q].status == "not_covered" for q in qs):
            assert g.verdict == "nothing near" and "nothing near" in describe(g)
    names = " ".join(g.name for g in r.groups).lower()
    assert "kafka" in names and "jenkins" in names
    # groups with unanswered questions come first
    assert r.groups[0].gaps >= r.groups[-1].gaps


def test_names_no_article_mentions_are_listed_by_how_often_they_went_unanswered(logged, assistant):
    ql, answers = logged
    r = build_report(ql, parse_since("1d"), reader=assistant.reader, settings=assistant.settings)
    names = {m.name.lower(): m for m in r.unmentioned}
    kafka = [q for q in TOPICS["kafka"] + [HOSTILE] if answers[q].status == "not_covered"]
    assert kafka and names["kafka"].count == 3 * len(kafka)  # every logged ask, repeats included
    assert set(names["kafka"].examples) <= set(kafka)
    assert "jenkins" in names and "helm" not in names  # the fixture articles are about Helm
    assert [m.count for m in r.unmentioned] == sorted((m.count for m in r.unmentioned), reverse=True)
    page = render_html(r)
    assert 'id="names"' in page and "<code>Kafka</code>" in page


def test_down_votes_listed_with_their_sources_and_the_timeline(logged, assistant):
    ql, answers = logged
    r = build_report(ql, parse_since("1d"), reader=assistant.reader, settings=assistant.settings)
    down = {d.question: d for d in r.down_voted}
    helm = down[ANSWERED[0]]
    assert helm.down == 1 and helm.comments == ["<b>wrong</b> version"]
    assert helm.sources and helm.sources[0]["path"].endswith(".md") and helm.sources[0]["lines"][0] >= 1
    assert r.votes == {"up": 0, "down": 2}
    assert len(r.timeline) == 1 and r.timeline[0].total == r.questions
    assert r.timeline[0].rate == round(r.statuses.get("not_covered", 0) / r.questions, 4)


def test_since_limits_the_period(logged, assistant):
    ql, _ = logged
    r = build_report(ql, 3600, now=time.time() + 2 * 3600, reader=assistant.reader)
    assert r.questions == 0 and r.groups == [] and r.timeline == []
    for bad in ("yesterday", "-3d", "3x"):
        with pytest.raises(ValueError):
            parse_since(bad)
    assert parse_since("2w") == 14 * 86400 and parse_since("12h") == 43200


def test_html_escapes_every_question_and_comment(logged, assistant):
    ql, _ = logged
    page = render_html(build_report(ql, parse_since("1d"), reader=assistant.reader, settings=assistant.settings))
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert html.escape(HOSTILE, quote=True) in page
    assert "&lt;b&gt;wrong&lt;/b&gt; version" in page
    assert page.count("<script") == 0 and "default-src 'none'" in page
    assert "<svg viewBox" in page  # the chart is inline SVG


def test_cli_gaps_json_and_html(logged, built_index, tmp_path):
    import sqlite3

    ql, _ = logged
    ql.flush()
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "questions.sqlite") as dst:  # a copy of the WAL database, consistent
        ql.conn.backup(dst)
    out = tmp_path / "gaps.html"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "QA_STATE_DIR": str(state), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "qa.cli", "gaps", "--since", "7d", "--json", "--html", str(out), "--index", str(built_index)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["questions"] == ql.counts()["questions"] and data["groups"]
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    text = subprocess.run([sys.executable, "-m", "qa.cli", "gaps", "--index", str(built_index)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert text.returncode == 0 and "asked" in text.stdout and "voted down" in text.stdout
    assert "mentioned in no article" in text.stdout and "Kafka" in text.stdout
    missing = subprocess.run([sys.executable, "-m", "qa.cli", "gaps", "--index", str(tmp_path / "nothing")],
                             capture_output=True, text=True, cwd=ROOT, env={**env, "QA_STATE_DIR": str(tmp_path / "none")}, timeout=120)
    assert missing.returncode == 2 and "no question log" in missing.stderr


def test_many_distinct_questions_go_through_the_leader_pass():
    """Above LINKAGE_MAX distinct texts the linkage runs on leaders; topics must survive it."""
    import numpy as np

    from qa import gaps

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 64)).astype(np.float32)
    labels_true = np.repeat(np.arange(6), 700)  # 4,200 distinct texts > LINKAGE_MAX
    x = centers[labels_true] + rng.normal(scale=0.08, size=(len(labels_true), 64)).astype(np.float32)
    assert len(x) > gaps.LINKAGE_MAX
    got = gaps.cluster(x, distance=0.12)
    for k in range(6):
        members = got[labels_true == k]
        assert np.bincount(members).max() == len(members)  # each topic in one group
    assert len(set(got.tolist())) == 6
