"""Cues about a sentence's role: is it a preface, a caption or other talk *about* the text?

Such sentences repeat the title's words ("本篇文章目的：让你更全面了解k8s概念……") and so
outrank the sentence that answers when sentences are picked by shared words.  A reader
never wants one as the first sentence of an answer.  ``qa eval`` counts answers that
open with one, and answer composition can demote them.

The classifier is deliberately narrow: a sentence is meta only when it *starts* with a
known preface/closing formula, is a figure caption, a bare reference link, or a
table-of-contents line.  Content that merely mentions a figure ("上图中的 Pod 运行在……")
or a reference ("参考以下步骤配置") is not meta; false positives would hide answers.
"""

from __future__ import annotations

import re

from qa.chunks import split_sentences
from qa.units import whole_sentences

_LEAD = r"^[\s>*_#\-+]*"  # quote marks, emphasis, list bullets before the words

# Prefaces and closings about the article itself.
_PREFACE = re.compile(
    _LEAD
    + r"(?:"
    r"本(?:篇)?(?:文章?|篇|页面?|文档|节|章|教程|指南)(?:的)?(?:目的|主要|将|会|旨在|简要|简单|首先|从|介绍|讲|讲解|描述|阐述|说明|展示|记录|总结|概述|列出|面向)"
    r"|(?:废话|话)不多说"
    r"|(?:下面|接下来|下文|以下)(?:我们|咱们)?(?:就|先|再|一起)?(?:来)?(?:看看|看一下|看一看|看|介绍一下|介绍|讲讲|讲一讲|聊聊)"
    r"|在正式(?:开始|介绍|讲解)"
    # "如果你担心……，那么来看一下 Kube-OVN 是如何……的。": it leads on to what follows
    r"|[^。！？]{0,60}[，,]\s*(?:那么|那就|不妨)(?:我们|就)?(?:一起)?来看(?:一下|看|一看)[^。！？]{0,40}(?:是如何|如何|怎么|怎样)"
    r"|希望(?:我)?(?:的)?(?:这|本)篇"
    r"|目前(?:网上)?(?:发现)?(?:并)?没有.{0,40}的文章"
    r"|(?:如有|若有)(?:错误|不足|疏漏)"
    r"|(?:欢迎|感谢)(?:大家)?(?:阅读|关注|留言|指正|转发)"
    r")"
)

# "参考 <https://...>", "原文：https://...", "参阅 https://..." with nothing else said.
_REFERENCE = re.compile(
    _LEAD + r"(?:参考(?:资料|文章|链接)?|参阅|参见|来源|原文(?:链接|地址)?|出处|转载自|引用自|reference|source)\s*[:：]?\s*"
    r"(?:[<《(（\[]*\s*https?://\S+|\S{1,40}\s+<*https?://\S+)\s*[>》)）\]]*[。.]?\s*$",
    re.I,
)
# "详细说明参见集群故障诊断。", "详请参考 taint & toleration。": a pointer elsewhere, not an answer.
_POINTER = re.compile(
    _LEAD + r"(?:详细|具体|更多)(?:的)?(?:说明|信息|内容|细节|介绍|步骤|用法|配置)?(?:请)?(?:参见|参考|参阅|见|查看)"
    r"|" + _LEAD + r"详(?:情|见|请)(?:参见|参考|参阅|见)?"
    # "（请参阅水平伸缩了解不同的伸缩方法。）", "请参阅 Helm 3.3.2 发布说明了解详情。"
    r"|[（(]\s*(?:请)?(?:参阅|参见|参考|见|详见)[^）)]{0,60}[）)]\s*[。.]?\s*$"
    r"|" + _LEAD + r"(?:请)?(?:参阅|参见|参考)[^。！？]{0,40}(?:以)?(?:了解|获取|查看)[^。！？]{0,30}[。.]?\s*$"
)
_BARE_URL = re.compile(r"^\s*<*https?://\S+>*\s*$")
# A link with only its title ("k8s 和 Docker 关系简单说明 <https://…>"), as in a 参考资料 list.
_TITLED_LINK = re.compile(r"^[^。！？，,；;\n]{1,40}?\s*[:：]?\s*[<《(（\[]*\s*https?://\S+\s*[>》)）\]]*\s*$")

# Figure captions and figure talk.
_CAPTION = re.compile(
    _LEAD
    + r"(?:"
    r"(?:如|见|参见)?(?:上|下)图(?:是|为|所示|展示|显示|中展示|描述|说明|表示|给出)"
    r"|如(?:上|下)?图所示"
    r"|(?:而|另外|同时)?(?:图|figure|fig\.?)\s*\d+(?:[-.]\d+)?\s*(?:[:：.．、]|是|为|展示|显示|说明|$)"
    r"|(?:注意|提示)?[，,：:]?\s*(?:大家)?(?:别|不要)把(?:这|那)?(?:幅|张|个)?图"
    r"|(?:我们)?(?:先|再|接下来|下面)?(?:来)?看(?:两|几|一)张.{0,8}图"
    r")",
    re.I,
)

# Table-of-contents lines: "目录", "* content {:toc}", runs of in-page anchor links.
_TOC = re.compile(
    r"^\s*(?:"
    r"(?:目录|内容目录|文章目录|table of contents|contents|toc)\s*[:：]?\s*$"
    r"|\*\s*content\s*(?:\{:\s*toc\s*\})?\s*$"
    r"|\{:\s*toc\s*\}\s*$"
    r"|(?:[-*+]|\d+[.)])?\s*\[[^\]\n]+\]\(#[^)\n]*\)(?:\s*(?:[-*+|]|\d+[.)])?\s*\[[^\]\n]+\]\(#[^)\n]*\))*\s*$"
    r")",
    re.I,
)

MARKER_RE = re.compile(r"\[\d+\]")


def is_meta_sentence(text: str) -> bool:
    """True when ``text`` talks about the article (preface, closing, reference link,
    figure caption, table of contents) instead of about the subject."""
    s = (text or "").strip()
    if not s:
        return False
    return bool(
        _PREFACE.match(s) or _REFERENCE.match(s) or _POINTER.match(s) or _BARE_URL.match(s) or _TITLED_LINK.match(s)
        or _CAPTION.match(s) or _TOC.match(s)
    )


# A sentence that opens by pointing back ("这意味着……", "为了达到这个目的，……") says half of what
# it means: the sentence before it holds the other half.  Conclusions ("因此……") and reasons
# ("这是因为……") stand alone as answers and are not included.
_REFERS_BACK = re.compile(
    _LEAD
    + r"(?:(?:实际上|事实上|也就是说|换句话说|换言之|但是|然而|不过|同时)[，,]?\s*)?"
    r"(?:这就?意味着|这样一来|为了[^，。！？]{0,24}?(?:这|此|该)(?:个|一|种)?(?:目的|目标|需求))"
)


# "当然有，……" answers the question the article just asked ("有没有更好的解决方案？"): alone it
# answers nothing the reader asked.
_ANSWERS_OWN_QUESTION = re.compile(_LEAD + r"(?:当然|答案是|答案当然是)(?:有|不|没有|可以|不行|是|会|能|不会|不能)?[，,：:]")


def answers_own_question(text: str) -> bool:
    """True when ``text`` opens by answering the question the article asked just before it."""
    return bool(_ANSWERS_OWN_QUESTION.match((text or "").strip()))


def refers_back(text: str) -> bool:
    """True when ``text`` opens by referring to what was said just before it."""
    return bool(_REFERS_BACK.match((text or "").strip()))


_LIST_MARKER = re.compile(r"\d{1,3}[.)]")


def answer_sentences(answer: str) -> list[str]:
    """The sentences of an answer as a reader meets them.

    Citation markers ``[n]`` are removed; a marker also ends the sentence before it (it
    closes a quoted group, which is always whole sentences), then the text is split with
    ``qa.chunks.split_sentences``, the splitter composition itself uses."""
    text = MARKER_RE.sub("\n\n", answer or "")
    out: list[str] = []
    for a, b in whole_sentences(text, split_sentences(text)):
        s = text[a:b].strip()
        if out and _LIST_MARKER.fullmatch(out[-1]):
            out[-1] = f"{out[-1]} {s}"  # "5. 若……" is one sentence to a reader, not "5." and the rest
        elif s:
            out.append(s)
    return out


def first_sentence(answer: str) -> str:
    """The answer's first sentence ('' for an empty answer): what a reader sees first."""
    sents = answer_sentences(answer)
    return sents[0] if sents else ""


# Diagram source (Mermaid, PlantUML) quoted as if it were prose.
_DIAGRAM = re.compile(
    r"(?:^|[\s。：:；;，,\]）)])(?:"
    r"(?:flowchart|graph)\s+(?:TD|TB|BT|LR|RL)\b"
    r"|subgraph\b|sequenceDiagram\b|classDiagram\b|stateDiagram(?:-v2)?\b|erDiagram\b|gitGraph\b"
    r"|@startuml\b|@enduml\b"
    r"|[A-Za-z_][\w-]*(?:\[[^\]\n]*\]|\([^)\n]*\)|\{[^}\n]*\})?\s*-->\|?"
    r")"
)
_FENCE = re.compile(r"(?m)^\s*(?:`{3,}|~{3,})|(?<!`)`{3,}(?!`)")


def has_diagram_source(answer: str) -> bool:
    """Mermaid/PlantUML keywords or edges (``flowchart LR``, ``subgraph``, ``A --> B``)."""
    return bool(_DIAGRAM.search(answer or ""))


def has_lone_fence(answer: str) -> bool:
    """A code fence without its partner (an odd number of ``` / ~~~ runs)."""
    return len(_FENCE.findall(answer or "")) % 2 == 1


_DANGLING = re.compile(r"[：:]\s*(?:\[\d+\]\s*)*$|[：:]\s*\[\d+\]")


def has_dangling_colon(answer: str) -> bool:
    """The answer stops at a colon: a '：' right before a citation marker (its quoted group
    ends there) or at the very end, so what it introduces is missing."""
    return bool(_DANGLING.search(answer or ""))
