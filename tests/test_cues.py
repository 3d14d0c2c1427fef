"""qa.cues: which sentences talk about the article instead of answering, and answer faults."""

from __future__ import annotations

import pytest

from qa.cues import (
    refers_back,
    answers_own_question,
    answer_sentences,
    first_sentence,
    has_dangling_colon,
    has_diagram_source,
    has_lone_fence,
    is_meta_sentence,
)

META = [
    "本篇文章目的：让你更全面了解k8s概念，以及学到在工作中常用的操作。",  # the seed article's preface
    "在正式开始k8s之前，我们先看看k8s和Docker的关系，话不多说，开干。",
    "话不多说，开干。",
    "废话不多说，直接上代码。",
    "目前发现并没有将kubernetes和Docker技术产生背景和需求进行比较的文章，本文从最纯正的官方定义角度出发并展开。",
    "本文介绍如何对部署在 Kubernetes 上的 TiDB 集群进行手动水平扩缩容和垂直扩缩容。",
    "本页展示了如何配置 Pod 使用 ConfigMap。",
    "本节介绍钩子的基本使用模式。",
    "下面我们来看看 Docker 的架构。",
    "接下来我们看两张经典的图：",
    "如果你担心容器网络会带来额外的性能损耗，那么来看一下 Kube-OVN 是如何极致的优化性能。",  # leads on
    "希望我这篇文章中简单的描述能让你对两者有所理解和认识。",
    "参考 <https://mp.weixin.qq.com/s/CHkU-LwxK9l7c_Z1-jAYWw>",
    "参阅 https://mp.weixin.qq.com/s/dckA1ezcABndN5WSg1BOBA",
    "原文链接：https://example.com/post/1",
    "https://example.com/a/b",
    "上图是Docker容器与传统虚拟化方式的不同之处。",
    "如图所示，请求先到达 Ingress。",
    "如下图所示：",
    "图1：Kubernetes 架构",
    "图 2 展示了调度流程。",
    "注意，大家别把这幅图与上面Docker的那张图混淆了，图1是从虚拟化角度。",
    "目录",
    "* content {:toc}",
    "- [安装](#安装)",
    "[简介](#简介) [安装](#安装) [使用](#使用)",
    "（请参阅水平伸缩了解不同的伸缩方法。）",  # a cross-reference in brackets
    "请参阅 Docker 官方安装文档获取更多信息。",
]

NOT_META = [
    "说白了，我们用kubernetes去管理Docker集群，即可以将Docker看成Kubernetes内部使用的低级别组件。",
    "Docker是一个开源的应用容器引擎，开发者可以打包他们的应用及依赖到一个可移植的容器中。",
    "而Docker容器内的应用程序进程直接运行在宿主机(真实物理机)的内核上。",
    "上图中的 Pod 运行在同一个节点上。",  # talks about the figure's content
    "参考以下步骤为 node 配置私有仓库。",  # "参考" without a link is an instruction
    "注意：不要在生产环境中使用 latest 标签。",  # a warning is content
    "本页提供了 Init 容器的概览，它是一种专用的容器，在应用容器启动之前运行。",  # carries the definition
    "本文档中的命令需要 root 权限。",
    "图形界面可以查看集群状态。",
    "下面是一些如何使用 Init 容器的想法：",  # introduces a list: a fault of its own, not meta
    "默认的镜像拉取策略是“IfNotPresent”。",
    "运行 `helm repo list`。",
    "如果 Pod 起不来，来看一下它的事件：",  # an instruction
    "参考这个文档可以配置 TLS 证书。",  # says what the document does
    "（例如 `helm list --namespace foo`）",  # an example in brackets is content
    "",
]


@pytest.mark.parametrize("text", META)
def test_meta_sentences_are_recognised(text):
    assert is_meta_sentence(text)


@pytest.mark.parametrize("text", NOT_META)
def test_content_sentences_are_not_meta(text):
    assert not is_meta_sentence(text)


def test_first_sentence_strips_markers_and_ends_at_a_marker():
    answer = "本篇文章目的：让你更全面了解k8s概念。在正式开始之前[1]说白了，我们用kubernetes去管理Docker集群。[3]"
    assert first_sentence(answer) == "本篇文章目的：让你更全面了解k8s概念。"
    assert answer_sentences(answer) == [
        "本篇文章目的：让你更全面了解k8s概念。", "在正式开始之前", "说白了，我们用kubernetes去管理Docker集群。",
    ]
    assert first_sentence("") == ""
    assert first_sentence("[1]") == ""


def test_diagram_source_lone_fence_and_dangling_colon():
    assert has_diagram_source("subgraph Volume [数据卷 my-data] end")
    assert has_diagram_source("流程：flowchart LR A --> B")
    assert has_diagram_source("sequenceDiagram Alice->>Bob: hi")
    assert not has_diagram_source("流量从旧版本逐渐转移到新版本，图中箭头表示方向。")
    assert not has_diagram_source("graph 数据库适合存储关系。")
    assert has_lone_fence("清理虚悬镜像：``` [1]")
    assert not has_lone_fence("```\ndocker image prune\n```")
    assert not has_lone_fence("没有代码。")
    assert has_dangling_colon("Docker 镜像是一个特殊的文件系统，包含：[1]")
    assert has_dangling_colon("一般有两种原因：")
    assert not has_dangling_colon("一般有两种原因：资源不足和污点。[1]")


@pytest.mark.parametrize("question,names", [
    ("Velero 怎么备份一个 namespace？", ["velero"]),
    ("CRI-O 的配置文件默认放在哪里？", ["cri-o"]),
    ("Docker Desktop 的 WSL2 后端怎么限制内存？", ["docker", "desktop", "wsl2"]),
    ("k3s 默认用什么做数据存储？", ["k3s"]),
    ("Helm v3.12 和 1.28 版本的 kubectl 兼容吗？", ["helm"]),  # versions are not names
    ("what is a Pod and how do I use it？", ["pod"]),  # plain English is not a name
    ("Redis 缓存默认多久过期？ <!channel> &", ["redis"]),  # a lowercase word is not a name
    ("kafka consumer lag 怎么查？", []),
    ("为什么要用容器？", []),
])
def test_named_terms_are_the_latin_names_a_question_is_about(question, names):
    from qa.questions import named_terms

    assert named_terms(question) == names


def test_a_name_is_shown_as_the_question_spells_it():
    from qa.questions import as_asked

    assert as_asked("Velero 怎么备份？", "velero") == "Velero"


def test_a_name_may_be_mentioned_in_another_form():
    from qa.questions import mention_forms

    assert mention_forms("velero") == [("velero",)]
    assert ("kubernetes",) in mention_forms("k8s")
    assert ("helm",) in mention_forms("helm2")  # "Helm 2" in the articles
    assert ("ip", "pool") in mention_forms("ip_pool")  # inside ovn.kubernetes.io/ip_pool
    assert mention_forms("k3s") == [("k3s",)]  # a digit inside a name is part of it


def test_a_numbered_item_is_one_sentence_to_a_reader():
    from qa.cues import answer_sentences, first_sentence

    ans = "5. 若存在残留 IP 端口，需要手动通过 `kubectl ko nbctl lsp-del <port>` 进行清理[2] Pod 无法进入 Running 状态。"
    assert first_sentence(ans).startswith("5. 若存在残留 IP 端口") and first_sentence(ans).endswith("进行清理")
    assert answer_sentences("版本 1.2. 之后不再支持。")[0] != "1."


def test_a_quote_is_one_sentence_to_a_reader():
    from qa.cues import first_sentence

    ans = "曾起草告示称「金钱鼠尾，乃新朝之雅政；峨冠博带，实亡国之陋规」。袁彭年为袁中道之子。[1]"
    assert first_sentence(ans) == "曾起草告示称「金钱鼠尾，乃新朝之雅政；峨冠博带，实亡国之陋规」。"


@pytest.mark.parametrize("text", [
    "实际上，这意味着如果你在钩子中创建了资源，就不能依赖 `helm uninstall` 来删除这些资源。",
    "为了在 Overlay 网络模式下达到这个目的， Kube-OVN 创建了一个 `join` 子网。",
    "这就意味着节点上的 Pod 会被驱逐。",
    "这样一来，镜像就可以在任何环境里运行。",
])
def test_a_sentence_that_points_back_is_recognised(text):
    assert refers_back(text)


@pytest.mark.parametrize("text", [
    "因此，当无服务器功能处于空闲状态时，它不会花费任何费用。",  # a conclusion answers on its own
    "这是因为单独的 Pod 在机器故障的情况下没有办法自动复原。",  # a reason: the why rule's business
    "Kube-OVN 创建了一个 join 子网，这意味着节点可以访问 Pod。",  # points back only mid-sentence
    "为了方便用户的快速上手使用，Kube-OVN 内置了一个默认子网。",
])
def test_sentences_that_stand_alone_do_not_point_back(text):
    assert not refers_back(text)


def test_an_ellipsis_inside_a_line_is_a_pause_not_the_end_of_a_sentence():
    text = "要跑 java 应用，得装个 JVM，要跑 go 应用，那就。。什么都不需要装。选中一个基础操作系统。"
    assert answer_sentences(text) == ["要跑 java 应用，得装个 JVM，要跑 go 应用，那就。。什么都不需要装。", "选中一个基础操作系统。"]
    assert answer_sentences("话说到这里……我们再看镜像。") == ["话说到这里……我们再看镜像。"]
    # at the end of a line (a stub's "待补充。。。") it still ends the sentence
    assert answer_sentences("待补充。。。\n\n下一节。") == ["待补充。。。", "下一节。"]


@pytest.mark.parametrize("text,expected", [
    ("当然有，没有什么是加一层中间层不能解决的，这次我们要加的中间层是 Docker。", True),
    ("当然不，故kubernetes技术便出现了。", True),
    ("答案是：可以，但需要先停掉 kubelet。", True),
    ("当然，你也可以手动创建 Pod。", True),
    ("当前版本不支持 IPv6。", False),  # "当" alone is not "当然"
    ("我们当然可以手动创建 Pod。", False),  # answers only mid-sentence
])
def test_a_sentence_answering_the_articles_own_question_is_recognised(text, expected):
    assert answers_own_question(text) is expected
