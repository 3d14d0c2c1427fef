"""Answer composition without the model: structure-aware units, cues, lead-first order, stubs.

Hits are built by hand from passage text (retrieval is not the point here), so these run in
milliseconds and say exactly which rule an answer follows.
"""

from __future__ import annotations

import re

import pytest

from qa.answer import STUB_ANSWER, best_stub, compose, heading_coverage, stub_hit
from qa.cues import is_meta_sentence
from qa.questions import is_stub_text, question_type
from qa.retrieval import Hit, coverage, make_query
from qa.store import ChunkRow
from qa.units import display, split_units


def hit(text: str, heading: str = "节", fused: float = 1.0, title: str = "文章", kind: str = "text", stub: bool = False) -> Hit:
    row = ChunkRow(id=1, key="k", doc_path="a.md", collection="default", title=title, doc_meta={}, heading=heading,
                   text=text, start=0, end=len(text), line_start=1, line_end=text.count("\n") + 1,
                   is_stub=stub, kind=kind, source="a.md")
    return Hit(row, fused)


def answer(question: str, *hits: Hit, budget: int = 280) -> str:
    q = make_query(question)
    for h in hits:
        h.coverage = coverage(q, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    return compose(q, list(hits), budget=budget)[0]


def first_sentence(ans: str) -> str:
    return re.split(r"(?<=[。！？])|\[\d+\]", ans, maxsplit=1)[0]


# -- units -------------------------------------------------------------------------------


def test_list_item_is_one_unit_with_the_value_at_its_start():
    text = "重启策略有三种：\n\n- `Always`：容器退出时总是重启，这是 RestartPolicy 的默认值。\n- `OnFailure`：失败时重启。\n"
    units = split_units(text)
    kinds = [u.kind for u in units]
    assert kinds == ["sent", "item", "item"]
    assert units[1].text.startswith("`Always`") and units[1].text.endswith("默认值。")
    # the lead-in introduces the whole list
    assert units[0].lead_in and units[0].follows == [1, 2]


def test_table_row_is_quoted_with_its_header():
    text = "| 参数 | 说明 |\n| --- | --- |\n| `-f` | 强制删除 |\n| `-a` | 删除全部 |"
    units = split_units(text)
    assert [u.text for u in units] == ["参数：`-f`；说明：强制删除", "参数：`-a`；说明：删除全部"]
    # every quoted range is text of the passage that the answer shows
    for u in units:
        for a, b in u.spans:
            assert text[a:b] in u.text


def test_code_block_is_never_cut_and_diagrams_are_never_units():
    text = (
        "查看虚悬镜像：\n\n```bash\n## 查看虚悬镜像\ndocker image ls -f dangling=true\n```\n\n"
        "```mermaid\nflowchart TD\n  A --> B\n  subgraph Volume\n  end\n```\n\n"
        "```\nflowchart LR\n  x --> y\n```\n"
    )
    units = split_units(text)
    assert [u.kind for u in units] == ["sent", "code"]
    assert units[1].text == "## 查看虚悬镜像\ndocker image ls -f dangling=true"
    assert not any("flowchart" in u.text or "subgraph" in u.text for u in units)


def test_command_output_blocks_and_thematic_breaks_are_not_quoted():
    text = "运行后输出如下：\n\n```text\nNAME READY STATUS\nweb 1/1 Running\n```\n\n---\n\n这说明 Pod 已经运行。"
    units = split_units(text)
    assert [u.text for u in units] == ["运行后输出如下：", "这说明 Pod 已经运行。"]


def test_long_code_passage_cut_by_the_chunker_is_code():
    units = split_units("kubectl get pods -A\nkubectl describe pod web", kind="code")
    assert [u.kind for u in units] == ["code"]


# -- cues --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question,kind",
    [
        ("Docker 和虚拟机有什么区别？", "difference"),
        ("k8s 和 Docker 是什么关系？", "relation"),
        ("为什么要用 Docker？", "why"),
        ("怎么删除虚悬镜像？", "how"),
        ("Dockerfile 是什么？", "definition"),
        ("Kubernetes 1.28 是哪一年发布的？", "fact"),
        ("容器有自己的内核吗？", "yesno"),
        ("helm 3 还自带默认的 stable 仓库吗？", "yesno"),
        ("垂直扩容的好处是什么，需要改应用代码吗？", "yesno"),  # the last clause is what is asked
        ("Docker 是什么吗？", "definition"),  # a wh-word asks for content
        ("容器用的内存超过了 limit 会发生什么？", "consequence"),
        ("Pod 的 init 容器一直失败，k8s 会怎么处理？", "consequence"),  # what happens, not how to
        ("什么时候该用集中式网关？", "when"),
        ("什么情况下适合把 TiDB 集群挂起？", "when"),
    ],
)
def test_question_type(question, kind):
    assert question_type(question) == kind


@pytest.mark.parametrize(
    "sentence",
    [
        "本篇文章目的：让你更全面了解k8s概念，以及学到在工作中常用的操作。",
        "在正式开始k8s之前，我们先看看k8s和Docker的关系，话不多说，开干。",
        "参考 https://mp.weixin.qq.com/s/CHkU-LwxK9l7c_Z1-jAYWw",
        "注意，大家别把这幅图与上面Docker的那张图混淆了，图1是从虚拟化角度说明的。",
        "上图是Docker容器与传统虚拟化方式的不同之处：",
        "如图所示，请求先到达 Ingress。",
        "接下来我们看两张经典的图：",
        "k8s 和 Docker 关系简单说明 <https://mp.weixin.qq.com/s/CHkU-LwxK9l7c_Z1-jAYWw>",
    ],
)
def test_meta_sentences(sentence):
    assert is_meta_sentence(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "说白了，我们用kubernetes去管理Docker集群，即可以将Docker看成Kubernetes内部使用的低级别组件。",
        "Docker 镜像是一个特殊的文件系统，包含：",
        "本地镜像默认保存在 /var/lib/docker 目录下。",
        "图形界面可以通过 Dashboard 访问，详见 https://kubernetes.io/docs/tasks/access-application-cluster/web-ui-dashboard/ 中的部署步骤和权限配置说明。",
        "下面的命令会删除所有已停止的容器。",
    ],
)
def test_content_sentences_are_not_meta(sentence):
    assert not is_meta_sentence(sentence)


def test_stub_text():
    assert is_stub_text("待补充。。。")
    assert is_stub_text("参阅 https://mp.weixin.qq.com/s/dckA1ezcABndN5WSg1BOBA\n\n待补充。。。")
    assert is_stub_text("TODO")
    assert not is_stub_text("HPA 根据 CPU 使用率自动扩缩 Pod 的副本数。TODO: 补充自定义指标的例子，以及 KEDA 的对比和生产环境的配置建议。")
    assert not is_stub_text("Pod 是最小的调度单位。")


# -- composition -------------------------------------------------------------------------


def test_the_answering_sentence_comes_first_not_the_preface():
    h = hit(
        "本篇文章目的：让你更全面了解k8s和Docker的关系。话不多说，开干。\n\n"
        "k8s 最早由 Google 开源。说白了，我们用kubernetes去管理Docker集群，即可以将Docker看成Kubernetes内部使用的低级别组件。"
    )
    ans = answer("k8s 和 Docker 是什么关系？", h)
    assert first_sentence(ans).startswith("说白了")
    assert "本篇文章目的" not in ans


def test_lead_in_is_kept_with_the_list_it_introduces():
    h = hit("镜像是分层存储的。Docker 镜像是一个特殊的文件系统，包含：\n\n- 程序、库和资源\n- 配置参数，如环境变量和用户\n\n镜像不包含动态数据。")
    ans = answer("Docker 镜像包含什么？", h)
    assert ans.startswith("Docker 镜像是一个特殊的文件系统，包含：")
    assert "程序、库和资源" in ans and "配置参数" in ans


def test_a_command_answers_a_how_question_as_code():
    h = hit("虚悬镜像没有仓库名也没有标签。\n\n删除虚悬镜像：\n\n```bash\ndocker image prune\n```\n")
    ans = answer("怎么删除虚悬镜像？", h)
    assert "`docker image prune`" in ans
    assert ans.index("删除虚悬镜像") < ans.index("docker image prune")


def test_no_answer_ends_in_a_colon_without_its_continuation():
    h = hit("原因一般有两种：\n\n1. 镜像拉取失败，例如镜像名写错或者私有仓库没有配置凭据。\n2. 容器启动后立即退出。", heading="Pod 一直处于 Pending 或 CrashLoopBackOff")
    ans = answer("Pod 起不来一般是什么原因？", h, budget=60)
    assert not re.search(r"[：:]\[\d+\]$", ans) and not re.search(r"[：:]$", ans)


def test_weak_padding_from_another_passage_is_left_out():
    good = hit("Helm 回滚使用 helm rollback 命令，指定 release 名称和版本号。", fused=1.0)
    weak = hit("Helm 的图标是一个船舵。", fused=0.55, heading="杂谈")
    ans = answer("Helm 怎么回滚？", good, weak)
    assert "helm rollback" in ans and "船舵" not in ans


def test_long_lead_is_cut_to_the_clauses_that_answer():
    h = hit("Kubernetes 是一个可移植、可扩展的开源平台，用于管理容器化的工作负载和服务，方便进行声明式配置和自动化，"
            "它拥有一个庞大且快速增长的生态系统，其服务、支持和工具的使用范围广泛，默认的 Pod 重启策略是 Always，"
            "这一点在很多场景下都很重要，其他的内容这里就不再赘述了。")
    ans = answer("Pod 默认的重启策略是什么？", h, budget=80)
    assert "Always" in ans and len(re.sub(r"\[\d+\]", "", ans)) <= 80


def test_highlights_are_the_text_shown():
    h = hit("| 参数 | 说明 |\n| --- | --- |\n| `--force` | 强制删除 |\n\n删除 Pod 时可以加参数。")
    q = make_query("强制删除用什么参数？")
    h.coverage = coverage(q, h.chunk.text)
    text, highlights = compose(q, [h], budget=200)
    assert highlights[0]
    for a, b in highlights[0]:
        assert display(h.chunk.text[a:b]) in text


def test_stub_section_that_matches_the_question_is_reported_as_stub():
    q = make_query("Dockerfile 是什么？")
    stub = hit("待补充。。。", heading="Docker 和 k8s 之间是什么关系 > Dockerfile 是什么", fused=0.6, stub=True)
    other = hit("Docker 是一个开源的应用容器引擎。", heading="简要介绍", fused=1.0)
    hits = [other, stub]
    for h in hits:
        h.coverage = coverage(q, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    assert stub_hit(q, hits) == 1


def test_stub_does_not_win_when_written_text_covers_the_question():
    q = make_query("Docker 是什么？")
    stub = hit("待补充。。。", heading="Dockerfile 是什么", fused=0.6, stub=True)
    other = hit("Docker 是一个开源的应用容器引擎。", heading="Docker 是什么", fused=1.0)
    hits = [other, stub]
    for h in hits:
        h.coverage = coverage(q, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    assert stub_hit(q, hits) is None
    assert "{section}" in STUB_ANSWER


def test_a_lead_in_whose_list_does_not_fit_is_not_quoted():
    h = hit("Pod 有五种状态，分别是：\n\n- Pending：Pod 已被系统接受，但有一个或者多个容器尚未创建亦未运行，包括等待调度和下载镜像的时间。\n\n"
            "Pod 的状态保存在 status.phase 字段中。")
    ans = answer("Pod 有哪些状态？", h, budget=40)
    assert "分别是：" not in ans


def test_a_lead_in_whose_code_is_too_long_to_quote_introduces_nothing():
    """"如下所示：" over a 12-line manifest: the manifest cannot be quoted, so the lead-in must not
    be glued to the unrelated sentence after it (the answer would read "如下所示：在使用…")."""
    manifest = "\n".join(["apiVersion: v1", "kind: Pod", "metadata:", "  name: static-ip", "  annotations:"]
                         + [f"    key{i}: value{i}" for i in range(7)])
    text = (f"可以在创建 Pod 时通过 annotation 来指定固定 IP，如下所示：\n\n```yaml\n{manifest}\n```\n\n"
            "在使用 annotation 定义单个 Pod IP 时需要注意 IP 不能和已有的冲突。")
    units = split_units(text)
    assert units[0].lead_in and units[0].follows == []
    ans = answer("怎么用 annotation 给 Pod 指定固定 IP？", hit(text))
    assert "如下所示：在使用" not in ans and "如下所示：[" not in ans


def test_only_layout_between_a_lead_in_and_what_it_introduces():
    from qa.units import only_markup

    assert only_markup("\n\n- ") and only_markup("\n\n```yaml\n") and only_markup("\n\n1. ")
    assert only_markup("\n\n| ") and only_markup("\n> ")
    assert not only_markup("\n\n```yaml\nkind: Pod\n```\n\n")  # a block that was not quoted
    assert not only_markup("，然后删除它们")


def test_a_yes_no_question_leads_with_the_sentence_that_says_yes_or_no():
    text = ("Serverless 是一种云原生开发模型，允许开发人员构建和运行应用程序，而无需管理服务器。"
            "Serverless 中仍有服务器，但它们被抽象出来，远离应用程序开发。")
    assert first_sentence(answer("Serverless 是真的没有服务器吗？", hit(text))).startswith("Serverless 中仍有服务器")


def test_a_lead_in_whose_block_does_not_fit_is_quoted_alone_when_it_says_something():
    """"……可以修改节点的 limits.conf 调大 ulimit：" over a block too long for the budget still answers
    (as a sentence ending in "。"); a weak unit from another passage must not take its place."""
    block = "\n".join(f"root        soft        nofile{i}        1000000" for i in range(6))
    best = hit(f"另外，TiKV 在 ulimit 不足时也会发生启动失败的状况，对于这种情况，可以修改 Kubernetes 节点的 "
               f"`/etc/security/limits.conf` 调大 ulimit：\n\n```\n{block}\n```\n", heading="ulimit 不足")
    other = hit("修复当集群开启 TLS 时 TiKV 启动失败的错误 (#1808)", heading="Bug 修复", fused=0.45)
    ans = answer("TiKV 启动失败，可能跟 ulimit 有关吗？", best, other, budget=200)
    assert first_sentence(ans).startswith("另外，TiKV 在 ulimit 不足时也会发生启动失败的状况")
    assert "调大 ulimit。" in ans and "ulimit：" not in ans and "#1808" not in ans


@pytest.mark.parametrize("lead_in, alone", [
    ("该命令会进入容器，并执行 `tcpdump` 抓取网卡的流量，如下所示：", "该命令会进入容器，并执行 `tcpdump` 抓取网卡的流量。"),
    ("Docker 镜像是一个特殊的文件系统，包含：", None),   # the point is what it announces
    ("Pod 一直起不来一般有两种原因：", None),
    ("需要使用下面的命令进行修复：", None),            # points at what is not quoted
])
def test_which_lead_ins_stand_alone(lead_in, alone):
    from qa.units import closed

    text = lead_in + "\n\n```\n" + "\n".join(f"line {i}" for i in range(12)) + "\n```\n"
    unit = split_units(text)[0]
    got = closed(unit, text)
    assert (got.text if got else None) == alone
    if got:
        a, b = got.spans[0]
        assert display(text[a:b]) + "。" == got.text  # the highlight is the text shown, less the colon


def test_the_fix_answers_not_the_symptom_restated():
    """Troubleshooting write-ups: "现象" restates the question word for word, "解决方法" answers it."""
    symptom = hit("Pod 无法进入 Running 状态，kubectl describe Pod 提示事件 `duplicate IPv4 address` found on logical switch port。",
                  heading="常见问题 > Pod 创建失败，事件提示 IP 冲突 > 现象", fused=1.0)
    fix = hit("1. 确认当前 Pod 为非固定 IP Pod\n2. 若存在残留 IP 端口，需要手动通过 `kubectl ko nbctl lsp-del <port>` 进行清理\n",
              heading="常见问题 > Pod 创建失败，事件提示 IP 冲突 > 解决方法", fused=0.9)
    ans = answer("Pod 起不来，事件说 duplicate IPv4 address，怎么清理残留端口？", symptom, fix)
    assert first_sentence(ans).startswith("2. 若存在残留 IP 端口") or ans.startswith("若存在残留 IP 端口")
    assert "lsp-del" in first_sentence(ans)


def test_a_how_question_leads_with_the_sentence_that_names_the_command_or_flag():
    from qa.questions import answer_cue

    flag = "如果使用 `kubectl` 并指定 `--cascade=false` 选项，则 Pod 将被保留在节点上。"
    plain = "如果修改了节点标签，DaemonSet 将立刻向新匹配上的节点添加 Pod。"  # Latin words, no command
    assert answer_cue("how", flag) > answer_cue("how", plain) > 0
    assert answer_cue("how", "可以使用 helm list -A 列出所有 namespace 的 release。") > answer_cue("how", "可以通过配置来修改。")
    text = plain + "删除 DaemonSet 时，" + flag
    assert "--cascade=false" in first_sentence(answer("删除 DaemonSet 的时候怎么把 Pod 留在节点上？", hit(text)))


def test_a_stub_about_the_questions_subject_wins_over_passages_that_name_it_in_passing():
    """"Dockerfile 和镜像是什么关系？": the seed's "Dockerfile 是什么" section is only 待补充; a written
    page that mentions `dist/images/Dockerfile.base` covers the words, not the subject."""
    q = make_query("Dockerfile 和镜像是什么关系？")
    written = hit("base 镜像使用的 Dockerfile 为 `dist/images/Dockerfile.base`，如需要更改依赖库需要对 base 镜像进行重新构建。",
                  heading="开发和贡献指导 > 构建 base 镜像", title="开发和贡献指导", fused=1.0)
    stub = hit("待补充。。。", heading="Docker 和 k8s 之间是什么关系 > Dockerfile 是什么", title="Docker和k8s关系",
               fused=0.7, stub=True)
    named = hit("Dockerfile 是一个文本文件，包含构建镜像的全部指令。", heading="Dockerfile 简介", title="镜像", fused=0.9)
    for h in (written, stub, named):
        h.coverage = coverage(q, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    assert stub_hit(q, [written, stub]) == 1
    assert stub_hit(q, [written, stub, named]) is None  # a written section about Dockerfile answers
    # a longer question holds more words than the stub's heading (coverage 0.29): naming the
    # subject is what makes the stub about it, down to a quarter of the question's words
    q = make_query("用 Dockerfile 怎么基于基础镜像构建自己的镜像？")
    for h in (written, stub, named):
        h.coverage = coverage(q, " ".join([h.chunk.title, h.chunk.heading, h.chunk.text]))
    assert 0.25 <= heading_coverage(q, stub.chunk) < 0.35
    assert stub_hit(q, [written, stub]) == 1
    assert best_stub(q, [stub.chunk]) is not None
    assert stub_hit(q, [written, stub, named]) is None
    # without the subject in its heading, a stub needs the usual share
    q = make_query("怎么基于基础镜像构建自己的镜像？")
    assert best_stub(q, [stub.chunk]) is None


def test_a_what_happens_question_leads_with_the_consequence():
    text = ("注意，我们的 Nginx 容器已经使用了 Namespace 的默认 CPU 和内存资源的 limits 和 requests。"
            "如果容器超过其内存限制，则可能会被终止。")
    assert first_sentence(answer("容器用的内存超过了 limit 会发生什么？", hit(text))).startswith("如果容器超过其内存限制")


def test_a_why_question_leads_with_the_reason_that_follows_the_matching_sentence():
    text = ("建议创建适当的控制器，让它们来创建 Pod，而不是直接自己创建 Pod。"
            "这是因为单独的 Pod 在机器故障的情况下没有办法自动复原，而控制器却可以。"
            "所有这三种类型的控制器都包含一个 PodTemplate。")
    ans = answer("为什么不建议直接创建 Pod，而要用控制器？", hit(text))
    assert first_sentence(ans).startswith("这是因为单独的 Pod")
    assert "建议创建适当的控制器" in ans  # the sentence it explains still follows


def test_a_quote_or_parenthesis_is_never_cut_at_its_semicolon():
    text = "袁彭年为袁中道之子。曾起草告示称「金钱鼠尾，乃新朝之雅政；峨冠博带，实亡国之陋规」，为时人所讥。后来他投降了。"
    units = [u.text for u in split_units(text)]
    assert "曾起草告示称「金钱鼠尾，乃新朝之雅政；峨冠博带，实亡国之陋规」，为时人所讥。" in units
    assert "峨冠博带，实亡国之陋规" in answer("袁彭年曾经起草过什么告示？", hit(text))
    paren = split_units("氨碱法（Solvay process；ammonia-soda process）又称索尔维制碱法。它用于制造碳酸钠。")
    assert paren[0].text == "氨碱法（Solvay process；ammonia-soda process）又称索尔维制碱法。"


def test_an_answer_to_the_articles_own_question_is_read_after_the_question_and_its_problem():
    """"有没有更好的解决方案？当然有，……": the answer leads, read after the question it answers
    and the problem that question asks about (the topic sentence of the paragraph before)."""
    text = ("装个小软件尚且如此，要是你想将代码部署到各个不同操作系统的服务器上，就需要针对每个环境单独写一套部署脚本。难受，太难受了。\n\n"
            "那么问题就来了，有没有更好的解决方案？当然有，这次我们要加的中间层是 Docker。\n\n"
            "说白了，我们用 Docker 打包应用。")
    ans = answer("为什么要用 Docker？", hit(text))
    assert first_sentence(ans).startswith("装个小软件尚且如此")
    assert ans.index("有没有更好的解决方案") < ans.index("当然有") < ans.index("[1]")
    assert "难受" not in ans
    # a summary restates what; to a why question it is not the reason
    assert not ans.startswith("说白了")


def test_a_lead_that_points_back_is_read_after_what_it_points_to():
    """"这意味着……" opens a paragraph: the paragraph before it (its topic sentence) says what "这" is."""
    text = ("钩子创建的资源目前不作为 release 的一部分进行跟踪或管理。一旦 Helm 确认钩子已达到就绪状态，就不再管理该钩子资源。\n\n"
            "实际上，这意味着如果你在钩子中创建了资源，就不能依赖 `helm uninstall` 来删除这些资源。")
    ans = answer("钩子里建的资源为什么 helm uninstall 删不掉？", hit(text, heading="钩子 > 钩子资源不随对应 release 管理"))
    assert first_sentence(ans) == "钩子创建的资源目前不作为 release 的一部分进行跟踪或管理。"
    assert ans.index("这意味着") < ans.index("[1]")
    # in a short answer what it points to stays whole and the pointing sentence is cut
    short = answer("钩子里建的资源为什么 helm uninstall 删不掉？", hit(text, heading="钩子 > 钩子资源不随对应 release 管理"), budget=80)
    assert first_sentence(short) == "钩子创建的资源目前不作为 release 的一部分进行跟踪或管理。"
    assert "helm uninstall" in short and "…" in short and len(re.sub(r"\[\d+\]", "", short)) <= 80
    # within a paragraph it is the sentence right before
    text = "在 Kubernetes 的网络规范中，要求 Node 可以和所有的 Pod 直接通信。为了在 Overlay 网络模式下达到这个目的，Kube-OVN 创建了一个 join 子网。"
    ans = answer("kube-ovn 为什么要建一个 join 子网？", hit(text))
    assert first_sentence(ans).startswith("在 Kubernetes 的网络规范中")
    # a conclusion stands alone: "因此，……" leads by itself
    text = "公共云提供商的 Serverless 产品通常按需计量。因此，当无服务器功能处于空闲状态时，它不会花费任何费用。"
    assert first_sentence(answer("无服务器函数空闲的时候还收钱吗？", hit(text))).startswith("因此")


def test_a_name_no_found_passage_mentions_means_the_passages_answer_another_question():
    """"CRI-O 的配置文件默认放在哪里？" finds Helm's configuration paths: the words match, the
    name does not.  A name counts as mentioned by a longer spelling ("Mac" in "macOS") or by its
    form without a glued version ("helm2" -> "Helm 2")."""
    from qa.answer import unnamed_in_passages

    helm = hit("下表列出了各操作系统上这些目录的默认路径：配置路径：`$HOME/.config/helm`。", heading="Helm > 目录")
    assert unnamed_in_passages("CRI-O 的配置文件默认放在哪里？", [helm]) == ["CRI-O"]
    assert unnamed_in_passages("Helm 的配置文件默认放在哪里？", [helm]) == []
    mac = hit("我们了解到 macOS 上的一个案例是 Helm 会试图访问 `/etc/.mdns_debug` 文件。")
    assert unnamed_in_passages("Mac 上 helm 为什么会去读 /etc/.mdns_debug？", [mac]) == []
    assert unnamed_in_passages("从 helm2 迁过来以后 release 不见了？", [hit("从 Helm 2 迁移到 Helm 3 以后……")]) == []
    # only the passages that may answer count: an unusable one that names it does not
    crio = hit("CRI-O 的配置文件位于 /etc/crio/crio.conf。")
    assert unnamed_in_passages("CRI-O 的配置文件默认放在哪里？", [helm, crio], usable=[True, False]) == ["CRI-O"]
    assert unnamed_in_passages("CRI-O 的配置文件默认放在哪里？", [helm, crio]) == []
    # questions without names are never refused by this rule
    assert unnamed_in_passages("配置文件默认放在哪里？", [helm]) == []


def test_a_command_right_under_a_heading_that_asks_the_question_leads():
    """"### 查看 Pod 内容器上次启动时的日志信息" then only the command: the heading introduces it."""
    text = ("```shell\nkubectl -n ${namespace} logs -p ${name}\n```\n\n"
            "确认日志中的错误信息后，可以根据启动报错中的指引信息进行进一步排查解决。")
    h = hit(text, heading="常见部署错误 > Pod 处于 CrashLoopBackOff 状态 > 查看 Pod 内容器上次启动时的日志信息")
    ans = answer("Pod CrashLoopBackOff 了，怎么看上一次启动的日志？", h)
    assert ans.startswith("`kubectl -n ${namespace} logs -p ${name}` 确认")  # shown as code, kept apart
    # a heading that does not ask it leaves the sentences to lead
    h = hit(text, heading="常见部署错误 > 其他")
    assert not answer("Pod CrashLoopBackOff 了，怎么看上一次启动的日志？", h).startswith("`kubectl")


def test_a_how_answer_quotes_the_sentence_that_names_the_command_even_without_its_output():
    """The passage ends at "使用 `helm show values` 可以查看 chart 中的可配置选项：" (the values are in
    the next passage): the command answers; the passage's opening "上述……" points at text it lacks."""
    text = ("上述安装方式只会使用 chart 的默认配置选项。很多时候，我们需要自定义 chart 来指定我们想要的配置。\n\n"
            "使用 `helm show values` 可以查看 chart 中的可配置选项：")
    ans = answer("装 chart 之前怎么看它有哪些可配置的值？", hit(text))
    assert first_sentence(ans) == "使用 `helm show values` 可以查看 chart 中的可配置选项。"
    assert not re.search(r"[：:]\[\d+\]", ans)
    # a lead-in that names no command still announces what it does not quote: not quoted alone
    text = "很多时候，我们需要自定义 chart 来指定我们想要的配置。\n\n可以查看 chart 中的可配置选项："
    assert "可配置选项" not in answer("装 chart 之前怎么看它有哪些可配置的值？", hit(text))



def test_a_sentence_is_read_with_the_heading_of_its_section():
    """"如果你想保留删除记录，加上 keep-history 参数即可。" lacks "卸载" and "release", which its
    section's heading ("'helm uninstall'：卸载 release") holds; it outranks a sentence of another
    section that shares as many of the question's words."""
    q = "卸载 release 时想保留历史记录怎么办？"
    keep = hit("如果你想保留删除记录，加上 keep-history 参数即可。", heading="使用 Helm > 'helm uninstall'：卸载 release")
    other = hit("保留的记录可以通过参数以表格形式打印。", heading="helm history > 简介", fused=1.0)
    assert first_sentence(answer(q, other, keep)).startswith("如果你想保留删除记录")
    keep.chunk.heading = "使用 Helm > 其他"
    assert first_sentence(answer(q, other, keep)).startswith("保留的记录可以通过参数")


def test_a_why_answer_that_is_a_conclusion_comes_after_its_reason():
    """"因此，TiDB Operator v2 不再支持该功能。" matches "为什么 v2 不支持……" best, but it is the effect: the
    sentence before it is the reason."""
    text = ("基于 EBS 卷快照的备份恢复成本过高。随着持续的优化，TiDB BR 的性能提升显著，基于 EBS 卷快照的备份恢复不再是必需的。"
            "因此，TiDB Operator v2 不再支持该功能。")
    ans = answer("为什么 v2 不支持 EBS 快照备份了？", hit(text))
    assert first_sentence(ans).startswith("随着持续的优化")
    assert ans.index("随着持续的优化") < ans.index("因此，TiDB Operator v2")


def test_a_section_is_about_what_its_headings_name_even_where_its_text_does_not_repeat_it():
    """A "基础镜像是什么" section of a Docker article never writes "Docker": the headings hold it,
    so the window re-score credits it, partly (words in the text still count more)."""
    from qa import lexical
    from qa.retrieval import heading_only_coverage, make_query

    q = make_query("为什么要用 Docker？")
    text = lexical.fold("我们首先要做的最重要的事情，就是统一环境。")
    assert heading_only_coverage(q, text, lexical.fold("Docker和k8s关系 基础镜像是什么")) == pytest.approx(1.0)
    # a word the text already holds is not counted twice, and headings that lack it add nothing
    assert heading_only_coverage(q, lexical.fold("Docker 统一了环境。"), lexical.fold("Docker 是什么")) == 0.0
    assert heading_only_coverage(q, text, lexical.fold("基础镜像是什么")) == 0.0


def test_a_blockquote_is_read_without_its_markers():
    """TiDB's docs put caveats in "> **注意：**" blockquotes holding a list: each item is one unit,
    quoted without "> -" markup, and the label alone is not a unit."""
    text = ("TiKV 组件由于涉及到数据搬迁，通常需要 3 到 5 分钟来进行扩容或者缩容。\n\n"
            "> **注意：**\n>\n"
            "> - 当 `Serving` 状态的 TiKV 数量小于或等于 `MaxReplicas` 时，无法缩容 TiKV 组件。\n"
            "> - TiFlash 组件缩容处理逻辑和 TiKV 组件相同。\n\n"
            "> 在部分情况下容器网络的性能会优于宿主机网络，\n> 而宿主机网络的所有数据包均需经过 netfilter。")
    units = split_units(text)
    assert [u.kind for u in units] == ["sent", "item", "item", "sent"]
    assert units[1].text == "当 `Serving` 状态的 TiKV 数量小于或等于 `MaxReplicas` 时，无法缩容 TiKV 组件。"
    assert text[slice(*units[1].spans[0])] == units[1].text  # the highlight is the item itself
    assert units[3].text == "在部分情况下容器网络的性能会优于宿主机网络，而宿主机网络的所有数据包均需经过 netfilter。"
    ans = answer("TiKV 在什么情况下无法缩容？", hit(text))
    assert ">" not in ans and "注意" not in ans and "无法缩容 TiKV 组件" in ans


def test_a_prompt_inside_a_code_block_is_not_a_blockquote():
    text = "在 PowerShell 中执行：\n\n```\n> helm version\n```\n"
    code = [u for u in split_units(text) if u.kind == "code"]
    assert code and code[0].text == "> helm version"
    # ... while a code block inside a quote is code without the quote's markers
    quoted = [u for u in split_units("> 查看所有 Pod：\n>\n> ```\n> kubectl get pods -A\n> ```\n") if u.kind == "code"]
    assert quoted and quoted[0].text == "kubectl get pods -A"


@pytest.mark.parametrize("question,left,right", [
    ("ubuntu 和 centos 上装 vim 的命令有什么不同？", "ubuntu", "centos"),
    ("helm search hub 和 helm search repo 有什么区别？", "hub", "repo"),  # the shared words tell nothing apart
    ("Deployment 与 StatefulSet 的区别", "deployment", "statefulset"),
])
def test_the_two_sides_of_a_comparison_are_found(question, left, right):
    from qa.answer import compared_sides

    sides = compared_sides(make_query(question))
    assert left in sides[0] and right in sides[1]
    assert not set(sides[0]) & set(sides[1])


def test_a_difference_question_leads_with_the_sentence_naming_both_sides():
    """"有什么不同" is in the setup sentence too; the one that says what each side does answers."""
    text = ("作为一个程序员，如果你想安装一个 vim 编辑下文本，在不同环境里你得执行不同的命令。"
            "在 ubuntu，你需要执行 apt-get install vim，在 centos 里，你需要执行 yum install vim.\n\n"
            "装个小软件尚且如此，要是你想将自己写的代码部署到各个不同操作系统的服务器上，那依赖的软件和配置就更多了。")
    other = "针对 DEB 系统（如 Ubuntu、Debian）：\n\n```\napt-get install helm\n```\n\n针对 RPM 系统（如 CentOS、RHEL）：\n"
    ans = answer("ubuntu 和 centos 上装 vim 的命令有什么不同？", hit(text), hit(other, fused=0.6))
    assert first_sentence(ans).startswith("在 ubuntu，你需要执行 apt-get install vim")


def test_a_compound_and_its_parts_count_once():
    """jieba's search mode gives "历史记录" and its parts "历史", "记录", "史记": a sentence holding
    the compound must not outweigh one holding a part plus the word the question asks about."""
    from qa import lexical

    terms = lexical.question_terms("卸载 release 时想保留历史记录怎么办？")
    words = dict(terms)
    assert {"历史记录", "记录"} <= set(words)
    once = lexical.distinct_matched_weight(terms, lexical.fold("历史记录会以表格形式打印。"))
    assert once == pytest.approx(words["历史记录"])
    assert lexical.matched_weight(terms, lexical.fold("历史记录会以表格形式打印。")) > once
    ans = answer("卸载时想保留历史记录怎么办？", hit("历史记录会以格式化表格形式打印。"),
                 hit("如果你想保留删除记录，使用 `helm uninstall --keep-history`。"))
    assert first_sentence(ans).startswith("如果你想保留删除记录")


def test_an_example_that_is_set_up_is_read_with_the_sentences_that_make_its_point():
    """"想一想自动驾驶的汽车。" matches the question's words but says nothing alone; the point is in
    the sentences after it (the CNCF glossary on edge computing)."""
    text = ("在过去十年中，我们看到了越来越多的边缘设备。\n"
            "在某些情况下，实时数据处理不再是可有可无，而是至关重要。想一想自动驾驶的汽车。\n"
            "现在想象一下，来自汽车传感器的数据必须先传输到数据中心进行处理，然后再发送回车辆。\n"
            "固有的网络延迟可能是致命的。\n\n边缘计算是一种分布式系统方法。")
    ans = answer("自动驾驶为什么需要边缘计算？", hit(text))
    assert ans.startswith("想一想自动驾驶的汽车。现在想象一下") and "固有的网络延迟可能是致命的" in ans


def test_a_when_question_leads_with_the_situation():
    """"什么情况下适合……" is answered by "……适用于以下场景：", not by the caveats listed before it."""
    caveats = "挂起 TiDB 集群前，需要注意以下事项：\n\n- 挂起操作将中断集群服务\n- PVC 和数据仍会保留并占用存储空间\n"
    uses = "挂起 TiDB 集群适用于以下场景：\n\n- 临时释放测试环境中的计算资源\n- 停止长期不使用的开发集群\n"
    ans = answer("什么情况下适合把 TiDB 集群挂起？", hit(caveats), hit(uses, fused=0.97))
    assert first_sentence(ans).startswith("挂起 TiDB 集群适用于以下场景：临时释放测试环境中的计算资源")


def test_a_sentence_that_goes_on_about_the_previous_ones_subject_is_read_with_it():
    """"默认为 Always。" never names restartPolicy: it goes on about the sentence before it, so the
    question's word in that sentence counts for it too (the Kubernetes Pod lifecycle page) -- but
    only inside one paragraph: a new paragraph starts a new subject."""
    from qa.answer import _candidates

    text = ("PodSpec 中有一个 `restartPolicy` 字段，可能的值为 Always、OnFailure 和 Never。默认为 Always。"
            "`restartPolicy` 适用于 Pod 中的所有容器。")
    q = make_query("restartPolicy 默认值是什么？")

    def score(passage: str) -> float:
        h = hit(passage)
        h.coverage = coverage(q, passage)
        return next(c.score for c in _candidates(q, [h], 3, None) if c.unit.text == "默认为 Always。")

    assert score(text) > score(text.replace("默认为 Always。", "\n\n默认为 Always。\n\n"))


def test_a_paragraphs_opening_sentence_names_what_its_later_sentences_are_about():
    """A paragraph names its subject once, up front; a later sentence about it (two sentences on)
    still counts the subject the question asks about."""
    from qa.answer import _candidates

    text = "霁虹桥是一座位于哈尔滨的铁路桥。桥身两侧装饰着雕刻。2004年，检测机构将它鉴定为危桥。"
    q = make_query("霁虹桥哪一年被鉴定为危桥？")

    def score(passage: str) -> float:
        h = hit(passage)
        h.coverage = coverage(q, passage)
        return next(c.score for c in _candidates(q, [h], 3, None) if c.unit.text.startswith("2004年"))

    assert score(text) > score(text.replace("2004年", "\n\n2004年"))


def test_a_this_is_because_sentence_answers_past_one_sentence_of_detail():
    """"为什么……" restated by the first sentence; "这是因为……" two sentences on gives the reason."""
    text = ("我们了解到 macOS 上 Helm 会试图访问 `/etc/.mdns_debug` 文件。如果文件存在，Helm 会保持文件句柄打开。"
            "这是因为 macOS 的 MDNS 库。它尝试去加载这个文件读取 debug 设置。")
    ans = answer("Mac 上 helm 为什么会去读 /etc/.mdns_debug？", hit(text))
    assert first_sentence(ans) == "这是因为 macOS 的 MDNS 库。"


def test_a_how_question_about_a_failure_leads_with_the_remedy_not_the_restated_failure():
    """"……不生效怎么办？": the sentence saying the update fails matches every word of the question;
    the step right after it is what to do (Kube-OVN's fixed-IP page)."""
    text = ("由于 StatefulSet 下的 IP 和 Pod Name 生命周期绑定，直接更新 StatefulSet 的 `ovn.kubernetes.io/ip_pool` "
            "Annotation 无法更新 Pod 的 IP。如果遇到需要更新 StatefulSet Pod IP 的场景请先将 StatefulSet 的副本数 "
            "scale 到 0，之后再更新 Annotation 并恢复 StatefulSet 副本数。")
    ans = answer("StatefulSet 的 Pod IP 要改，直接改 annotation 不生效怎么办？", hit(text))
    assert first_sentence(ans).startswith("如果遇到需要更新 StatefulSet Pod IP 的场景请先将")
    # a question that is not about a failure keeps the sentence that matches it best
    ans = answer("StatefulSet 的 Pod IP 和 Pod Name 是什么关系？", hit(text))
    assert first_sentence(ans).startswith("由于 StatefulSet 下的 IP 和 Pod Name 生命周期绑定")


def test_a_trimmed_sentence_keeps_a_condition_with_what_it_conditions():
    """At a chat-sized budget a long sentence is cut to its best clauses; "DaemonSet Controller 将在……
    上创建 Pod" without "如果指定了 nodeSelector" says it always does, and "要跑 go 应用" without
    "那就……什么都不需要装" says nothing."""
    text = ("如果指定了 `nodeSelector`，DaemonSet Controller 将只在匹配的节点上创建 Pod，其余节点上不会跑它的 Pod，"
            "这和 Deployment 的调度方式有很大的不同。")
    ans = answer("想让 DaemonSet 只在部分节点上跑应该怎么配？", hit(text), budget=60)
    assert ans.startswith("如果指定了 `nodeSelector`，DaemonSet Controller 将只在匹配的节点上创建 Pod")
    text = ("比如要跑 python 应用，你得装个 python 解释器，要跑个 java 应用，得装个 JVM，要跑 go 应用，"
            "那就什么都不需要装，这也是很多团队选择用 go 写命令行工具和各种后台服务的原因之一。")
    ans = answer("跑 go 应用的镜像为什么不用装语言运行时？", hit(text), budget=60)
    assert "要跑 go 应用，那就什么都不需要装" in ans


def test_a_name_question_quotes_the_sentence_that_gives_the_name(monkeypatch):
    """"叫什么名字？" is answered by "……默认名为 `ovn-default`" even when another passage says more
    about the default subnet (Kube-OVN's subnet guide)."""
    from qa import answer as answer_module

    assert question_type("kube-ovn 默认子网叫什么名字？") == "name"
    assert question_type("博物馆原名是什么？") == "name"
    about = ("Kube-OVN 内置了一个默认子网，所有未显式声明子网归属的 Namespace 会自动从默认子网中分配 IP，"
             "并使用默认子网的网络信息。")
    named = "默认子网 spec 中的 default 字段为 true，一个集群下只有一个默认子网，默认名为 `ovn-default`。"
    def ask() -> str:
        return answer("kube-ovn 默认子网叫什么名字？", hit(about + "该子网的配置为安装时指定。"), hit(named, fused=0.82))

    assert "默认名为 `ovn-default`" in ask()
    monkeypatch.setitem(answer_module.CUE_WEIGHT, "name", 0.0)
    assert "默认名为 `ovn-default`" not in ask()


def test_a_which_ones_question_leads_with_the_sentence_that_enumerates(monkeypatch):
    """"……做哪些事情？" asks for a list: the sentence that enumerates ("例如身份验证和授权、限制……")
    answers it, not the one that says what an API gateway is (the CNCF glossary)."""
    from qa import answer as answer_module

    assert question_type("API 网关一般会集中做哪些事情？") == "list"
    assert question_type("装 chart 之前怎么看它有哪些可配置的值？") == "how"
    what = "API 网关是一种通过聚合多个应用程序的 API 并实现一站式管理的工具，它作为一个公共的接口向 API 消费者提供服务。"
    which = "API 网关让组织将关键性功能移交到一个可集中管理的地方，例如身份验证和授权、限制应用程序之间的请求数量。"

    def lead() -> str:
        return first_sentence(answer("API 网关一般会做哪些事情？", hit(what), hit(which, fused=0.97)))

    assert lead().startswith("API 网关让组织")
    monkeypatch.setitem(answer_module.CUE_WEIGHT, "list", 0.0)
    assert lead().startswith("API 网关是一种")


def test_a_list_of_bare_names_no_sentence_introduces_is_not_quoted():
    """A glossary's "相关词汇" list of links ("- 水平伸缩 - 垂直伸缩") names terms and says nothing about
    them; the written passage answers (CNCF glossary, vertical scaling)."""
    related = "- 水平伸缩\n- 垂直伸缩\n"
    text = "垂直伸缩，也称为“向上和向下伸缩”，是一种通过在工作负载增加时向单个节点添加 CPU 和内存来增加系统容量的技术。"
    ans = answer("水平伸缩和垂直伸缩有啥区别？", hit(related, heading="相关词汇"), hit(text, fused=0.98))
    assert ans.startswith("垂直伸缩，也称为") and "水平伸缩；垂直伸缩" not in ans
    # introduced by a sentence, short items are what it lists
    listed = "Kube-OVN 在安装时会配置两个内置子网：\n\n- `default` 子网\n- `join` 子网\n"
    assert "`default` 子网；`join` 子网" in answer("kube-ovn 安装时会建哪几个子网？", hit(listed))


def test_a_weaker_unit_of_another_passage_does_not_shut_out_the_lead_passages_own():
    """Units of the lead's passage are added down to 0.2 of the best, other passages' down to
    0.35: another passage's unit scoring in between is skipped, not the end of the list."""
    own = "Kube-OVN 子网的网关类型可以配置为集中式网关。\n\n集中式网关的网关节点需要提前规划好。"
    other = "Kube-OVN 的 Underlay 子网中由物理网关转发流量。"
    ans = answer("Kube-OVN 的子网网关怎么配置成集中式？", hit(own), hit(other, fused=0.88))
    assert ans == "Kube-OVN 子网的网关类型可以配置为集中式网关。集中式网关的网关节点需要提前规划好。[1]"


def test_a_supporting_sentence_that_answers_the_articles_own_question_comes_with_it():
    """"当然不，故kubernetes技术便出现了" quoted after another passage's lead needs the question
    it answers ("手动一个一个创建？"), or it reads as a "no" to the reader's question."""
    lead = "说白了，我们用kubernetes去管理Docker集群，即可以将Docker看成Kubernetes内部使用的低级别组件。"
    text = "如果有成千上万个 Docker 容器，手动一个一个创建？当然不，故kubernetes技术便出现了，以kubernetes为代表的容器集群管理系统就该上场了。"
    ans = answer("为什么有了 Docker 还需要 kubernetes？", hit(lead), hit(text, fused=0.99))
    assert "当然不" in ans and ans.index("手动一个一个创建？") < ans.index("当然不")


def test_a_why_question_reads_a_limitation_as_its_reason():
    """"v2 为什么不用 StatefulSet 了？": what v2 did instead matches the question's words as well;
    the limitations after "StatefulSet 的一些限制……，比如：" are why (TiDB Operator's v2-vs-v1 page)."""
    text = ("由于 TiDB 集群本身的复杂性，Kubernetes 原生的 Deployment 和 StatefulSet 控制器无法完美适配 TiDB 的部署和运维需求。"
            "TiDB Operator v1 通过 StatefulSet 管理所有 TiDB 组件，然而 StatefulSet 的一些限制无法最大化 Kubernetes "
            "能够提供的能力，比如：\n\n- StatefulSet 限制了 `VolumeClaimTemplate` 的修改，无法原生支持扩容\n"
            "- StatefulSet 限制了缩容和滚动更新的顺序，导致 leader 的反复调度\n\n"
            "TiDB Operator v2 移除了对 StatefulSet 的依赖，并引入了以下 CRD：\n\n- `Cluster`\n- `ComponentGroup`\n- `Instance`\n\n"
            "这三层 CRD 可以直接管理 Pod。")
    other = "TiDB Operator v2 通过 `ComponentGroup` CRD 来管理具有共同特性的节点，通过 `Instance` CRD 来管理单个实例。"
    ans = answer("TiDB Operator v2 为什么不用 StatefulSet 了？", hit(text), hit(other, fused=0.9))
    assert first_sentence(ans).startswith("TiDB Operator v1 通过 StatefulSet 管理所有 TiDB 组件，然而")
    assert "无法原生支持扩容" in ans
