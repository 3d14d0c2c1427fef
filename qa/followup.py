"""Follow-up questions without an LLM: does a question lean on earlier turns, and what to search then.

After "什么是容器镜像？" the message "它解决了什么问题？" cannot be searched as is: "它" matches
nothing.  Tools that handle this rewrite the follow-up with an LLM, invisibly and differently each
time.  Here the decision and the rewrite are a few explicit rules, so the same conversation is
always searched the same way and the user is shown what was searched:

1. a question *depends* on earlier turns only when it has a reason to: a pronoun or demonstrative
   with nothing it could refer to earlier in the same message (它/它们/这个/那个/其/该/此…), an
   elliptical opener or tail (那……呢, 还有呢, 为什么, 然后呢), a reference to the conversation
   (上面说的, 刚才), or it is short and names no topic at all ("怎么安装？", "默认端口是多少？");
2. only then is the retrieval query built from the question plus the *topic* of the earlier turn
   it continues: the topic words of the earlier (resolved) question and the title and heading of
   the passage it was answered from.  "那 Helm 呢？" swaps the new topic into the earlier question;
3. a question that names its own topic is never rewritten, and an explicit topic shift
   ("换个问题，Helm 是什么？") starts fresh: its marker is dropped and no earlier turn is used.

Everything here is pure (no index, no model, no I/O) so it is tested on many phrasings
(tests/test_followup.py) and measured on dialogues (``qa eval-dialogues``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qa import lexical

# Words that say *what about* a topic, never which topic: actions, attributes and aspects.  A
# question made only of these (and question phrasing) has no topic of its own.
GENERIC = frozenset(
    """
    安装 卸载 部署 配置 设置 使用 用法 作用 用途 用处 功能 区别 不同 差异 异同 关系 联系 对比 比较 相比
    问题 解决 解决办法 办法 方法 方式 步骤 流程 过程 原理 机制 原因 理由 目的 意思 含义 意义 定义 概念
    优点 缺点 优势 劣势 好处 坏处 缺陷 特点 特性 特征 场景 例子 示例 举例 比如 例如 案例 限制 要求 前提 条件
    注意 注意事项 事项 默认 默认值 取值 值 参数 选项 字段 端口 版本 日志 命令 文件 目录 路径 格式 类型 种类
    删除 创建 新建 更新 升级 降级 回滚 修改 更改 变更 启动 停止 重启 查看 检查 查询 获取 排查
    开启 关闭 启用 禁用 打开 实现 支持 需要 必须 应该 可以 能够 包括 包含 提供 帮助 影响 适合 适用 推荐
    具体 详细 详细信息 更多 其他 其它 另外 别的 还有 然后 接下来 一般 通常 主要 常见 常用 哪些 怎么样 为什么 为何 如何 怎样
    失败 成功 列出 典型 分为 几类 类似 带来 遇到 引入 替代 可替代 选择 出现 角度 定义 用到 做到 起到 意味
    工作 运行 处理 管理 组成 构成 结构 架构 组件 部分 内容 信息 情况 时候 时间 多久 多少 多大 一下 说说
    介绍 解释 说明 讲讲 展开 区分 理解 知道 告诉 了解 意味着 代表 表示 指 叫 称为 属于 算 有没有 是不是 能不能
    好 坏 快 慢 多 少 大 小 高 低 新 旧 对 错 呢 吗 吧 啊 呀 么 的 了 和 与 及 或 是 有 在 用 要 会 能 把 被
    这 那 它 它们 其 该 此 个 种 些 样 什么 哪 哪个 哪里 谁 啥 上面 前面 刚才 刚刚 之前 上述 以上
    """.split()
)

# An explicit change of subject: the rest of the message is a new, standalone question.
TOPIC_SHIFT = re.compile(
    r"^\s*(?:换个(?:问题|话题)|另一个问题|另外一个问题|新问题|再问一个(?:问题)?|问个别的|说点别的|"
    r"顺便问一下|另外问一下|by the way|btw|new question)\s*[，,:：。.!！;；、]*\s*",
    re.IGNORECASE,
)

# Pronouns and demonstratives, with the words that merely contain the character excluded.
_PRONOUNS = [
    ("它们", re.compile(r"它们")),
    ("它", re.compile(r"(?<!其)它(?!们)")),
    ("这个", re.compile(r"这个")),
    ("那个", re.compile(r"那个")),
    ("这些", re.compile(r"这些")),
    ("那些", re.compile(r"那些")),
    ("这种", re.compile(r"这种|这类|这样的")),
    ("那种", re.compile(r"那种|那类")),
    ("两者", re.compile(r"两者|二者|这两个|这两种|两个的|它俩")),
    ("其", re.compile(r"(?<![尤极及与])其(?![他它中实余次后间一])")),
    ("该", re.compile(r"(?<![应活本])该(?![怎如不用是选])")),
    ("此", re.compile(r"(?<![因如彼从由为在至据就对])此(?![外时后前刻])")),
    ("这", re.compile(r"这(?=是|有|里|儿|么|样(?!的)|$|[？?])")),
]
# A single character that joins the topic words next to it (可+观测+性, 云+原生, 零+信任): not these.
STOP_CHARS = frozenset("的了和与及或是有在用要会能把被吗呢吧啊呀么什怎哪谁啥它这那其该此个种些样就都也还又再很太最更对从向给让指叫称为看说讲问于年月日几多少"
                       "好坏快慢大小高低新旧对错前后上下里外中内")
# "X 是什么？" / "什么是 X？" names its own subject even when X is a word we call generic (调试, 日志).
_DEFINITION = re.compile(r"^(?:请?介绍一下|什么是|何为|解释一下)\s*(\S.*?)\s*[？?]?$|^(\S.*?)\s*(?:是什么|指的是什么|是什么意思|是啥|的定义是什么|是指什么)\s*[？?]?$")
_CLAUSE = re.compile(r"[，,;；。：:!！?？]")
# Openers and tails that continue the previous turn: "那……呢", "还有呢", "为什么".
_ELLIPSIS = [
    ("上面说的", re.compile(r"上面|上述|^以上|前面(?:说|提|讲)|刚才|刚刚|你(?:说|提到)的|之前(?:说|提)")),
    ("那……呢", re.compile(r"^(?:那|那么)\s*(.*?)\s*呢\s*[？?]?\s*$")),
    ("还有呢", re.compile(r"^(?:还有|然后|接下来|之后|再然后|另外|除此之外|除此以外)(?:呢|吗|什么|哪些|别的|其他的?)?\s*[？?]?\s*$")),
    ("还有……", re.compile(r"^(?:还有|另外还有|除了这些|除此之外)(?:什么|哪些|没有|别的|其他|，|,|\s)")),
    ("其中", re.compile(r"^(?:其中|这其中|里面|这里面)")),
    ("为什么", re.compile(r"^(?:为什么|为啥|为何|怎么回事|why)\s*(?:呢|啊|呀)?\s*[？?]?\s*$", re.IGNORECASE)),
    ("那……", re.compile(r"^(?:那|那么|那就|所以|然后)\s*(?:怎么|如何|要|能|可以|会|应该|该|是不是|有没有|需要|还|又|为什么|为啥)")),
    ("举例", re.compile(r"^(?:举个例子|举例|比如呢|例如呢|具体(?:呢|点|说说|讲讲|一点)|详细(?:点|说说|讲讲|一点|介绍)|展开(?:说说|讲讲)|再(?:详细|具体)|能(?:再)?详细)")),
    ("……呢", re.compile(r"^(?!.*(?:什么|怎么|如何|哪|为什么|吗))(.{1,20}?)\s*呢\s*[？?]?\s*$")),
]
SHORT_CHARS = 14  # a question this short that names no topic continues the conversation
MAX_TOPIC_CHARS = 40
# Generic words that still belong to a name when they directly follow one: 蓝绿 + 部署, 微服务 + 架构.
ATTACH = frozenset("部署 架构 管理 组件 服务 配置".split())
_COMPARE = re.compile(r"^(?:和|跟|与|同|比|相比|对比|相对于|比起)|相比|比较|区别|不同")


@dataclass
class Turn:
    """What resolution needs to know about one earlier turn."""

    question: str
    searched: str | None = None  # what was actually searched, when it differed
    titles: list[str] = field(default_factory=list)  # title (and heading) of the passages answered from
    answered: bool = True
    resolved: str | None = None  # the question with its reference filled in (no title added)

    @property
    def query(self) -> str:
        """The question as understood: its topic words are what a later follow-up continues."""
        return self.resolved or self.question


@dataclass
class Resolution:
    """The decision for one question: what to search and why (shown to the user)."""

    question: str
    searched: str  # the text retrieval runs on (== question when not rewritten)
    reason: str | None = None  # why it counts as a follow-up ("pronoun 它", "ellipsis 那……呢", …)
    topic: str | None = None  # the earlier topic that was added
    fresh: bool = False  # an explicit topic shift: earlier turns are not used
    resolved: str | None = None  # the question with its reference filled in, in the user's words

    @property
    def rewritten(self) -> bool:
        """True when earlier turns changed the search (a topic-shift marker alone does not count)."""
        return self.topic is not None


def _words(text: str) -> list[str]:
    """Words in order: jieba for Chinese runs, whole Latin identifiers (folded)."""
    if lexical._JIEBA is None:
        lexical.warm()
    jieba = lexical._JIEBA[0]
    folded = lexical.fold(text)
    # show words as the user wrote them ("Helm", not "helm") when folding kept positions
    same = len(folded) == len(text)
    out: list[str] = []
    for m in lexical.TOKEN_RE.finditer(folded):
        t = m.group()
        if not t[0].isascii():
            out.extend(jieba.lcut(t, HMM=False))
        else:
            out.append(text[m.start():m.end()] if same else t)
    return out


def _is_topic_word(w: str) -> bool:
    if not w or w.lower() in GENERIC:
        return False
    if w[0].isascii():
        return len(w) >= 2 or w.isdigit()
    if lexical.is_question_word(w) or any(c in "它这那其该此" for c in w):
        return False
    if len(w) == 1:  # single characters are rarely a topic on their own (池, 网 are, but mostly 用, 装…)
        return False
    jieba, tfidf = lexical._JIEBA
    return tfidf.idf_freq.get(w, tfidf.median_idf) >= lexical.MIN_TERM_IDF


def topic_words(text: str) -> list[str]:
    """The words of ``text`` that name what it is about (not how or what aspect of it), and
    names jieba does not know (runs of single characters, see ``_spans``)."""
    words = [w for w in _words(text) if _is_topic_word(w)]
    return words + [s for s in _spans(text) if not any(w in s for w in words)]


def topic_phrase(text: str) -> str:
    """The topic of a question as it reads: contiguous topic words joined, spans space-separated.

    "什么是容器镜像？" → "容器镜像"; "Helm 怎么安装？" → "Helm"; "水平伸缩和垂直伸缩的区别" →
    "水平伸缩 垂直伸缩"."""
    return " ".join(_spans(text))[:MAX_TOPIC_CHARS].strip()


def _own_topic_before(question: str, pos: int) -> bool:
    """A topic named in an earlier clause of the same message ("Pod 是什么，它有什么用？").

    Only an earlier *clause* counts: in "从虚拟化角度看它们有什么不同？" the pronoun still points
    back to the conversation."""
    before = question[:pos]
    cut = max((m.start() for m in _CLAUSE.finditer(before)), default=-1)
    return cut > 0 and bool(topic_words(before[:cut]))


_ONE_CHAR = frozenset({"其", "该", "此", "这", "它"})
_APPOSITIVE = frozenset({"这个", "那个", "这种", "那种", "这些", "那些"})


def _word_starts(text: str) -> set[int]:
    """Offsets where a word begins (jieba over Chinese runs), in ``text``'s own positions."""
    if lexical._JIEBA is None:
        lexical.warm()
    jieba = lexical._JIEBA[0]
    starts: set[int] = set()
    for m in re.finditer(r"[\u3400-\u9fff]+", text):
        pos = m.start()
        for w in jieba.lcut(m.group(), HMM=False):
            starts.add(pos)
            pos += len(w)
    return starts


def _starts_word(text: str, pos: int) -> bool:
    return pos in _word_starts(text)


def _after_topic(text: str, pos: int) -> bool:
    """A topic word ends right before ``pos`` (quotes and spaces aside), in the same clause."""
    before = re.sub(r"[\s“”\"'‘’「」《》]+$", "", text[:pos])
    cut = max((m.end() for m in _CLAUSE.finditer(before)), default=0)
    clause = before[cut:]
    spans = _spans(clause)
    return bool(spans) and re.sub(r"[\s“”\"'‘’「」《》]", "", clause).endswith(spans[-1].replace(" ", ""))


def dependence(question: str) -> str | None:
    """Why ``question`` depends on earlier turns, or None when it stands alone."""
    q = question.strip()
    for name, rx in _ELLIPSIS:
        m = rx.search(q)
        if m:
            if name == "……呢" and topic_words(m.group(1)) and len(m.group(1)) > 12:
                continue  # "Kubernetes 里 Pod 和容器的关系呢" is a whole question, merely ending in 呢
            return {"上面说的": "reference 上面说的", "还有……": "ellipsis 还有呢", "其中": "reference 其中"}.get(name, f"ellipsis {name}")
    for name, rx in _PRONOUNS:
        for m in rx.finditer(q):
            if name in _ONE_CHAR and not _starts_word(q, m.start()):
                continue  # 马其顿, 土耳其: the character is inside a name
            if name in _APPOSITIVE and _after_topic(q, m.start()):
                continue  # "“胜任力”这个词": an appositive, not a reference to earlier turns
            if not _own_topic_before(q, m.start()):
                return f"pronoun {name}"
    m = _DEFINITION.match(q)
    if m and (m.group(1) or m.group(2) or "").strip():
        return None  # "调试是什么意思？" asks about its own subject
    if len(re.sub(r"\s+", "", q)) <= SHORT_CHARS and not topic_words(q):
        return "short, no topic"
    return None


def topic_spans(text: str) -> list[str]:
    """``topic_phrase`` as its separate spans, first (usually the subject) first."""
    return [p for p in topic_phrase(text).split(" ") if p] if text else []


def earlier_topic(history: list[Turn], depth: int = 3) -> tuple[Turn, list[str], str] | None:
    """(turn, topic spans, title) of the latest earlier turn that had a topic, ``depth`` turns back."""
    for turn in reversed(history[-depth:]):
        spans = _spans(turn.query)
        title = next((t for t in turn.titles if t), "") if turn.answered else ""
        if spans or title:
            return turn, spans, title
    return None


def _spans(text: str) -> list[str]:
    """Topic spans as written: "Kube-OVN 子网" stays two spans, "TiDB Operator" one."""
    spans: list[str] = []
    cur: list[str] = []
    words = _words(text) + [""]
    for i, w in enumerate(words):
        # a single character joins the topic words next to it, or another such character: a
        # name jieba does not know comes out as single characters (王处直墓 → 王/处/直/墓)
        nxt = words[i + 1] if i + 1 < len(words) else ""
        joins = _joins(w) and (cur or _is_topic_word(nxt) or _joins(nxt))
        if w and (_is_topic_word(w) or (cur and w in ATTACH and cur[-1] != w) or joins):
            cur.append(w)
            continue
        if cur and all(len(x) == 1 for x in cur) and ("".join(cur) in GENERIC or len(cur) < 2):
            cur = []  # 回/滚: a generic word jieba did not know, not a name
        if cur:
            out = cur[0]
            for x in cur[1:]:
                out += (" " if out[-1].isascii() or x[0].isascii() else "") + x
            spans.append(out)
            cur = []
    return list(dict.fromkeys(spans))


def _joins(w: str) -> bool:
    """A one-character word that belongs to the name around it (可观测性, 云原生, 多租户, 微服务)."""
    return len(w) == 1 and not w.isascii() and w not in STOP_CHARS and not lexical.is_question_word(w)


def _subject(question: str, spans: list[str]) -> str | None:
    """What the earlier question was about: in "Helm 里的 Release 是什么？" the thing defined
    (Release), otherwise the first topic ("Redis 缓存默认多久过期？" → Redis 缓存)."""
    if not spans:
        return None
    m = _DEFINITION.match(question.strip())
    if m:
        defined = _spans(m.group(1) or m.group(2) or "")
        if defined and defined[-1] in spans:
            return defined[-1]
    return spans[0]


def _referent(spans: list[str], subject: str) -> str:
    """What "它" stands for: the earlier subject, after the earlier question's first topic when
    that differs ("Helm 里的 Release 是什么？" → "Helm Release"): the first topic keeps the search in
    the same area even when the subject is a part of it ("Redis 缓存的第一个要点是什么？")."""
    first = spans[0] if spans else ""
    return f"{first} {subject}" if first and subject and first != subject else (subject or first)


def _swap_topic(previous: str, old: str, new: str) -> str:
    """The earlier question with its subject replaced: ("什么是容器镜像？", "容器镜像", "Pod") → "什么是Pod？"."""
    folded, target = lexical.fold(previous), lexical.fold(old)
    at = folded.find(target)
    if at >= 0 and len(folded) == len(previous):  # NFKC kept positions: edit the original text
        return re.sub(r"\s{2,}", " ", previous[:at] + new + previous[at + len(old):]).strip()
    return f"{new} {previous}"


def _related(title: str, topic: str) -> bool:
    """The title shares a bigram or identifier with the topic: the earlier answer was on topic.

    A title from an answer that missed (the topic is Kubernetes, the passage came from 容器编排)
    would pull the follow-up to the wrong article, so it is only added when they agree."""
    a, b = set(lexical.tokens(title)), set(lexical.tokens(topic))
    return bool(a & b)


def resolve(question: str, history: list[Turn] | None = None) -> Resolution:
    """What to search for ``question`` given the earlier turns (oldest first)."""
    q = question.strip()
    if not history:  # a first question is searched exactly as asked
        return Resolution(question, q)
    shift = TOPIC_SHIFT.match(q)
    if shift and q[shift.end():].strip():
        rest = q[shift.end():].strip()
        return Resolution(question, rest, reason="topic shift", fresh=True, resolved=rest)
    reason = dependence(q)
    if reason is None:
        return Resolution(question, q)
    found = earlier_topic(history)
    if found is None:
        return Resolution(question, q, reason=reason)
    turn, spans, title = found
    topic = " ".join(spans) if spans else title
    subject = _subject(turn.query, spans) or title
    previous = turn.query

    resolved = None
    if reason in ("ellipsis 那……呢", "ellipsis ……呢"):
        m = re.search(r"^(?:那|那么)?\s*(.*?)\s*呢\s*[？?]?\s*$", q)
        new = (m.group(1) if m else "").strip()
        if new and topic_words(new) and not _COMPARE.search(new):
            # "那 Helm 呢？": the earlier question, asked about the new subject (no old title added)
            resolved = _swap_topic(previous, subject, new) if spans else f"{new} {previous}"
            return Resolution(question, resolved, reason=reason, topic=new, resolved=resolved)
    if reason in ("ellipsis 还有呢", "ellipsis 为什么", "ellipsis 举例"):
        # "why?"/"more?" are about the previous question itself, not only its topic
        resolved = f"{previous} {q}"
    elif re.search(r"它们|它(?!们)", q):
        resolved = re.sub(r"它们", "和".join(spans) or topic, q, count=1) if "它们" in q else re.sub(r"(?<!其)它(?!们)", _referent(spans, subject), q, count=1)
    else:
        resolved = f"{topic} {q}"
    searched = resolved
    if title and _related(title, topic) and not set(topic_words(title)) <= set(topic_words(resolved)):
        searched = f"{resolved} {title}"  # the article it was answered from keeps the search on it
    return Resolution(question, searched.strip(), reason=reason, topic=topic, resolved=resolved.strip())


__all__ = ["Turn", "Resolution", "resolve", "dependence", "topic_phrase", "topic_spans", "topic_words", "GENERIC"]
