"""What a question asks for, and which sentences look like answers to it.

Sentence choice by shared words alone lets a preface that repeats the article's title
("本篇文章目的：让你更全面了解k8s……") outrank the sentence that answers.  These cues are
the cheap, deterministic part of "answers in meaning": the kind of question (definition,
reason, difference, how-to, relation), the shape of a sentence that answers that kind
("X 是一个……", "因为……", "而……", a command), sections that hold only links, and stubs.
Sentences that never answer (prefaces, "参考 <url>", figure captions) are :mod:`qa.cues`'.
"""

from __future__ import annotations

import re
from typing import Literal

from qa import lexical
from qa.cues import is_meta_sentence

QuestionType = Literal["yesno", "definition", "why", "difference", "how", "relation", "consequence", "when", "name", "list", "fact"]

_TYPE_PATTERNS: list[tuple[QuestionType, re.Pattern[str]]] = [
    ("difference", re.compile(r"区别|不同|差异|差别|对比|比较|异同|优缺点|优劣|相比|\bvs\.?\b|versus|difference", re.I)),
    ("relation", re.compile(r"关系|联系|relationship|related", re.I)),
    ("consequence", re.compile(r"会(?:发生什么|怎样|怎么样|如何|怎么处理|有什么(?:后果|影响|问题))|后果|什么影响|会不会被|会被[^，。？?]{0,8}吗", re.I)),
    ("why", re.compile(r"为什么|为何|为啥|什么原因|原因是|好处|有什么用|意义何在|\bwhy\b", re.I)),
    # "什么时候该用集中式网关？": the answer names the moment or the situation
    ("when", re.compile(r"什么时候|何时|什么情况下?|哪种情况|哪些情况|什么场景|哪些场景|\bwhen\b", re.I)),
    # "默认子网叫什么名字？": the answer gives the name ("默认名为 `ovn-default`")
    ("name", re.compile(r"叫什么|什么名字|名字是什么|名称是什么|叫做什么|称为什么|被称为什么|别称|别名|简称是|又称|全称|原名|本名|绰号|外号|昵称|学名|英文名|中文名|译名|称号|名为什么|命名为什么")),
    ("how", re.compile(
        r"怎么|如何|怎样|命令|步骤|方法|用法|\bhow\b|哪个参数|什么参数|哪个选项|配置|设置|安装|卸载|删除|清理|查看|列出|"
        r"开启|关闭|启用|禁用|回滚|升级|部署|创建|排查|解决",
        re.I,
    )),
    # "API 网关一般会集中做哪些事情？": the answer enumerates ("例如身份验证和授权、限制……")
    ("list", re.compile(r"哪些|哪几|有几种|几种|几类|包括什么|包含什么")),
    ("definition", re.compile(r"是什么|是啥|什么是|指什么|是指|含义|定义|什么意思|何为|是干什么|干什么用|做什么|\bwhat\s+(is|are)\b", re.I)),
]


# "容器有自己的内核吗？" asks yes or no; "Docker 是什么？" does not (a wh-word asks for content).
_YESNO_END_RE = re.compile(r"(?:吗|么|没有|不)\s*[？?]?\s*$")
_WH_RE = re.compile(r"什么|哪|怎么|怎样|如何|为什么|为何|为啥|多少|多久|几|谁|啥|是否|\bwhat\b|\bhow\b|\bwhy\b|\bwhich\b", re.I)


def question_type(question: str) -> QuestionType:
    """The first matching kind, most specific first ("Docker 和虚拟机有什么区别" is a difference,
    not a definition); a question ending in 吗 with no wh-word is ``yesno``, and its answer
    is the sentence that says yes or no; ``fact`` when nothing matches (who/when/how many …)."""
    last = re.split(r"[，,；;]", question.strip())[-1]
    if _YESNO_END_RE.search(last) and not _WH_RE.search(last):
        return "yesno"
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
    return "fact"


# The shape of a sentence that answers each kind of question.
_ANSWER_CUES: dict[QuestionType, re.Pattern[str]] = {
    "definition": re.compile(
        r"是一[个种款套类组]|是指|指的是|就是|即为|称为|叫做|被称为|简称|是用于|是用来|用于|负责|"
        r"(?:是|为)[^，。；]{0,30}(?:工具|系统|平台|引擎|组件|框架|服务|对象|资源|机制|方式|技术|项目|文件|集合|抽象|单元|接口|控制器|程序)"
    ),
    # a limitation is a reason too: "然而 StatefulSet 的一些限制无法……，比如：" answers "为什么不用 StatefulSet 了"
    "why": re.compile(r"因为|由于|为了|所以|因此|原因|目的|好处|以便|使得|从而|导致|避免|解决|保证|确保|统一|方便|限制|局限|缺点|不足"),
    "difference": re.compile(r"而|不同|区别|相比|相较|比[^，。]{0,12}更|不像|差异|反之|然而|但是|却|则|优于|没有自己的|直接运行"),
    "how": re.compile(r"使用|执行|运行|通过|输入|命令|可以用|可用|首先|然后|接着|最后|设置|配置|指定|添加|修改|参数|选项"),
    "relation": re.compile(r"管理|组件|看成|看作|依赖|基于|之上|负责|属于|包含|支持|调度|编排|即"),
    # what happens then: "如果容器超过其内存限制，则可能会被终止"
    "consequence": re.compile(r"则|会|将|就|导致|被|直到|不会|无法|失败"),
    "when": re.compile(r"之前|之后|以前|以后|[前后]执行|时[，,]|时候|场景|情况下|如果|若|当|适用|希望|需要时|一旦|期间|阶段|\d{2,4}\s*年|\d{1,2}\s*月|世纪|年代|朝|时期"),
    "name": re.compile(r"名为|名叫|叫做|称为|称作|命名为|名字|名称|又称|又名|别称|别名|简称|全称|原名|本名|绰号|外号|昵称|学名|英文|中文名|译名|称号|`[^`]+`"),
    "list": re.compile(r"例如|比如|包括|包含|诸如|等|、|分为|有以下|如下|："),
    "fact": re.compile(r"\d|是|为|有"),
    # the sentence that says yes or no: a negation, a "still", a "can/only/no longer"
    "yesno": re.compile(r"不|没有|无法|仍|依然|还|可以|能够|只能|支持|禁止|不再|尚|暂|移除|必须|会被|等同|并非"),
}

# Openers that state the point plainly; they answer any kind of question they share words with.
_SUMMARY_RE = re.compile(r"^(?:说白了|简单来说|简单地说|简而言之|总之|总的来说|总结一下|换句话说|也就是说|一句话|本质上|概括来说)")

REFERENCE_HEADING_RE = re.compile(r"^(?:参考|参考资料|参考文献|参考链接|相关链接|相关阅读|延伸阅读|扩展阅读|引用|references?|see also|further reading)\s*$", re.I)
STUB_WORDS_RE = re.compile(r"(待补充|待完善|待更新|未完待续|敬请期待|\bTODO\b|\bTBD\b|\bWIP\b|coming soon|施工中|写作中)", re.I)
_CONTENT_RE = re.compile(r"[\w\u4e00-\u9fff]")


# Troubleshooting write-ups split a problem into "现象" (what you see: the question restated)
# and "解决方法" / "原因" (the answer); the symptom section shares every word with the question.
SYMPTOM_HEADING_RE = re.compile(r"^(?:现象|问题现象|故障现象|症状|问题描述|报错信息|错误信息|symptoms?)\s*$", re.I)


def is_symptom_section(heading: str) -> bool:
    """A "现象" section under a problem heading: it describes the problem, it never answers it."""
    last = heading.split(" > ")[-1].strip() if heading else ""
    return bool(SYMPTOM_HEADING_RE.match(last))


def is_reference_section(heading: str) -> bool:
    """A "参考资料" / "References" section: its lines are links, never answers."""
    last = heading.split(" > ")[-1].strip() if heading else ""
    return bool(REFERENCE_HEADING_RE.match(last))


def is_stub_text(text: str) -> bool:
    """A passage with nothing written yet: a stub word, perhaps a "参阅 <url>" line, and no
    more than a few words of content (so "TODO: 补充 HPA 的例子" inside a long section is not a stub)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not is_meta_sentence(ln)]
    rest = "".join(lines)
    if not rest.strip():
        return False
    if STUB_WORDS_RE.search(rest):
        return len(_CONTENT_RE.findall(STUB_WORDS_RE.sub("", rest))) <= 12
    return rest.strip() in {"略", "暂无", "无", "..."}


def is_rhetorical(text: str) -> bool:
    """A sentence that asks rather than tells ("怎么用呢？"): articles ask to lead on, not to answer."""
    return text.rstrip().endswith(("？", "?")) or text.rstrip().endswith(("呢。", "吗。"))


# What a how-to answer names: a command or a field in code, a flag.
_COMMAND_RE = re.compile(r"`[^`\n]+`|(?<![\w-])--[a-z][\w-]*|(?<![\w-])-[a-zA-Z]\b")


def answer_cue(kind: QuestionType, text: str) -> float:
    """1.0 when the sentence has the shape of an answer to this kind of question, else 0.0;
    a plain-spoken summary opener ("说白了，……") adds 0.5, except to a why question: a
    summary restates what, a reason says why."""
    s = text.strip()
    cue = 1.0 if _ANSWER_CUES[kind].search(s) else 0.0
    if kind == "how":
        cue = cue * HOW_WORD + (HOW_CODE if _COMMAND_RE.search(s) else 0.0)
    if _SUMMARY_RE.match(s) and kind != "why":
        cue += 0.5
    return cue


# English words a Chinese question may hold that name nothing; everything else Latin is a name.
_PLAIN_EN = frozenset(
    "a an the is are was were be been of to in on at for and or not no with without by from how what why "
    "when where which who whom whose do does did can could should would will shall may might must use used "
    "using vs versus me my i you your it its this that these those there here about into than then".split()
)
HOW_WORD, HOW_CODE = 0.5, 1.0
_VERSION_RE = re.compile(r"v?\d+(?:\.\d+)*[a-z]?")


def named_terms(question: str) -> list[str]:
    """The Latin-script names a question is about (``Velero``, ``k3s``, ``CRI-O``, ``WSL2``),
    folded as :mod:`qa.lexical` indexes them, in the order asked.

    A near-topic question about a product the articles never mention (Velero, Loki, Dapr …)
    shares every other word with them — namespaces, backups, Pods — so retrieval finds
    confident-looking passages; the absent name is what gives it away.  A name is spelled like
    one: a capital letter, a digit or a joiner (``Velero``, ``k3s``, ``cri-o``); all-lowercase
    words ("channel", "consumer lag"), versions and plain English words are not names."""
    out: dict[str, None] = {}
    for m in lexical.TOKEN_RE.finditer(lexical.fold(question)):
        t = m.group()
        if not t[0].isascii() or len(t) < 2 or t in _PLAIN_EN or _VERSION_RE.fullmatch(t):
            continue
        if not any(c.isalpha() for c in t):
            continue
        spelled = as_asked(question, t)
        if spelled == spelled.lower() and not any(c.isdigit() or c in "-._+" for c in spelled):
            continue  # "channel", "consumer lag": words, not names (Velero, Loki, k3s, CRI-O are)
        out[t] = None
    return list(out)


_STEM_VERSION_RE = re.compile(r"([a-z][a-z-]*[a-z])v?\d+")


def mention_forms(term: str) -> list[tuple[str, ...]]:
    """The ways an article may mention ``term``, each a set of index tokens that must all be
    found: the term itself, its alias (k8s → kubernetes), a name without its glued version
    (``helm2`` → ``helm``: articles write "Helm 2"), and a compound's parts (``ip_pool`` is
    indexed as ``ip`` + ``pool`` inside ``ovn.kubernetes.io/ip_pool``)."""
    forms: list[tuple[str, ...]] = [(term,)]
    if term in lexical.ALIASES:
        forms.append((lexical.ALIASES[term],))
    m = _STEM_VERSION_RE.fullmatch(term)
    if m:
        forms.append((m.group(1),))
    parts = tuple(p for p in lexical.PART_RE.findall(term) if len(p) > 1)
    if len(lexical.PART_RE.findall(term)) > 1 and parts:
        forms.append(parts)
    return forms


def as_asked(question: str, term: str) -> str:
    """``term`` as the question spells it (``Velero``, not ``velero``)."""
    m = re.search(re.escape(term), question, re.I)
    return m.group() if m else term
