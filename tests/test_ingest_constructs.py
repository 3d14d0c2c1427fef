"""Markdown constructs that used to reach answers as garbage (issue 13): diagrams, thematic
breaks, backslash escapes, code blocks cut at the hard limit.  The corpus under
tests/fixtures/constructs/ has each construct; the zh-tech corpus is checked too when present."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from qa.chunks import ChunkerConfig, chunk_document, passage_problems
from qa.documents import Document, iter_corpus, load_document
from qa.ingest import IngestReport, _hard_cut
from tests.conftest import FIXTURES, ROOT, make_settings
from tests.test_documents import assert_line_map_exact

CONSTRUCTS = FIXTURES / "constructs"
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "zh-tech-corpus"


def passages(root: Path):
    """(document, passage) pairs exactly as ingest stores them (chunker + hard cut)."""
    cfg = ChunkerConfig()
    for doc in iter_corpus(root):
        if isinstance(doc, Document):
            for ch in _hard_cut(chunk_document(doc, cfg), doc, cfg.hard_limit, IngestReport("t", "t")):
                yield doc, ch


def load(name: str) -> Document:
    doc = load_document(CONSTRUCTS / name, CONSTRUCTS)
    assert isinstance(doc, Document)
    return doc


def test_checker_flags_each_problem():
    """The checker the zero-problem assertions rely on does see each kind of garbage."""
    assert passage_problems("```mermaid\nflowchart TD\n  A[开始] --> B[结束]\n```", "code") == ["diagram_source"]
    assert passage_problems("第一段。\n\n---", "text") == ["ends_with_thematic_break"]
    assert passage_problems(r"协议 \(CC BY-NC-SA 4.0\) 发布", "text") == ["backslash_escape"]
    assert passage_problems("```yaml\nkey: 1", "code") == ["unbalanced_fence"]
    assert passage_problems("```bash\ndocker run \\\n  nginx\n```\n`\\(x\\)` 与 | a \\| b |", "text") == []


def test_constructs_fixture_has_no_garbage_passages():
    seen = 0
    for doc, ch in passages(CONSTRUCTS):
        seen += 1
        assert doc.body[ch.start : ch.end] == ch.text  # offsets stay truthful
        assert ch.display_text.count(ch.text) == 1
        assert passage_problems(ch.display_text, ch.kind) == [], (doc.path, ch.display_text[:200])
        assert not re.search(r"\\[()*_#]", re.sub(r"`[^`]*`|```.*?```", "", ch.index_text, flags=re.S)), ch.index_text
    assert seen >= 15
    for doc in iter_corpus(CONSTRUCTS):
        assert_line_map_exact(doc, CONSTRUCTS / doc.path)


def test_diagrams_are_diagram_passages_embedded_by_their_labels():
    doc = load("diagrams.md")
    chunks = chunk_document(doc)
    diagrams = [c for c in chunks if c.kind == "diagram"]
    # mermaid, plantuml, sequence, dot, flow, <div class="mermaid"> and {% mermaid %}
    assert len(diagrams) == 7
    for c in diagrams:
        assert c.display_text.startswith("```") and c.display_text.endswith("```")  # kept whole for citations
        embedded = c.embed_text(doc.title)
        for source in ("-->", "->", "flowchart", "@startuml", "digraph", "subgraph", "=>", "participant"):
            assert source not in embedded, (source, embedded)
    labels = "\n".join(c.embed_text(doc.title) for c in diagrams)
    for label in ("提交代码", "单元测试通过", "创建订单请求", "校验令牌", "接口层", "开始部署", "负载均衡", "健康检查"):
        assert label in labels
    prose = [c for c in chunks if c.kind == "text"]
    assert any("Argo CD" in c.text for c in prose) and all("flowchart" not in c.text for c in prose)
    # the diagram never shares a passage with the prose around it
    assert not any("```" in c.text for c in prose)


def test_thematic_breaks_and_toc_markers_are_not_text():
    doc = load("breaks.md")
    lines = doc.body.split("\n")
    assert not [ln for ln in lines if re.fullmatch(r"\s*([-*_=]\s*){3,}|\[TOC\]", ln)]
    src = (CONSTRUCTS / "breaks.md").read_text(encoding="utf-8").split("\n")
    for text in ("第二段介绍 Pod 的重启策略。", "最后一段总结全文。"):
        assert src[doc.line_map[lines.index(text)] - 1] == text  # line map intact
    assert not any(c.text.rstrip().endswith(("---", "***", "___")) for c in chunk_document(doc))


def test_backslash_escapes_unescaped_outside_code():
    doc = load("escapes.md")
    lines = doc.body.split("\n")
    src = (CONSTRUCTS / "escapes.md").read_text(encoding="utf-8").split("\n")
    expected = {
        "本文采用知识共享许可协议 (CC BY-NC-SA 4.0) 发布。": 3,
        "1) 使用 kubectl patch 更新资源。": 5,
        "星号 *不是强调*，下划线 _也不是_，井号 # 也只是字符。": 9,
    }
    for text, line in expected.items():
        assert doc.line_map[lines.index(text)] == line
    assert "\\(" in src[2]
    assert "行内代码里的 `\\(保持原样\\)` 不变。" in lines  # code spans are code
    assert "docker run \\" in lines  # and so are fenced blocks
    assert "| `a \\| b` | 管道 \\| 保留 |" in lines  # "\|" in a table row is not a cell border


def test_code_cut_at_the_hard_limit_is_refenced_with_its_language():
    doc = load("longcode.md")
    code = [c for c in _hard_cut(chunk_document(doc), doc, 1500, IngestReport("t", "t")) if c.kind == "code"]
    yaml_parts = [c for c in code if "key_" in c.text]
    js_parts = [c for c in code if "var x" in c.text or ",699" in c.text]
    assert len(yaml_parts) >= 3 and len(js_parts) >= 2
    for c in yaml_parts:
        assert c.display_text.startswith("```yaml\n") and c.display_text.endswith("\n```")
    for c in js_parts:
        assert c.display_text.startswith("```js\n") and c.display_text.endswith("\n```")
    # the middle pieces lack both fences in the body, so both are added; offsets are the slice's
    middle = yaml_parts[1]
    assert middle.fence_open == "```yaml" and middle.fence_close == "```"
    assert doc.body[middle.start : middle.end] == middle.text and not middle.text.startswith("```")
    # never a passage that is only a fence line
    assert not [c for c in code if c.text.strip().strip("`").strip() in ("", "js", "yaml")]
    unclosed = chunk_document(load("unclosed.md"))
    assert passage_problems(unclosed[-1].display_text, unclosed[-1].kind) == []


def test_zh_tech_corpus_has_no_garbage_passages():
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"{SHARED_CORPUS} not present")
    bad = [(d.path, c.line_start, p) for d, c in passages(SHARED_CORPUS) for p in passage_problems(c.display_text, c.kind)]
    assert bad == []


@pytest.mark.model
def test_kind_reaches_the_citation(tmp_path):
    """End to end with the real model: a question about a diagram's label finds the diagram,
    cited with kind 'diagram' and its source intact; a cut code block is cited re-fenced."""
    from qa.assistant import Assistant
    from qa.ingest import ingest

    corpus = tmp_path / "corpus"
    shutil.copytree(CONSTRUCTS, corpus)
    for name in ("breaks.md", "escapes.md", "unclosed.md"):  # fewer passages to embed
        (corpus / name).unlink()
    index = tmp_path / "index"
    report = ingest(corpus, make_settings(index))
    assert report.published and not report.skipped
    bot = Assistant.open(index, settings=make_settings(index))
    ans = bot.ask("执行滚动更新 开始部署", top_k=3, method="lexical")
    top = ans.citations[0]
    assert top.kind == "diagram" and top.text.startswith("```flow") and "st=>start: 开始部署" in top.text
    ans = bot.ask("key_060 配置项 60", top_k=3, method="lexical")
    cut = next(c for c in ans.citations if "key_060" in c.text)
    assert cut.kind == "code" and cut.text.startswith("```yaml\n") and cut.text.endswith("\n```")
    assert ans.model_dump()["citations"][0]["kind"] in ("code", "text", "table", "diagram")
