"""Retrieval and answers over a real index: paraphrases, exact terms, citations, abstention."""

from __future__ import annotations

import re

import pytest

from qa.answer import display


def test_seed_question_cites_the_docker_article_with_heading_and_lines(assistant):
    ans = assistant.ask("k8s 和 Docker 是什么关系")
    assert not ans.abstained
    top = ans.citations[0]
    assert "docker-k8s" in top.path
    assert "关系" in top.heading
    assert top.line_start >= 1 and top.line_end >= top.line_start
    first = int(re.search(r"\[(\d+)\]", ans.answer).group(1))
    assert "docker-k8s" in ans.citations[first - 1].path


def test_chinese_paraphrase_is_found_densely(assistant):
    # no shared wording with "Helm 是 Kubernetes 的包管理工具"
    hits, _ = assistant.retrieve("k8s 上用什么工具来打包和发布应用？", method="dense", top_k=3)
    assert any("helm" in h.chunk.doc_path for h in hits)


def test_version_and_command_found_lexically(assistant):
    hits, _ = assistant.retrieve("1.28.4", method="lexical", top_k=3)
    assert hits and "cluster-upgrade" in hits[0].chunk.doc_path
    ans = assistant.ask("kubectl uncordon 是做什么的？")
    assert "cluster-upgrade" in ans.citations[0].path
    assert "uncordon" in ans.answer


def test_citation_markers_match_citations(assistant):
    for q in ["Redis 缓存的过期时间是多少？", "怎么回滚 Helm 的 Release？", "什么是基础镜像？"]:
        ans = assistant.ask(q)
        assert not ans.abstained, q
        markers = [int(m) for m in re.findall(r"\[(\d+)\]", ans.answer)]
        assert markers, ans.answer
        by_n = {c.n: c for c in ans.citations}
        for n in markers:
            assert n in by_n
            # every highlighted range of a cited passage is text from that passage shown in the answer
            for a, b in by_n[n].highlights:
                assert display(by_n[n].text[a:b]) in ans.answer
        assert len(ans.answer) <= assistant.settings.answer_chars + 20


def test_answer_contains_the_fact(assistant):
    assert "30 分钟" in assistant.ask("缓存默认多久过期？").answer
    assert "helm rollback" in assistant.ask("Helm 怎么回滚？").answer


@pytest.mark.parametrize(
    "question",
    ["今天北京的天气怎么样？", "如何做一道红烧肉？", "Who won the 2018 World Cup?", "莎士比亚写过哪些悲剧？"],
)
def test_off_topic_abstains(assistant, question):
    ans = assistant.ask(question)
    assert ans.abstained, (question, ans.confidence, ans.answer)
    assert ans.citations == []
    assert "没有" in ans.answer


def test_stub_does_not_outrank_content(assistant):
    # "Dockerfile 是什么" (a heading whose only passage is "待补充。。。") shares most words
    # with this question; the real explanation under "Docker 是什么？" must still win.
    hits, _ = assistant.retrieve("Docker 是什么？", top_k=5)
    assert hits and not hits[0].chunk.is_stub


def test_a_reference_list_ranks_below_every_written_passage(assistant):
    """"## 参考资料" holds only links: it is never the passage that answers, so it ranks after the
    written sections of its article (as a stub does), though the question shares its words."""
    hits, _ = assistant.retrieve("k8s 和 Docker 关系简单说明", top_k=10)
    ranks = [i for i, h in enumerate(hits) if h.chunk.heading == "参考资料"]
    written = [i for i, h in enumerate(hits) if h.chunk.doc_path.endswith("docker-k8s-relationship.md")
               and h.chunk.heading != "参考资料" and not h.chunk.is_stub]
    assert written and all(r > max(written) for r in ranks)


def test_traditional_question_matches_simplified_text(assistant):
    ans = assistant.ask("快取預設多久過期？")
    assert not ans.abstained
    assert "redis-cache" in ans.citations[0].path


@pytest.mark.model
def test_an_answer_reports_the_generation_its_passages_came_from(tmp_path):
    """A swap between retrieve() and answer() (a new generation published in between, as under
    live traffic) must not label an answer quoting the old articles with the new generation."""
    import shutil

    from qa.assistant import Assistant
    from qa.ingest import ingest
    from tests.conftest import FIXTURES, make_settings

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(FIXTURES / "corpus", corpus)
    ingest(corpus, make_settings(index))
    a = Assistant.open(index, settings=make_settings(index))
    hits, timings = a.retrieve("Helm 是什么？")
    old = a.reader.generation
    (corpus / "ops" / "redis-cache.md").unlink()
    ingest(corpus, make_settings(index))
    a._last_check = 0.0  # the next look at the reader sees the new generation
    assert a.reader.generation != old
    assert a.answer("Helm 是什么？", hits, timings).index.generation == old
    assert a.ask("Helm 是什么？").index.generation == a.reader.generation


@pytest.mark.model
def test_a_symptom_section_brings_its_fix_first(tmp_path):
    """FAQ pages file each problem as "现象" / "原因" / "解决方法".  A question describes the
    symptom, so the symptom section is what matches best; the sections after it under the same
    problem heading answer, and are cited before it."""
    from qa.assistant import Assistant
    from qa.ingest import ingest
    from tests.conftest import make_settings

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "faq.md").write_text(
        "# 常见问题\n\n## Pod 无法访问外部网络\n\n### 现象\n\n默认 VPC 下 Pod 在集群内访问正常，无法访问集群外部网络。\n\n"
        "### 解决方法\n\n1. 使用 `kubectl ko trace` 判断逻辑流表链路上是否存在 ACL 限制。\n"
        "2. 若不存在 ACL 限制，查看 Subnet 信息，确认网关节点网络正常。\n\n"
        "## Pod IP 不在指定的 CIDR 内\n\n### 现象\n\nPod 分配到的 IP 不在所属子网的 CIDR 范围内。\n\n"
        "### 解决方法\n\n查找主机路径的 `/etc/cni/net.d/` 目录下是否存在其他 CNI 配置文件。\n",
        encoding="utf-8",
    )
    (corpus / "subnet.md").write_text("# 子网\n\n子网是 Kube-OVN 的核心抽象，Pod 从子网中分配 IP 地址。\n", encoding="utf-8")
    ingest(corpus, make_settings(index))
    a = Assistant.open(index, settings=make_settings(index))
    ans = a.ask("集群内 Pod 访问正常，但是访问不了集群外部网络，怎么办？")
    headings = [c.heading for c in ans.citations]
    assert headings[0] == "常见问题 > Pod 无法访问外部网络 > 解决方法"
    assert "常见问题 > Pod 无法访问外部网络 > 现象" in headings[1:]  # still cited, after the fix
    assert "kubectl ko trace" in ans.answer and "[1]" in ans.answer
    # the other problem's fix is not pulled in by this symptom
    assert headings.count("常见问题 > Pod IP 不在指定的 CIDR 内 > 解决方法") <= 1


def test_passages_that_never_name_what_was_asked_about_are_not_an_answer(assistant):
    """Found passages share the words of "Redis 的配置文件默认放在哪里？" but not the name, which
    other articles do mention: the answer is "not covered" (status and flag), with nothing cited;
    the same passages answer a question about what they do name."""
    from qa.retrieval import Hit
    from qa.store import ChunkRow

    text = "下表列出了各操作系统上这些目录的默认路径：配置文件路径：`$HOME/.config/helm`，数据路径：`$HOME/.local/share/helm`。"
    row = ChunkRow(id=10**9, key="k", doc_path="helm.md", collection="default", title="Helm 目录", doc_meta={},
                   heading="Helm 目录 > 默认路径", text=text, start=0, end=len(text), line_start=1, line_end=1,
                   is_stub=False, kind="text", source="helm.md")
    hits = [Hit(row, 1.0, dense=0.9, lexical=10.0, coverage=0.8, confidence=0.9)]
    assert not assistant.unmentioned("Redis 的配置文件默认放在哪里？")
    ans = assistant.answer("Redis 的配置文件默认放在哪里？", hits)
    assert ans.abstained and ans.status == "not_covered" and not ans.citations
    assert "没有找到" in ans.answer
    ans = assistant.answer("Helm 的配置文件默认放在哪里？", hits)
    assert not ans.abstained and ans.status == "answered" and ans.citations[0].path == "helm.md"
