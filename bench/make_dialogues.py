"""Write bench/data/dialogues.jsonl: the multi-turn dev set scored by ``qa eval-dialogues``.

Two parts, both checked against the files (every span must occur verbatim in its gold file; its
line range is where it occurs):

* glossary dialogues over ../shared/data/zh-tech-corpus/cncf-glossary: every term there has the
  sections 是什么 / 解决的问题 / 如何帮助, so a dialogue asks what a term is, then follows up
  ("它解决了什么问题？", "有什么好处？", "那 X 呢？", "它和 Y 有什么区别？") and sometimes changes the
  subject, with or without saying so.  Phrasings are drawn from pools with a fixed seed;
* hand-written dialogues over Helm, Kubernetes, Kube-OVN and TiDB Operator docs and the seed
  article in corpus/.

Each turn: q, kind (first | pronoun | ellipsis | short | comparison | shift | standalone),
followup (does it depend on earlier turns?), corpus (zh-tech-corpus | corpus), file (relative to
that corpus), lines [a, b] (1-based, where the span is), span (verbatim); a comparison turn
also has alt_files (the other article of the comparison answers it too).

    python bench/make_dialogues.py            # rewrites bench/data/dialogues.jsonl
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT.parent / "shared" / "data" / "zh-tech-corpus"
GLOSSARY = "cncf-glossary/content/zh-cn"
OUT = ROOT / "bench" / "data" / "dialogues.jsonl"

# term file → the name people would type
TERMS = {
    "container-image": "容器镜像", "container": "容器", "container-orchestration": "容器编排",
    "containerization": "容器化", "kubernetes": "Kubernetes", "service-mesh": "服务网格",
    "service-discovery": "服务发现", "service-proxy": "服务代理", "microservices": "微服务",
    "monolithic-apps": "单体应用", "blue-green-deployment": "蓝绿部署", "canary-deployment": "金丝雀部署",
    "chaos-engineering": "混沌工程", "continuous-integration": "持续集成", "continuous-delivery": "持续交付",
    "continuous-deployment": "持续部署", "devops": "DevOps", "horizontal-scaling": "水平伸缩",
    "vertical-scaling": "垂直伸缩", "load-balancer": "负载均衡器", "api-gateway": "API 网关",
    "virtual-machine": "虚拟机", "virtualization": "虚拟化", "bare-metal-machine": "裸机",
    "edge-computing": "边缘计算", "serverless": "无服务器", "infrastructure-as-code": "基础设施即代码",
    "policy-as-code": "策略即代码", "observability": "可观测性", "site-reliability-engineering": "SRE",
    "stateful-apps": "有状态应用", "stateless-apps": "无状态应用", "multitenancy": "多租户",
    "zero-trust-architecture": "零信任架构", "mutual-transport-layer-security": "mTLS",
    "transport-layer-security": "TLS", "event-driven-architecture": "事件驱动架构", "shift-left": "左移",
    "version-control": "版本控制", "cloud-computing": "云计算", "data-center": "数据中心",
    "distributed-systems": "分布式系统", "nodes": "节点", "cluster": "集群", "firewall": "防火墙",
    "platform-as-a-service": "PaaS", "infrastructure-as-a-service": "IaaS", "managed-services": "托管服务",
    "debugging": "调试", "security-chaos-engineering": "安全混沌工程", "cloud-native-security": "云原生安全",
    "agile-software-development": "敏捷软件开发", "database-as-a-service": "数据库即服务",
}
PAIRS = [  # comparisons asked as follow-ups: (topic, other)
    ("horizontal-scaling", "vertical-scaling"), ("vertical-scaling", "horizontal-scaling"),
    ("blue-green-deployment", "canary-deployment"), ("canary-deployment", "blue-green-deployment"),
    ("container", "virtual-machine"), ("microservices", "monolithic-apps"), ("monolithic-apps", "microservices"),
    ("stateful-apps", "stateless-apps"), ("stateless-apps", "stateful-apps"), ("continuous-delivery", "continuous-integration"),
    ("continuous-deployment", "continuous-delivery"), ("mutual-transport-layer-security", "transport-layer-security"),
    ("virtual-machine", "bare-metal-machine"), ("security-chaos-engineering", "chaos-engineering"),
]

WHAT = ["什么是{t}？", "{t}是什么？", "请介绍一下{t}", "{t}指的是什么？", "{t}是什么意思？"]
PROBLEM = ["它解决了什么问题？", "它主要解决哪些问题？", "为什么需要它？", "它要解决的痛点是什么？",
           "没有它的时候会遇到什么问题？", "这个概念解决了什么问题？", "那它解决什么问题呢？", "解决了什么问题？",
           "它为什么会出现？"]
HELP = ["它有什么帮助？", "它是如何帮助我们的？", "它能带来哪些好处？", "它具体怎么起作用？", "这对我们有什么帮助？",
        "那它怎么帮到团队？", "有什么好处？", "该方法如何提供帮助？", "它有什么用？", "怎么帮助的？"]
ELLIPSIS = ["那{u}呢？", "{u}呢？", "那么{u}呢？", "那{u}呢"]
SHIFT = ["换个问题，{u}是什么？", "换个话题，什么是{u}？", "另外一个问题：{u}指的是什么？", "换个问题，介绍一下{u}"]
STANDALONE = ["{u}是什么意思？", "请介绍一下{u}", "什么是{u}？", "{u}是什么？"]
COMPARE = ["它和{u}有什么区别？", "它跟{u}比有什么不同？", "和{u}相比呢？", "它与{u}的区别是什么？"]


def _front_matter_end(lines: list[str]) -> int:
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                return i + 1
    return 0


def sections(path: Path) -> dict[str, tuple[int, str]]:
    """heading → (1-based line, first sentence of its text) for a glossary file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: dict[str, tuple[int, str]] = {}
    cur = None
    for i, line in enumerate(lines[_front_matter_end(lines):], start=_front_matter_end(lines) + 1):
        if line.startswith("## "):
            cur = line[3:].strip()
            continue
        if cur and cur not in out and line.strip() and not line.startswith(("<", "!", "{")):
            sent = re.split(r"[。！？]", line.strip())[0]
            sent = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", sent)  # a markdown link: its words are the span
            span = sent if len(sent) <= 40 else sent[:30]
            if span in line:
                out[cur] = (i, span)
    return out


def turn(q: str, kind: str, followup: bool, corpus: str, file: str, span: str) -> dict:
    root = ZH if corpus == "zh-tech-corpus" else ROOT / "corpus"
    lines = (root / file).read_text(encoding="utf-8").splitlines()
    hit = [i + 1 for i, ln in enumerate(lines) if span in ln]
    if not hit:
        raise SystemExit(f"span {span!r} not found in {file}")
    if kind == "pronoun" and not re.search("[它这那该其此]", q):
        kind = "short"  # "有什么好处？": no pronoun, no topic word
    return {"q": q, "kind": kind, "followup": followup, "corpus": corpus, "file": file,
            "lines": [hit[0], hit[0]], "span": span}


def glossary_dialogues(rng: random.Random) -> list[dict]:
    secs = {k: sections(ZH / GLOSSARY / f"{k}.md") for k in TERMS}
    usable = [k for k in TERMS if {"是什么", "解决的问题", "如何帮助"} <= set(secs[k])]
    f = lambda k: f"{GLOSSARY}/{k}.md"  # noqa: E731
    g = lambda k, s: secs[k][s][1]  # noqa: E731
    out = []
    order = usable[:]
    rng.shuffle(order)
    for i, k in enumerate(order):
        t, other = TERMS[k], order[(i + 7) % len(order)]
        u = TERMS[other]
        shape = i % 5
        turns = [turn(rng.choice(WHAT).format(t=t), "first", False, "zh-tech-corpus", f(k), g(k, "是什么"))]
        if shape == 0:  # what → problem (pronoun) → help
            turns.append(turn(rng.choice(PROBLEM), "pronoun", True, "zh-tech-corpus", f(k), g(k, "解决的问题")))
            turns.append(turn(rng.choice(HELP), "pronoun", True, "zh-tech-corpus", f(k), g(k, "如何帮助")))
        elif shape == 1:  # what → 那 X 呢 → help about X
            turns.append(turn(rng.choice(ELLIPSIS).format(u=u), "ellipsis", True, "zh-tech-corpus", f(other), g(other, "是什么")))
            turns.append(turn(rng.choice(HELP), "pronoun", True, "zh-tech-corpus", f(other), g(other, "如何帮助")))
        elif shape == 2:  # what → help → explicit shift → problem of the new topic
            turns.append(turn(rng.choice(HELP), "pronoun", True, "zh-tech-corpus", f(k), g(k, "如何帮助")))
            turns.append(turn(rng.choice(SHIFT).format(u=u), "shift", False, "zh-tech-corpus", f(other), g(other, "是什么")))
            turns.append(turn(rng.choice(PROBLEM), "pronoun", True, "zh-tech-corpus", f(other), g(other, "解决的问题")))
        elif shape == 3:  # what → problem → a new standalone question (no marker)
            turns.append(turn(rng.choice(PROBLEM), "pronoun", True, "zh-tech-corpus", f(k), g(k, "解决的问题")))
            turns.append(turn(rng.choice(STANDALONE).format(u=u), "standalone", False, "zh-tech-corpus", f(other), g(other, "是什么")))
        else:  # what → short follow-ups with no topic word
            turns.append(turn(rng.choice(["有什么好处？", "有啥好处？", "能带来什么帮助？", "好处是什么？"]), "short", True,
                              "zh-tech-corpus", f(k), g(k, "如何帮助")))
            turns.append(turn(rng.choice(["解决什么问题？", "为什么需要？", "解决了哪些问题？"]), "short", True,
                              "zh-tech-corpus", f(k), g(k, "解决的问题")))
        out.append({"id": f"glossary-{i + 1:02d}", "turns": turns})
    for j, (k, other) in enumerate(PAIRS):
        if k not in usable:
            continue
        path = ZH / f(k)
        name = TERMS[other]
        line = next((ln for ln in path.read_text(encoding="utf-8").splitlines() if name in ln and not ln.startswith(("title", "-", "#"))), None)
        if line is None:
            continue
        window = re.split(r"[。！？]", line[line.index(name) - min(line.index(name), 12):])[0][:40]
        # the longest piece without Markdown link syntax, so the answer text can contain it
        pieces = [p.strip() for p in re.split(r"[\[\]()（）]", window) if re.search(r"[\u4e00-\u9fff]{4}", p) and "/" not in p]
        if not pieces:
            continue
        span = max(pieces, key=len)
        compare = turn(rng.choice(COMPARE).format(u=name), "comparison", True, "zh-tech-corpus", f(k), span)
        compare["alt_files"] = [f(other)]  # a comparison is answered by either article
        turns = [turn(rng.choice(WHAT).format(t=TERMS[k]), "first", False, "zh-tech-corpus", f(k), g(k, "是什么")), compare]
        out.append({"id": f"compare-{j + 1:02d}", "turns": turns})
    return out


HELM = "helm-www/i18n/zh/docusaurus-plugin-content-docs/version-3"
K8S = "kubernetes-docs-zh/content/cn/docs/concepts/workloads"
SEED = "2024-06-11-docker-k8s-relationship.md"
HAND = [
    ("helm-release", [
        ("Helm 里的 Release 是什么？", "first", False, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "是运行在 Kubernetes 集群中的 chart 的实例"),
        ("那 Repository 呢？", "ellipsis", True, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "是用来存放和共享 charts 的地方"),
        ("怎么列出已经配置的仓库？", "short", True, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "使用 `helm repo list` 来查看配置的仓库"),
    ]),
    ("helm-upgrade", [
        ("怎么用 helm upgrade 升级 release？", "first", False, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "Helm 会尝试执行最小侵入式升级"),
        ("失败了怎么回滚？", "short", True, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "'helm rollback'"),
        ("换个问题，怎么卸载一个 release？", "shift", False, "zh-tech-corpus", f"{HELM}/intro/using_helm.md", "命令从集群中卸载一个 release"),
    ]),
    ("helm-hooks", [
        ("Helm 的 chart 钩子是做什么的？", "first", False, "zh-tech-corpus", f"{HELM}/topics/charts_hooks.md", "允许 chart 开发者在 release 生命周期的特定节点进行干预"),
        ("它的删除策略怎么定义？", "pronoun", True, "zh-tech-corpus", f"{HELM}/topics/charts_hooks.md", "钩子删除策略使用以下注解定义"),
    ]),
    ("helm-library", [
        ("什么是库 chart？", "first", False, "zh-tech-corpus", f"{HELM}/topics/library_charts.md", "用于定义可供其他 chart 中的 Helm 模板共享的 chart 原语或定义"),
        ("它是在哪个版本引入的？", "pronoun", True, "zh-tech-corpus", f"{HELM}/topics/library_charts.md", "库 chart 在 Helm 3 中引入"),
        ("那 chart 钩子呢？", "ellipsis", True, "zh-tech-corpus", f"{HELM}/topics/charts_hooks.md", "Helm 提供了钩子（hook）机制"),
    ]),
    ("k8s-daemonset", [
        ("什么是 DaemonSet？", "first", False, "zh-tech-corpus", f"{K8S}/controllers/daemonset.md", "确保全部（或者某些）节点上运行一个 Pod 的副本"),
        ("它有哪些典型用法？", "pronoun", True, "zh-tech-corpus", f"{K8S}/controllers/daemonset.md", "在每个节点上运行日志收集 daemon"),
        ("怎么更新它？", "pronoun", True, "zh-tech-corpus", f"{K8S}/controllers/daemonset.md", "DaemonSet 将立刻向新匹配上的节点添加 Pod"),
        ("还有什么可替代的选择？", "short", True, "zh-tech-corpus", f"{K8S}/controllers/daemonset.md", "DaemonSet 的可替代选择"),
    ]),
    ("k8s-cronjob", [
        ("Cron Job 是什么？", "first", False, "zh-tech-corpus", f"{K8S}/controllers/cron-jobs.md", "管理基于时间的"),
        ("它类似于什么？", "pronoun", True, "zh-tech-corpus", f"{K8S}/controllers/cron-jobs.md", "文件中的一行"),
        ("那 Init 容器呢？", "ellipsis", True, "zh-tech-corpus", f"{K8S}/pods/init-containers.md", "它是一种专用的容器，在应用容器启动之前运行"),
    ]),
    ("kubeovn-arch", [
        ("Kube-OVN 的总体架构是怎样的？", "first", False, "zh-tech-corpus", "kubeovn-docs/docs/reference/architecture.md", "作为 Kubernetes 和 OVN 之间的一个桥梁"),
        ("它的组件分为哪几类？", "pronoun", True, "zh-tech-corpus", "kubeovn-docs/docs/reference/architecture.md", "的组件可以大致分为三类"),
    ]),
    ("tidb-backup", [
        ("TiDB Operator 备份与恢复用哪些工具？", "first", False, "zh-tech-corpus", "tidb-operator-docs/zh/backup-restore-overview.md", "备份与恢复中所使用的工具有"),
        ("其中 Dumpling 是做什么的？", "pronoun", True, "zh-tech-corpus", "tidb-operator-docs/zh/backup-restore-overview.md", "是一个数据导出工具"),
        ("那 BR 呢？", "ellipsis", True, "zh-tech-corpus", "tidb-operator-docs/zh/backup-restore-overview.md", "是 TiDB 分布式备份恢复的命令行工具"),
    ]),
    ("seed-docker", [
        ("k8s 和 Docker 是什么关系？", "first", False, "corpus", SEED, "我们用kubernetes去管理Docker集群"),
        ("从虚拟化角度看它们有什么不同？", "pronoun", True, "corpus", SEED, "传统的虚拟技术在将物理硬件虚拟成多套硬件"),
        ("基础镜像是什么？", "standalone", False, "corpus", SEED, "这就是所谓的基础镜像(Base Image)"),
    ]),
    ("seed-env", [
        ("为什么需要 Docker 容器？", "first", False, "corpus", SEED, "需要针对每个环境单独写一套部署脚本"),
        ("这里说的环境指什么？", "pronoun", True, "corpus", SEED, "这些被程序所依赖的信息，我们统称为"),
    ]),
]


def main() -> None:
    rng = random.Random(14)
    dialogues = glossary_dialogues(rng)
    for name, turns in HAND:
        dialogues.append({"id": name, "turns": [turn(*t) for t in turns]})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for d in dialogues:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    n_turns = sum(len(d["turns"]) for d in dialogues)
    n_follow = sum(t["followup"] for d in dialogues for t in d["turns"])
    print(f"{len(dialogues)} dialogues, {n_turns} turns, {n_follow} follow-ups → {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
