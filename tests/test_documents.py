"""Tests for qa.documents: decoding, front matter, cleaning, line mapping, corpus walking."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from pathlib import Path

import pytest

from qa.documents import Document, Skipped, clean, iter_corpus, iter_files, load_document
from qa.documents.dialects import DIALECTS, markdown

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "corpus" / "2024-06-11-docker-k8s-relationship.md"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "docs"
SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared/data/zh-tech-corpus"


# --------------------------------------------------------------------------- helpers


def _source_lines(doc: Document, path: Path) -> list[str]:
    raw = path.read_bytes()
    codec = {"utf-16": "utf-16", "utf-8-sig": "utf-8-sig"}.get(doc.encoding, doc.encoding)
    text = raw.decode(codec)
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _is_subsequence(needle: str, hay: str) -> bool:
    it = iter(hay)
    return all(ch in it for ch in needle)


def assert_line_map_exact(doc: Document, path: Path) -> None:
    """Every body line must come from the source line line_map names.

    Cleaning only deletes markup (and setext conversion adds '#'), so the
    non-space characters of a body line are a subsequence of its source line
    (after entity decoding); only Liquid highlight tags are rewritten.  Lines
    are strictly increasing: nothing is merged or duplicated.
    """
    body_lines = doc.body.split("\n") if doc.body else []
    assert len(doc.line_map) == len(body_lines)
    assert doc.line_map == sorted(set(doc.line_map))
    src = _source_lines(doc, path)
    for text, n in zip(body_lines, doc.line_map):
        assert 1 <= n <= len(src)
        assert text == text.rstrip()
        if text.startswith("```") and re.search(r"highlight|mermaid|</div>|</pre>", src[n - 1]):
            continue  # {% highlight %}, {% mermaid %}, <div class="mermaid"> and their ends become fences
        got = re.sub(r"[\s#]", "", text)
        want = re.sub(r"\s", "", html.unescape(src[n - 1]))
        assert _is_subsequence(got, want), (n, text, src[n - 1])


def line_of(doc: Document, text: str) -> int:
    """Source line of the body line equal to ``text``."""
    lines = doc.body.split("\n")
    assert text in lines, f"{text!r} not in body"
    return doc.line_map[lines.index(text)]


def load(path: Path, root: Path | None = None) -> Document:
    doc = load_document(path, root or path.parent)
    assert isinstance(doc, Document), doc
    return doc


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        p.write_text(content, encoding="utf-8")
    else:
        p.write_bytes(content)
    return p


# --------------------------------------------------------------------------- seed article


def test_seed_article_meta_and_noise_removed():
    doc = load(SEED)
    assert doc.path == "2024-06-11-docker-k8s-relationship.md"
    assert doc.title == "Docker和k8s关系"
    assert doc.meta["categories"] == ["Docker"]
    assert doc.meta["date"] == "2024-06-11"  # from the Jekyll file name
    assert doc.encoding == "utf-8"
    assert doc.warnings == []
    assert doc.content_hash == hashlib.sha256(SEED.read_bytes()).hexdigest()
    for noise in ("{:toc}", "{{site.baseurl}}", "* content", "<br", "layout: post", "](", "<https"):
        assert noise not in doc.body
    json.dumps(doc.meta)


def test_seed_article_line_map():
    doc = load(SEED)
    assert_line_map_exact(doc, SEED)
    assert doc.body.split("\n")[0] == "## k8s 和 Docker 关系简单说明"
    assert doc.line_map[0] == 10
    assert line_of(doc, "## Docker 和 k8s 之间是什么关系") == 56
    assert line_of(doc, "## k8s 到底是什么，架构是怎么样的？") == 95
    assert line_of(doc, "## 参考资料") == 113
    assert line_of(doc, "**简要介绍**") == 20
    assert line_of(doc, "**Docker 是什么？**") == 72
    assert line_of(doc, "参考 https://mp.weixin.qq.com/s/CHkU-LwxK9l7c_Z1-jAYWw") == 12
    assert line_of(doc, "参考 https://mp.weixin.qq.com/s/_ldWjMNgyAsglGexSbsqEw") == 58
    # Image-only lines disappear; no runs of blank lines are left behind.
    assert 32 not in doc.line_map and 42 not in doc.line_map
    assert "\n\n\n" not in doc.body
    # source_line() maps character offsets through the same table.
    offset = doc.body.index("## Docker 和 k8s 之间是什么关系")
    assert doc.source_line(offset) == 56


def test_seed_untouched_lines_are_verbatim():
    doc = load(SEED)
    src = _source_lines(doc, SEED)
    body = doc.body.split("\n")
    i = doc.line_map.index(60)
    assert body[i] == src[59]


# --------------------------------------------------------------------------- encodings

ZH = "---\ntitle: 中文标题\n---\n# 标题\n\n容器编排：Kubernetes 管理 Docker 容器。\n"


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("gbk", "gb18030"),
        ("gb18030", "gb18030"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),  # Python writes a BOM
        ("utf-16-be", "utf-16"),  # BOM added by hand below
        ("utf-8", "utf-8"),
    ],
)
def test_encodings(tmp_path, codec, expected):
    data = ZH.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    p = write(tmp_path, "a.md", data)
    doc = load(p)
    assert doc.encoding == expected
    assert doc.title == "中文标题"
    assert doc.body == "# 标题\n\n容器编排：Kubernetes 管理 Docker 容器。"
    assert doc.line_map == [4, 5, 6]
    assert doc.content_hash == hashlib.sha256(data).hexdigest()
    assert "\ufeff" not in doc.body


def test_gb18030_four_byte_characters(tmp_path):
    text = "# 生僻字 𠀀 与表情 😀\n正文\n"
    p = write(tmp_path, "b.md", text.encode("gb18030"))
    doc = load(p)
    assert doc.encoding == "gb18030"
    assert doc.title == "生僻字 𠀀 与表情 😀"


def test_bomless_utf16_is_text_not_binary(tmp_path):
    p = write(tmp_path, "c.md", "# Title\n\nplain ascii body that lost its BOM\n".encode("utf-16-le"))
    doc = load(p)
    assert doc.encoding == "utf-16"
    assert doc.title == "Title"


def test_crlf_line_endings(tmp_path):
    p = write(tmp_path, "crlf.md", "# 标题\r\n\r\n第一行\r\n第二行\r\n".encode())
    doc = load(p)
    assert doc.body == "# 标题\n\n第一行\n第二行"
    assert doc.line_map == [1, 2, 3, 4]


def test_mostly_utf8_with_a_corrupt_byte_stays_utf8(tmp_path):
    good = "这是一段很长的中文文本，用来确认少量损坏字节不会被误判为 GB18030。" * 3
    p = write(tmp_path, "d.md", good.encode() + b"\xff\n")
    doc = load(p)
    assert doc.encoding == "utf-8"
    assert doc.body.startswith("这是一段")
    assert any("U+FFFD" in w for w in doc.warnings)


def test_binary_renamed_md_is_skipped(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    p = write(tmp_path, "image.md", png)
    res = load_document(p, tmp_path)
    assert res == Skipped("image.md", "binary file")


def test_control_characters_without_nul_are_binary(tmp_path):
    p = write(tmp_path, "ctl.md", bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17]) * 50)
    res = load_document(p, tmp_path)
    assert isinstance(res, Skipped) and res.reason == "binary file"


def test_undecodable_is_skipped(tmp_path):
    p = write(tmp_path, "bad.md", bytes(range(0x80, 0x100)) * 4)
    res = load_document(p, tmp_path)
    assert res == Skipped("bad.md", "cannot decode as UTF-8, UTF-16 or GB18030")


def test_empty_and_blank_files(tmp_path):
    for name, content in (("empty.md", b""), ("blank.md", b"\n\n  \n")):
        p = write(tmp_path, name, content)
        doc = load(p)
        assert doc.body == "" and doc.line_map == []
        assert doc.title == p.stem
        assert doc.content_hash == hashlib.sha256(content).hexdigest()
        assert doc.source_line(0) == 1


def test_front_matter_only_file(tmp_path):
    doc = load(write(tmp_path, "fm.md", "---\ntitle: 只有元数据\n---\n"))
    assert doc.title == "只有元数据" and doc.body == "" and doc.line_map == []


# --------------------------------------------------------------------------- front matter


def test_broken_yaml_keeps_body_and_salvages_title(tmp_path):
    text = "---\ntitle: 坏掉的 YAML\ntags: [a, b\n  : : :\n---\n# 正文标题\n\n正文内容\n"
    p = write(tmp_path, "broken.md", text)
    doc = load(p)
    assert doc.body == "# 正文标题\n\n正文内容"
    assert doc.line_map == [6, 7, 8]
    assert doc.title == "坏掉的 YAML"
    assert len(doc.warnings) == 1 and "malformed YAML front matter" in doc.warnings[0]
    assert_line_map_exact(doc, p)


def test_unclosed_front_matter_uses_leading_keys(tmp_path):
    text = "---\ntitle: 没有结尾\ntags: k8s\n\n# 标题\n\n正文\n"
    p = write(tmp_path, "unclosed.md", text)
    doc = load(p)
    assert doc.title == "没有结尾"
    assert doc.meta["tags"] == ["k8s"]
    assert doc.body == "# 标题\n\n正文"
    assert doc.line_map == [5, 6, 7]
    assert any("unclosed front matter" in w for w in doc.warnings)


def test_unclosed_front_matter_without_keys_keeps_everything(tmp_path):
    text = "---\n这只是分隔线后的正文\n\n更多正文\n"
    doc = load(write(tmp_path, "rule.md", text))
    assert doc.body == "这只是分隔线后的正文\n\n更多正文"
    assert doc.line_map == [2, 3, 4]
    assert any("whole file kept as body" in w for w in doc.warnings)


def test_dash_block_of_prose_is_not_front_matter(tmp_path):
    text = "---\n一段被分隔线包围的文字\n---\n后文\n"
    doc = load(write(tmp_path, "prose.md", text))
    assert "一段被分隔线包围的文字" in doc.body
    assert doc.warnings


def test_toml_front_matter(tmp_path):
    text = '+++\ntitle = "Hugo TOML"\ndate = 2020-05-01\ntags = ["go", "hugo"]\n+++\n正文\n'
    doc = load(write(tmp_path, "toml.md", text))
    assert doc.title == "Hugo TOML"
    assert doc.meta["date"] == "2020-05-01"
    assert doc.meta["tags"] == ["go", "hugo"]
    assert doc.body == "正文" and doc.line_map == [6]


def test_front_matter_after_leading_comment(tmp_path):
    # kubernetes-docs-zh keeps the English front matter in a comment first.
    text = "<!--\n---\ntitle: English\n---\n-->\n---\ntitle: 中文\nurl: /docs/x\n---\n正文\n"
    doc = load(write(tmp_path, "k8s.md", text))
    assert doc.title == "中文"
    assert doc.meta["url"] == "/docs/x"
    assert doc.body == "正文" and doc.line_map == [10]


def test_meta_normalisation_is_json_serialisable(tmp_path):
    text = (
        "---\ntitle: 123\ndate: 2021-03-04T05:06:07Z\ncategory: 云原生\ncategories: [K8s, K8s]\n"
        "tags: 'docker, k8s，容器'\nslug: my-slug\nsummary: 摘要\nextra: {a: 2020-01-01}\n---\n正文\n"
    )
    doc = load(write(tmp_path, "meta.md", text))
    assert doc.title == "123"
    assert doc.meta["date"].startswith("2021-03-04T05:06:07")
    assert doc.meta["categories"] == ["K8s", "云原生"]
    assert doc.meta["tags"] == ["docker", "k8s", "容器"]
    assert doc.meta["slug"] == "my-slug"
    assert doc.meta["description"] == "摘要"
    json.dumps(doc.meta)


# --------------------------------------------------------------------------- cleaning


def test_kitchen_sink_fixture():
    p = FIXTURES / "2023-01-02-jekyll-kitchen-sink.md"
    doc = load(p)
    assert_line_map_exact(doc, p)
    assert doc.title == "Jekyll 杂烩：清洗测试"
    assert doc.meta["date"] == "2023-01-02T10:30:00+08:00"
    assert doc.meta["categories"] == ["运维", "Linux"]  # Jekyll splits strings on spaces
    assert doc.meta["tags"] == ["docker", "k8s", "容器"]
    assert doc.meta["permalink"] == "/ops/kitchen-sink/"
    expect = {
        13: "## 第一节",
        16: "图片：架构图",
        17: "链接：官方文档 与 参考。",
        18: "嵌套：徽章",
        19: "自动链接 https://example.com/a_b 与 https://example.com/c。",
        23: "注释后的文字",
        28: "居中 段落 <pod-name> & 更多",
        33: "网络拓扑",
        35: "```python",
        37: "    return \"{{ x }}\" + '<b>'",
        38: "```",
        41: "保留 {{ page.title }} 原样",
        49: "name: {{ .Values.name }}",
        50: "# <!-- keep me -->",
        53: "| 列 A | 列 B |",
        54: "| --- | --- |",
        55: "| **粗** | `{{ inline }}` |",
        58: "- 列表项二",
        60: "**加粗小标题**",
        62: "# Setext 标题",
        65: "尾部空格",
    }
    got = dict(zip(doc.line_map, doc.body.split("\n")))
    for line, text in expect.items():
        assert got.get(line) == text, (line, got.get(line))
    for gone in (10, 11, 14, 21, 24, 25, 26, 27, 29, 30, 31, 32, 40, 42, 44, 45, 46, 63, 66):
        assert got.get(gone, "") == "", gone
    for noise in ("不要我", "内部注释不要", "{:", "{%", "多行注释", "site.baseurl", "[ref1]"):
        assert noise not in doc.body


def test_hugo_shortcodes_fixture():
    p = FIXTURES / "hugo-shortcodes.md"
    doc = load(p)
    assert_line_map_exact(doc, p)
    assert doc.title == "Hugo 短代码"
    assert doc.meta["tags"] == ["a", "b", "c"]
    got = dict(zip(doc.line_map, doc.body.split("\n")))
    assert got[13] == "概述文字 版本。"
    assert got[17] == "**注意：** 请先备份。"  # inner text of a paired shortcode stays
    assert got[21] == "用 {{< note >}} 标记提示。"  # escaped shortcode shown literally
    assert got[24] == '{{< code file="x.yaml" >}}'  # code fence is verbatim
    assert "capture" not in doc.body and "{{< toc" not in doc.body and "English" not in doc.body


def test_multiline_html_comment(tmp_path):
    text = "前文\n<!-- 开始\n中间\n结束 --> 后半句\n正文\n<!-- a --> 保留 <!-- b\nc -->\n尾\n"
    doc = load(write(tmp_path, "c.md", text))
    assert doc.body == "前文\n\n后半句\n正文\n保留\n\n尾"
    assert doc.line_map == [1, 2, 4, 5, 6, 7, 8]


def test_unclosed_html_comment_keeps_text(tmp_path):
    text = "前文\n<!-- 忘了关闭\n重要内容\n"
    doc = load(write(tmp_path, "u.md", text))
    assert "重要内容" in doc.body
    assert any("unclosed HTML comment" in w for w in doc.warnings)


def test_fenced_code_verbatim(tmp_path):
    text = (
        "# 代码\n\n```go\n{{ x }}\n<!-- not a comment -->\n[link](url) <b>x</b> &lt;\n\n\n```\n"
        "- ```bash\n  echo {{site.baseurl}}\n  ```\n~~~~\n```\n{% raw %}\n~~~~\n后文 {{ x }}\n"
    )
    p = write(tmp_path, "code.md", text)
    doc = load(p)
    assert doc.body.split("\n") == [
        "# 代码",
        "",
        "```go",
        "{{ x }}",
        "<!-- not a comment -->",
        "[link](url) <b>x</b> &lt;",
        "",
        "",
        "```",
        "- ```bash",
        "  echo {{site.baseurl}}",
        "  ```",
        "~~~~",
        "```",
        "{% raw %}",
        "~~~~",
        "后文",
    ]
    assert doc.line_map == list(range(1, 18))
    assert doc.warnings == []


def test_unclosed_fence_warns(tmp_path):
    doc = load(write(tmp_path, "f.md", "正文\n```\ncode {{ x }}\n"))
    assert doc.body == "正文\n```\ncode {{ x }}"
    assert any("unclosed code fence" in w for w in doc.warnings)


def test_inline_code_is_protected(tmp_path):
    text = "运行 `kubectl get pod <name> -o {{.x}}` 和 `[a](b)` 然后 <b>粗</b> [文](u)\n"
    doc = load(write(tmp_path, "i.md", text))
    assert doc.body == "运行 `kubectl get pod <name> -o {{.x}}` 和 `[a](b)` 然后 粗 文"


def test_html_tables_and_entities(tmp_path):
    text = (
        "<table>\n  <tr>\n    <td>甲</td><td style=\"x\">乙&nbsp;丙</td>\n  </tr>\n</table>\n"
        "<style>\n.a{}\n</style>\n文字<br>换行 &copy; &#20013;\n"
    )
    doc = load(write(tmp_path, "h.md", text))
    assert doc.body == "甲 乙 丙\n\n文字 换行 © 中"
    assert doc.line_map == [3, 4, 9]


def test_mdx_imports_and_components(tmp_path):
    text = (
        "---\ntitle: MDX\n---\n\nimport Tabs from '@theme/Tabs';\n\n<Tabs>\n"
        "<TabItem value=\"a\" label=\"A\">\n内容 A\n</TabItem>\n</Tabs>\n{/* 注释 */}\n<DocCardList />\n"
    )
    doc = load(write(tmp_path, "x.mdx", text))
    assert doc.body == "内容 A"
    assert doc.line_map == [9]


def test_reference_links_and_footnotes(tmp_path):
    text = "见 [文档][d] 和 [d] 以及 [未定义][zz] 脚注[^1]\n\n[d]: https://x.y\n[^1]: 脚注内容\n"
    doc = load(write(tmp_path, "r.md", text))
    assert doc.body == "见 文档 和 d 以及 [未定义][zz] 脚注[^1]\n\n[^1]: 脚注内容"
    assert doc.line_map == [1, 2, 4]


def test_setext_headings(tmp_path):
    text = "大标题\n===\n\n小标题\n---\n\n第一行\n第二行\n---\n"
    doc = load(write(tmp_path, "s.md", text))
    lines = doc.body.split("\n")
    assert lines[0] == "# 大标题" and doc.line_map[0] == 1
    assert "## 小标题" in lines
    assert "第二行" in lines  # a multi-line paragraph is left alone
    assert doc.title == "大标题"


def test_trailing_whitespace_and_lines_not_merged(tmp_path):
    text = "第一行  \n第二行\t\n  - 缩进列表  \n"
    doc = load(write(tmp_path, "w.md", text))
    assert doc.body == "第一行\n第二行\n  - 缩进列表"
    assert doc.line_map == [1, 2, 3]


# --------------------------------------------------------------------------- the line contract

# Every dialect at once, with constructs that open and close on one line, span lines, nest in
# each other and never close (the last comment), so a stripper that adds or eats a line shows.
NASTY = """---
title: 混合样例
tags: [a, b]
---
<!-- 一个
跨行注释 --> 注释后
# 标题 {#anchor}
{: .note}
* 目录
{:toc}
Setext 标题
===
正文 <b>粗体</b> &amp; &lt;tag&gt; &nbsp; 换行实体 &#10; &#13; &#x2028; &#133; 结束\\
[链接](https://example.com "t") ![图](a.png) [引用][r] [r] <https://auto.link>
[r]: https://example.com/ref
<script>
var x = "<!--";
</script><style>p{}</style> 后文
{% raw %}{{ 保留 }}{% endraw %} {{ page.title }} {% include x.html %}
{% comment %}
隐藏
{% endcomment %} 之后
{{< note >}}Hugo 提示{{< /note >}} {{% tab %}} {{</* 显示 */>}}
import Tabs from '@theme/Tabs';
export const x = 1;
{/* MDX 注释 */}<Tabs><TabItem value="a">内容</TabItem></Tabs>
`code <b>span</b>` 后 \\*星号\\*
| 表 \\| 格 | <br> |
{% highlight go %}
fmt.Println("<b>")
{% endhighlight %}
{% mermaid %}
graph TD; A-->B
{% endmermaid %}
<div class="mermaid">
graph LR; C-->D
</div>
- ```bash
  echo '<b>' \\
  ```
<img src="x.png" alt="替代文字"> <table><tr><td>a</td><td>b</td></tr></table>
***
<!-- 未闭合的注释
最后一行
"""


def _strippers():
    for module in DIALECTS:
        name = module.__name__.rsplit(".", 1)[1]
        for fn in module.STRIPPERS + getattr(module, "CONTINUATIONS", ()):
            yield pytest.param(fn, id=f"{name}.{fn.__name__}")


def _one_line(text: str) -> bool:
    return text.splitlines() == ([text] if text else [])


@pytest.mark.parametrize("strip", list(_strippers()))
def test_every_stripper_keeps_lines(strip):
    """The contract in qa/documents/__init__.py: one line in, one line out, at the same position."""
    lines = NASTY.split("\n")
    for mdx in (False, True):
        st = clean.State(mdx=mdx, ref_ids=markdown.reference_ids(lines))
        out = []
        for n, line in enumerate(lines, 1):
            st.src = n
            got = strip(line, st)
            got = "" if got is None else got  # a continuation consumed the whole line
            assert isinstance(got, str) and _one_line(got), (n, line, got)
            out.append(got)
        assert len(out) == len(lines)


def test_every_stripper_is_listed():
    """A new strip_* function has to be in its module's STRIPPERS to be held to the contract."""
    for module in DIALECTS:
        listed = {fn.__name__ for fn in module.STRIPPERS + getattr(module, "CONTINUATIONS", ())}
        defined = {
            n for n, fn in vars(module).items()
            if n.startswith(("strip_", "after_", "unescape")) and fn.__module__ == module.__name__
        }
        assert defined <= listed, (module.__name__, defined - listed)


def test_cleaner_keeps_every_line_position(tmp_path):
    lines = NASTY.split("\n")
    for mdx in (False, True):
        out = clean.Cleaner(lines, 7, mdx, frozenset()).run()
        assert [o.src for o in out] == list(range(7, 7 + len(lines)))
        assert all(_one_line(o.text) for o in out)
    for suffix in (".md", ".mdx"):
        path = write(tmp_path, "nasty" + suffix, NASTY)
        doc = load(path)
        assert_line_map_exact(doc, path)
        assert line_of(doc, "# 标题") == 7 and line_of(doc, "最后一行") == 44
        assert "unclosed HTML comment on line 43; kept its text" in doc.warnings


def test_a_liquid_tag_that_lost_a_brace_is_not_prose(tmp_path):
    """The Kubernetes docs' cron-jobs page has "% include code.html … %}" (its "{" lost in a
    conversion): a whole line of template, dropped like a whole tag; the same words in prose,
    in {% raw %} or in code stay."""
    text = ("它会每分钟运行一个 Job。\n"
            '% include code.html language="yaml" file="cronjob.yaml" %}\n'
            "{% include x.html %\n"
            "把 100% 的流量 %} 切过去。\n"
            "{% raw %}\n% endif %}\n{% endraw %}\n"
            "```\n% include code.html %}\n```\n")
    doc = load(write(tmp_path, "cron.md", text))
    assert doc.body.split("\n") == [
        "它会每分钟运行一个 Job。", "", "把 100% 的流量 %} 切过去。", "", "% endif %}", "",
        "```", "% include code.html %}", "```",
    ]


# --------------------------------------------------------------------------- titles


def test_title_fallbacks(tmp_path):
    assert load(write(tmp_path, "a.md", "---\ntitle: 元数据标题\n---\n# 标题\n")).title == "元数据标题"
    assert load(write(tmp_path, "b.md", "正文\n\n## **二级** 标题 ##\n")).title == "二级 标题"
    assert load(write(tmp_path, "c.md", "---\ntitle: ''\n---\n# 回退标题\n")).title == "回退标题"
    assert load(write(tmp_path, "无标题 文件.md", "只有正文\n")).title == "无标题 文件"
    assert load(write(tmp_path, "2020-01-02-jekyll-post.md", "正文\n")).title == "jekyll-post"
    assert load(write(tmp_path, "网络/_index.md", "正文\n"), tmp_path).title == "网络"
    code_heading = load(write(tmp_path, "d.md", "```\n# 不是标题\n```\n"))
    assert code_heading.title == "d"


# --------------------------------------------------------------------------- corpus walking


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write(root, "b.md", "# B\n")
    write(root, "a/z.markdown", "# Z\n")
    write(root, "a/UPPER.MD", "# Upper\n")
    write(root, "a/notes.txt", "纯文本\n")
    write(root, "a/page.mdx", "# MDX\n")
    write(root, "a/image.png", b"\x89PNG")
    write(root, "a/data.json", "{}")
    write(root, ".git/config.md", "# hidden\n")
    write(root, ".hidden.md", "# hidden\n")
    write(root, "docs/.drafts/x.md", "# hidden\n")
    write(root, "中文 目录/带空格 的文件 🚀.md", "---\ntitle: 火箭\n---\n正文\n")
    return root


def test_iter_corpus_order_suffixes_hidden(tmp_path):
    root = _tree(tmp_path)
    items = list(iter_corpus(root))
    paths = [d.path for d in items]
    assert paths == sorted(paths)
    docs = [d for d in items if isinstance(d, Document)]
    assert [d.path for d in docs] == [
        "a/UPPER.MD",
        "a/notes.txt",
        "a/page.mdx",
        "a/z.markdown",
        "b.md",
        "中文 目录/带空格 的文件 🚀.md",
    ]
    # nothing is left out silently: every other entry is reported with why it was not read
    skipped = {d.path: d.reason for d in items if not isinstance(d, Document)}
    assert skipped == {
        ".git/": "hidden folder (1 file not read)",
        ".hidden.md": "hidden file",
        "a/data.json": "unsupported file type (.json)",
        "a/image.png": "unsupported file type (.png)",
        "docs/.drafts/": "hidden folder (1 file not read)",
    }
    rocket = docs[-1]
    assert rocket.title == "火箭" and rocket.body == "正文"


def test_iter_corpus_root_as_single_file(tmp_path):
    p = write(tmp_path, "单个 文件.md", "# 单个\n")
    (doc,) = list(iter_corpus(p))
    assert isinstance(doc, Document) and doc.path == "单个 文件.md" and doc.title == "单个"
    other = write(tmp_path, "x.json", "{}")
    (skip,) = list(iter_corpus(other))
    assert isinstance(skip, Skipped)


def test_iter_files_and_preloaded_bytes(tmp_path):
    root = _tree(tmp_path)
    items = [i for i in iter_files(root) if not isinstance(i, Skipped)]
    assert [rel for _, rel in items] == [d.path for d in iter_corpus(root) if isinstance(d, Document)]
    path, rel = items[-1]
    data = path.read_bytes()
    doc = load_document(path, root, data=data)
    assert isinstance(doc, Document) and doc.path == rel
    assert doc.content_hash == hashlib.sha256(data).hexdigest()
    single = write(tmp_path, "one.md", "# 一\n")
    assert list(iter_files(single)) == [(single, "one.md")]
    assert load(single, single).path == "one.md"


def test_iter_corpus_missing_root_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(iter_corpus(tmp_path / "nope"))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlinks(tmp_path):
    root = _tree(tmp_path)
    outside = write(tmp_path, "outside/secret.md", "# 外部\n")
    (root / "link.md").symlink_to(root / "b.md")
    (root / "linkdir").symlink_to(root / "a", target_is_directory=True)
    (root / "escape.md").symlink_to(outside)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.md").symlink_to(root / "missing.md")

    default = {d.path: d for d in iter_corpus(root)}
    for name in ("link.md", "linkdir", "escape.md", "loop", "dangling.md"):
        assert default[name] == Skipped(name, "symlink not followed")
    assert not any(p.startswith("linkdir/") for p in default)

    followed = {d.path: d for d in iter_corpus(root, follow_symlinks=True)}
    assert isinstance(followed["link.md"], Document) and followed["link.md"].title == "B"
    assert isinstance(followed["linkdir/z.markdown"], Document)
    assert followed["escape.md"].reason == "symlink target outside the corpus root"
    assert "loop" in followed["loop"].reason
    assert isinstance(followed["dangling.md"], Skipped)
    assert not any(p.startswith("loop/") for p in followed)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_is_skipped(tmp_path):
    root = _tree(tmp_path)
    locked = write(root, "locked.md", "# 锁\n")
    locked_dir = root / "locked_dir"
    write(locked_dir, "x.md", "# x\n")
    locked.chmod(0)
    locked_dir.chmod(0)
    try:
        items = {d.path: d for d in iter_corpus(root)}
    finally:
        locked.chmod(0o644)
        locked_dir.chmod(0o755)
    assert items["locked.md"] == Skipped("locked.md", "permission denied")
    assert isinstance(items["locked_dir"], Skipped) and "permission denied" in items["locked_dir"].reason


def test_permission_denied_simulated(tmp_path, monkeypatch):
    """Same as above but runs as root too (CI containers often are root)."""
    root = _tree(tmp_path)
    real_open, real_scandir = open, os.scandir

    def fake_open(file, *args, **kwargs):
        if str(file).endswith("b.md"):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    def fake_scandir(path):
        if str(path).endswith("中文 目录"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    items = {d.path: d for d in iter_corpus(root)}
    assert items["b.md"] == Skipped("b.md", "permission denied")
    assert items["中文 目录"] == Skipped("中文 目录", "permission denied: cannot list folder")
    assert isinstance(items["a/page.mdx"], Document)


def test_vanished_file_is_skipped(tmp_path):
    res = load_document(tmp_path / "gone.md", tmp_path)
    assert res == Skipped("gone.md", "file vanished before it could be read")


def test_fixtures_dir_loads_cleanly():
    items = list(iter_corpus(FIXTURES))
    assert items and all(isinstance(d, Document) and not d.warnings for d in items)
    for d in items:
        assert_line_map_exact(d, FIXTURES / d.path)


# --------------------------------------------------------------------------- shared corpus


def test_shared_corpus_loads_fully():
    # how fast it loads is measured in bench/ingest.py, not asserted here (a busy machine is slow)
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"{SHARED_CORPUS} not present")
    every = [d for d in iter_corpus(SHARED_CORPUS) if d.path != "README.md"]  # the data set's own notes
    items = [d for d in every if isinstance(d, Document)]
    assert len(items) == 593
    # what is not an article is reported, not dropped silently (the sources' LICENSE files)
    skipped = [d for d in every if isinstance(d, Skipped)]
    assert skipped and all(d.reason.startswith("unsupported file type") for d in skipped), skipped
    gbk = {d.path for d in items if d.encoding == "gb18030"}
    assert gbk == {
        "kubernetes-docs-zh/content/cn/docs/reference/tools.md",
        "kubernetes-docs-zh/content/cn/docs/reference/kubectl/kubectl.md",
    }
    for d in items:
        assert d.title.strip()
        json.dumps(d.meta)
        assert_line_map_exact(d, SHARED_CORPUS / d.path)
    tools = next(d for d in items if d.path.endswith("reference/tools.md"))
    assert tools.title == "工具" and "Kubernetes 包含一些内置工具" in tools.body
