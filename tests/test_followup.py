"""Follow-up resolution on many phrasings: what depends on earlier turns, and what is searched then."""

from __future__ import annotations

import pytest

from qa.followup import Turn, dependence, resolve, topic_phrase

IMAGE = [Turn("什么是容器镜像？", titles=["容器镜像", "是什么"])]
HELM = [Turn("Helm 怎么安装？", titles=["安装 Helm", "用二进制版本安装"])]


# ---- questions that stand alone are never rewritten -----------------------------------------

STANDALONE = [
    "什么是服务网格？",
    "Helm 是什么？",
    "k8s 和 Docker 是什么关系？",
    "Kube-OVN 如何配置子网？",
    "TiDB Operator 支持哪些备份方式",
    "水平伸缩和垂直伸缩的区别",
    "蓝绿部署有什么优点？",
    "请介绍一下金丝雀部署",
    "Pod 是什么，它有什么用？",  # the pronoun refers inside the same message
    "Kubernetes 及其生态有哪些组件？",
    "为什么 Pod 会一直处于 Pending 状态？",
    "如何用 kubectl 查看 Pod 日志？",
    "DaemonSet 和 Deployment 有什么区别？",
    "Redis 缓存默认多久过期？",
    "调试是什么意思？",
    "“胜任力”这个词第一次在哪里出现？",  # an appositive, not a reference
    "马其顿即将离任的总统是谁？",  # 其 inside a name
    "王处直墓在哪里？",  # a name jieba does not know
    "若一领铠甲使用三种以上不同颜色的丝绳，会被称为什么？",  # 以上: "more than"
    "死亡蛇的捕猎方式与其它蛇类有什么不同？",
    "日志是什么？",
    "请介绍一下可观测性",
    "因此 Service 的 ClusterIP 是如何分配的？",
    "此外 Ingress 支持 TLS 吗？",
    "应该怎么给 Helm chart 写测试？",
    "什么是 CronJob？",
    "DevOps 指的是什么？",
    "Docker 镜像和容器有什么区别？",
    "Chart 钩子的删除策略怎么定义？",
]


@pytest.mark.parametrize("q", STANDALONE)
def test_a_question_with_its_own_topic_is_searched_as_asked(q):
    res = resolve(q, IMAGE)
    assert not res.rewritten and res.searched == q.strip() and dependence(q) is None


def test_without_history_nothing_is_rewritten():
    for q in ("它解决了什么问题？", "那 Pod 呢？", "为什么？", "有什么好处？", "换个问题，Helm 是什么？"):
        res = resolve(q, [])
        assert res.searched == q and not res.rewritten and res.reason is None


# ---- follow-ups: pronouns, demonstratives, ellipsis, short questions, references -------------

FOLLOWUPS = [
    ("它解决了什么问题？", "pronoun 它", "容器镜像解决了什么问题？"),
    ("怎么删除它？", "pronoun 它", "怎么删除容器镜像？"),
    ("它和容器有什么区别？", "pronoun 它", "容器镜像和容器有什么区别？"),
    ("这个怎么用？", "pronoun 这个", None),
    ("那个有什么缺点？", "pronoun 那个", None),
    ("这些文件存在哪里？", "pronoun 这些", None),
    ("使用该功能需要注意什么？", "pronoun 该", None),
    ("此方法适合生产环境吗？", "pronoun 此", None),
    ("其原理是什么？", "pronoun 其", None),
    ("这是什么意思？", "pronoun 这", None),
    ("那 Pod 呢？", "ellipsis 那……呢", "什么是Pod？"),
    ("Pod 呢？", "ellipsis ……呢", "什么是Pod？"),
    ("还有呢？", "ellipsis 还有呢", None),
    ("然后呢", "ellipsis 还有呢", None),
    ("为什么？", "ellipsis 为什么", None),
    ("为啥呢", "ellipsis 为什么", None),
    ("那怎么安装？", "ellipsis 那……", None),
    ("举个例子", "ellipsis 举例", None),
    ("具体说说", "ellipsis 举例", None),
    ("能详细说说吗", "ellipsis 举例", None),
    ("上面说的镜像存储在哪里？", "reference 上面说的", None),
    ("刚才提到的注册表是什么？", "reference 上面说的", None),
    ("其中 etcd 的作用是什么？", "reference 其中", None),
    ("还有什么可替代的选择？", "ellipsis 还有呢", None),
    ("从镜像角度看它们有什么不同？", "pronoun 它们", None),
    ("能带来什么帮助？", "short, no topic", None),
    ("失败了怎么回滚？", "short, no topic", None),
    ("有什么好处？", "short, no topic", None),
    ("默认端口是多少？", "short, no topic", None),
    ("如何查看日志？", "short, no topic", None),
    ("解决什么问题？", "short, no topic", None),
]


@pytest.mark.parametrize("q,reason,searched", FOLLOWUPS)
def test_a_follow_up_is_searched_with_the_earlier_topic(q, reason, searched):
    res = resolve(q, IMAGE)
    assert res.reason == reason
    assert res.rewritten
    if searched is not None:
        assert res.resolved == searched
    # the earlier topic (or the new subject of "那 X 呢") is in what is searched
    assert "容器镜像" in res.searched or "Pod" in res.searched


def test_the_title_the_earlier_answer_came_from_joins_the_search():
    hist = [Turn("Redis 缓存默认多久过期？", titles=["缓存设计", "缓存过期策略"])]
    res = resolve("它怎么清空？", hist)
    assert res.resolved == "Redis 缓存怎么清空？"
    assert res.searched == "Redis 缓存怎么清空？ 缓存设计"


def test_ellipsis_swaps_the_subject_of_the_earlier_question():
    assert resolve("那 kubectl 呢？", HELM).searched == "kubectl 怎么安装？"
    hist = [Turn("蓝绿部署有什么优点？", titles=["蓝绿部署"])]
    assert resolve("那金丝雀部署呢？", hist).searched == "金丝雀部署有什么优点？"


def test_the_subject_of_a_definition_is_what_gets_swapped():
    hist = [Turn("Helm 里的 Release 是什么？", titles=["使用 Helm"])]
    assert resolve("那 Repository 呢？", hist).searched == "Helm 里的 Repository 是什么？"
    assert resolve("它可以安装几次？", hist).resolved == "Helm Release可以安装几次？"
    parts = [Turn("Redis 缓存的第 1 个要点是什么？")]
    assert "Redis" in resolve("它的第 2 个要点是什么？", parts).searched


def test_a_comparison_keeps_the_earlier_topic():
    hist = [Turn("蓝绿部署有什么优点？", titles=["蓝绿部署"])]
    res = resolve("和金丝雀部署相比呢？", hist)
    assert res.rewritten and "蓝绿部署" in res.searched and "金丝雀部署" in res.searched


def test_they_refers_to_all_earlier_topics():
    hist = [Turn("k8s 和 Docker 是什么关系？", titles=["Docker和k8s关系"])]
    assert resolve("它们的关系是什么", hist).resolved == "k8s和Docker的关系是什么"


def test_topic_shift_starts_fresh_and_drops_the_marker():
    for q, rest in [("换个问题，Helm 是什么？", "Helm 是什么？"), ("换个话题：什么是 Pod？", "什么是 Pod？"),
                    ("另外一个问题，它是什么？", "它是什么？"), ("btw, what is Helm?", "what is Helm?")]:
        res = resolve(q, IMAGE)
        assert res.fresh and not res.rewritten and res.searched == rest and res.reason == "topic shift"


def test_a_chain_of_follow_ups_keeps_the_topic():
    hist = list(IMAGE)
    r1 = resolve("它解决了什么问题？", hist)
    hist.append(Turn("它解决了什么问题？", r1.searched, ["容器镜像", "解决的问题"], True, r1.resolved))
    r2 = resolve("那它有什么帮助？", hist)
    assert r2.rewritten and "容器镜像" in r2.searched


def test_an_unanswered_turn_lends_its_words_not_a_title():
    hist = [Turn("量子纠缠是什么？", titles=[], answered=False)]
    res = resolve("它有什么用？", hist)
    assert res.resolved == "量子纠缠有什么用？"


def test_resolution_is_deterministic():
    for q, _, _ in FOLLOWUPS:
        assert resolve(q, IMAGE) == resolve(q, IMAGE)


@pytest.mark.parametrize("q,phrase", [
    ("什么是容器镜像？", "容器镜像"),
    ("Helm 怎么安装？", "Helm"),
    ("蓝绿部署有什么优点？", "蓝绿部署"),
    ("水平伸缩和垂直伸缩的区别", "水平伸缩 垂直伸缩"),
    ("它解决了什么问题？", ""),
    ("可观测性是什么意思？", "可观测性"),
    ("什么是零信任架构？", "零信任架构"),
    ("云原生安全指的是什么？", "云原生安全"),
    ("数据库即服务是什么？", "数据库即服务"),
])
def test_topic_phrase(q, phrase):
    assert topic_phrase(q) == phrase
