"""Knowledge-gap report on a synthetic 10,000-question log: is it fast, does it find the topics?

    .venv/bin/python bench/gaps.py          # ~2-4 min on 2 shared cores

How the log is made (labels are the generating topic of each question):

1. a bench corpus = the test fixture articles (Docker/k8s, Helm, Redis cache, cluster upgrade)
   plus two articles whose sections are stubs ("待补充", "TODO": on-call handbook, cost);
2. distinct question texts from templates: 10 *missing* topics (Prometheus alerting, log
   collection, Jenkins pipelines, TLS renewal, RBAC, MySQL backups, Kafka lag, Istio canary,
   CoreDNS, pending PVCs) and 2 *stub* topics; a topic is one article a writer would add, and its
   questions are 4 phrasings of that need × 8 question frames shared by all topics (so a
   clustering that groups by phrasing instead of subject fails), 24 sampled per topic; plus
   questions the articles answer (same frames over the articles' subjects) and, as unrelated
   noise, the first 100 CMRC 2018 dev questions when ../shared/data is present;
3. every distinct text is asked ONCE through the real Assistant (real model, FAISS, BM25): its
   status, confidence, citations and query vector are the real ones. Embedding 10,000 texts on
   2 shared cores would take long, so the log samples these few hundred texts 10,000 times
   (Zipf-like popularity per text; 50 % missing topics, 10 % stub topics, 30 % answered, 10 %
   noise) over 30 days, with 3 % of answered rows voted down;
4. ``build_report`` runs on it (timed, in-process and as ``qa gaps --json`` in a subprocess),
   and for each missing/stub topic we measure the share of its rows that land in the topic's
   largest group (cohesion) and how much of that group is the topic (purity); a sweep over the
   clustering distance shows how sensitive that is.

Writes bench/results/gaps.json. The machine is shared: timings are noisy.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "gaps.json"
CMRC = ROOT.parent / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.json"
N_ROWS = 10_000
PER_TOPIC = 24
SEED = 18

FRAMES = [
    "{s}怎么配置？", "{s}应该怎么设置？", "如何排查{s}的问题？", "{s}有没有推荐的做法？",
    "我们团队的{s}是怎么做的？", "{s}出错了怎么办？", "哪里有{s}的说明？", "生产环境的{s}要注意什么？",
]
# A topic is one missing article or section: its questions name the same need in different
# words (4 phrasings of the subject) and in different frames (the 8 above, shared by every topic).
MISSING = {
    "prometheus-alerts": ["Prometheus 告警规则", "Prometheus 的告警配置", "Alertmanager 告警", "监控告警规则"],
    "log-collection": ["容器日志收集", "Loki 收集日志", "Fluent Bit 日志采集", "集群的日志采集"],
    "jenkins-pipeline": ["Jenkins 流水线", "Jenkinsfile 流水线", "Jenkins 自动构建", "Jenkins 持续集成"],
    "tls-renewal": ["TLS 证书续期", "HTTPS 证书更新", "cert-manager 自动续期证书", "证书过期后的更换"],
    "rbac": ["RBAC 权限配置", "k8s 的 RBAC 角色绑定", "给用户分配 RBAC 权限", "RoleBinding 权限"],
    "mysql-backup": ["MySQL 数据库备份", "MySQL 定时备份", "MySQL 备份恢复", "数据库的备份策略"],
    "kafka-lag": ["Kafka 消息积压", "Kafka 消费延迟", "Kafka consumer lag", "Kafka 消费者处理不过来"],
    "istio-canary": ["Istio 灰度发布", "Istio 金丝雀发布", "用 Istio 做流量切分", "Istio 按比例分流"],
    "coredns": ["CoreDNS 解析慢", "集群 DNS 解析超时", "CoreDNS 域名解析失败", "Pod 里 DNS 解析不了"],
    "pvc-pending": ["PVC 一直 Pending", "PVC 绑定不上 PV", "持久卷声明 Pending", "PVC 无法绑定存储"],
}
STUB_TOPICS = {
    "stub:oncall": ["值班交接流程", "值班交接", "交接班流程", "值班换班交接"],
    "stub:cost": ["云服务器成本优化", "降低云服务器成本", "云成本优化", "服务器费用优化"],
}
STUB_ARTICLES = {
    "ops/oncall.md": "# 值班手册\n\n## 值班交接流程\n\n待补充\n\n## 故障升级流程\n\nTODO\n\n## 值班表安排\n\n待完善。\n",
    "ops/cost.md": "# 成本优化\n\n## 云服务器成本优化\n\n待补充\n\n## 节点规格选择\n\nTBD\n\n## 闲置资源回收\n\n待补充。\n",
}
ANSWERED = {
    "answered:helm": ["Helm 回滚", "Helm 版本回退", "helm rollback", "Helm 发布回滚"],
    "answered:redis": ["Redis 缓存过期时间", "Redis 缓存 TTL", "缓存过期策略", "Redis 键过期"],
    "answered:docker-k8s": ["k8s 和 Docker 的关系", "Kubernetes 与 Docker 的区别", "Docker 和 k8s 的关系", "k8s 为什么不用 Docker"],
    "answered:upgrade": ["集群升级步骤", "k8s 集群升级", "kubeadm 升级集群", "集群版本升级"],
}


def texts_by_label(rng: random.Random) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label, subjects in {**MISSING, **STUB_TOPICS}.items():
        combos = [f.format(s=s) for s in subjects for f in FRAMES]
        out[label] = rng.sample(combos, PER_TOPIC)
    for label, subjects in ANSWERED.items():
        combos = [f.format(s=s) for s in subjects for f in FRAMES]
        out[label] = rng.sample(combos, 15)
    if CMRC.exists():
        data = json.loads(CMRC.read_text(encoding="utf-8"))["data"]
        qs = [qa["question"] for d in data for p in d["paragraphs"] for qa in p["qas"]]
        out["noise"] = qs[:100]
    return out


def cohesion(labels_of_rows: list[str], groups_of_rows: list[int], topics: list[str]) -> dict:
    by_topic: dict[str, Counter] = defaultdict(Counter)
    group_sizes = Counter(groups_of_rows)
    for lab, g in zip(labels_of_rows, groups_of_rows):
        by_topic[lab][g] += 1
    per = {}
    for t in topics:
        c = by_topic[t]
        if not c:
            continue
        g, n = c.most_common(1)[0]
        per[t] = {"rows": sum(c.values()), "cohesion": round(n / sum(c.values()), 4), "purity": round(n / group_sizes[g], 4), "groups": len(c)}
    rows = sum(p["rows"] for p in per.values())
    return {
        "weighted_cohesion": round(sum(p["cohesion"] * p["rows"] for p in per.values()) / rows, 4),
        "min_cohesion": min(p["cohesion"] for p in per.values()),
        "weighted_purity": round(sum(p["purity"] * p["rows"] for p in per.values()) / rows, 4),
        "min_purity": min(p["purity"] for p in per.values()),
        "per_topic": per,
    }


def screenshot(page: Path, out: Path) -> Path | None:
    """The report's first screen in headless Chromium (README "Knowing what is missing")."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"], headless=True)
        ctx = b.new_context(viewport={"width": 1280, "height": 1500}, locale="en-US")
        p = ctx.new_page()
        p.goto(page.as_uri())
        p.screenshot(path=str(out))
        b.close()
    return out


def main() -> None:
    from qa.assistant import Assistant
    from qa.config import Settings
    from qa.gaps import DISTANCE, build_report, cluster
    from qa.ingest import ingest
    from qa.responses import new_answer_id
    from qa.questionlog import QuestionLog, cached_vector, db_path, record_answer, vector_from

    rng = random.Random(SEED)
    t_start = time.time()
    work = Path(tempfile.mkdtemp(prefix="qa-gaps-bench-"))
    corpus, index = work / "corpus", work / "index"
    shutil.copytree(ROOT / "tests" / "fixtures" / "corpus", corpus)
    for rel, text in STUB_ARTICLES.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text, encoding="utf-8")
    os.chdir(work)  # citations then read corpus/ops/oncall.md, as in a team's checkout
    settings = Settings(index_dir=index)
    assert ingest(Path("corpus"), settings).published

    labelled = texts_by_label(rng)
    bot = Assistant.open(index, settings=settings)
    t0 = time.perf_counter()
    answers = {}
    for label, texts in labelled.items():
        for text in texts:
            a = bot.ask(text)
            answers[text] = (label, a, cached_vector(bot.embedder, a.question))
    ask_s = time.perf_counter() - t0
    print(f"asked {len(answers)} distinct texts in {ask_s:.1f} s", file=sys.stderr)

    # the log: 10,000 rows sampled from those texts
    shares = {"missing": 0.5, "stub": 0.1, "answered": 0.3, "noise": 0.1}
    kind = lambda lab: "stub" if lab.startswith("stub:") else "answered" if lab.startswith("answered:") else "noise" if lab == "noise" else "missing"  # noqa: E731
    pools: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for text, (label, _a, _v) in answers.items():
        pools[kind(label)].append((text, 1.0 / (1 + rng.random() * 9)))  # popularity 0.1..1
    if not pools["noise"]:
        shares["missing"] += shares.pop("noise")
    now = time.time()
    log_path = db_path(settings)  # questions.sqlite in the index folder, where `qa gaps` looks
    ql = QuestionLog(log_path)
    rows, row_labels, down = [], [], []
    for k, share in shares.items():
        texts, weights = zip(*pools[k])
        for text in rng.choices(texts, weights=weights, k=round(N_ROWS * share)):
            label, a, vec = answers[text]
            a2 = a.model_copy(update={"answer_id": new_answer_id()})
            ts = now - rng.random() ** 0.8 * 30 * 86400  # more questions lately
            rows.append(ql._row((ts, a2, rng.choice(["http", "web", "slack", "feishu"]), vec)))
            row_labels.append((a2.answer_id, label))
            if k == "answered" and rng.random() < 0.03:
                down.append((a2.answer_id, f"voter{rng.randrange(50)}", "down", rng.choice([None, "不对", "过时了"]), ts + 60))
    with sqlite3.connect(log_path) as c:
        c.executemany("INSERT INTO questions (answer_id, ts, channel, question, status, confidence, sources, generation, vector) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        c.executemany("INSERT INTO votes VALUES (?,?,?,?,?)", down)
    statuses = Counter(r[4] for r in rows)
    by_label_status = defaultdict(Counter)
    for (aid, lab), r in zip(row_labels, rows):
        by_label_status[kind(lab)][r[4]] += 1

    # what logging adds to a request: record() is all /ask runs (the write happens on another thread)
    sample = [answers[t] for t in list(answers)[:200]]
    hot = QuestionLog(work / "hot-path.sqlite")
    per_call = []
    t_all = time.perf_counter()
    for i in range(5000):
        label, a, vec = sample[i % len(sample)]
        a2 = a.model_copy(update={"answer_id": new_answer_id()})
        t0 = time.perf_counter_ns()
        record_answer(hot, bot, a2, "http")
        per_call.append(time.perf_counter_ns() - t0)
    enqueue_s = time.perf_counter() - t_all
    hot.flush(60)
    written_s = time.perf_counter() - t_all
    per_call.sort()
    hot_path = {"calls": len(per_call), "record_us_p50": round(per_call[len(per_call) // 2] / 1000, 1),
                "record_us_p99": round(per_call[int(len(per_call) * 0.99)] / 1000, 1),
                "rows_written": hot.written, "dropped": hot.dropped,
                "writer_rows_per_s": round(hot.written / written_s), "enqueue_s": round(enqueue_s, 3)}
    hot.close()
    print(f"record(): p50 {hot_path['record_us_p50']} µs, p99 {hot_path['record_us_p99']} µs", file=sys.stderr)

    # the report, in-process
    reader = bot.reader
    t0, c0 = time.perf_counter(), time.process_time()
    report = build_report(ql, 31 * 86400, reader=reader, settings=settings, top=40)
    report_s, report_cpu = time.perf_counter() - t0, time.process_time() - c0
    # and as the command a writer runs (a fresh process: imports, index open, report, JSON)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QA_INDEX_DIR": str(index)}
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "gaps", "--since", "31d", "--json", "--html", str(work / "gaps.html")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    cli_s = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    assert proc.returncode == 0, proc.stderr[-2000:]

    # quality: cluster labels per row, recomputed exactly as build_report does (on distinct texts)
    db = sqlite3.connect(log_path)
    qrows = db.execute("SELECT answer_id, question, vector FROM questions").fetchall()
    label_of = dict(row_labels)
    distinct = sorted({q for _, q, _ in qrows})
    vec_of = {q: vector_from(v) for _, q, v in qrows}
    count_of = Counter(q for _, q, _ in qrows)
    mat = np.stack([vec_of[q] for q in distinct])
    weights = np.array([count_of[q] for q in distinct], dtype=float)
    topics = list(MISSING) + list(STUB_TOPICS)
    sweep = {}
    for d in (0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20):
        t0 = time.perf_counter()
        labels = cluster(mat, weights, d)
        ms = (time.perf_counter() - t0) * 1000
        g_of = dict(zip(distinct, labels))
        res = cohesion([label_of[a] for a, _, _ in qrows], [int(g_of[q]) for _, q, _ in qrows], topics)
        sweep[f"{d:.2f}"] = {k: v for k, v in res.items() if k != "per_topic"} | {"groups": int(len(set(labels))), "cluster_ms": round(ms, 1)}
        if abs(d - DISTANCE) < 1e-9:
            chosen = res
    # how the report's top groups read
    top_groups = [
        {"name": g.name, "count": g.count, "statuses": g.statuses, "verdict": g.verdict,
         "nearest": f"{Path(g.nearest.path).name}:{g.nearest.line_start}" if g.nearest else None,
         "labels": dict(Counter(label_of[a] for a, q, _ in qrows if q in set(g.examples)).most_common(2))}
        for g in report.groups[:14]
    ]
    out = {
        "what": "qa gaps on a synthetic log of 10,000 questions (bench/gaps.py docstring says how it is made)",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "shared": True,
                    "note": "2 cores shared with other developers: timings are noisy"},
        "log": {"rows": len(rows), "distinct_texts": len(answers), "votes_down": len(down), "statuses": dict(statuses),
                "status_by_kind": {k: dict(v) for k, v in by_label_status.items()},
                "topics_missing": len(MISSING), "topics_stub": len(STUB_TOPICS), "noise_from_cmrc": "noise" in labelled},
        "hot_path": hot_path,
        "seconds": {"ask_distinct_texts": round(ask_s, 1), "build_report": round(report_s, 2), "build_report_cpu": round(report_cpu, 2),
                    "qa_gaps_cli": round(cli_s, 2), "qa_gaps_cli_cpu": round(cli_cpu, 2),
                    "loadavg_1m_at_end": round(os.getloadavg()[0], 1)},
        "target": {"qa_gaps_s": 10.0, "cohesion": 0.8},
        "distance": DISTANCE,
        "quality": chosen,
        "distance_sweep": sweep,
        "report": {"groups_total": report.groups_total, "down_voted": len(report.down_voted), "stubs": len(report.stubs),
                   "timeline_days": len(report.timeline), "top_groups": top_groups},
        "total_bench_s": round(time.time() - t_start, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    shot = screenshot(work / "gaps.html", ROOT / "bench" / "results" / "screenshots" / "gaps-report.png")
    if shot:
        print(f"screenshot: {shot}", file=sys.stderr)
    print(json.dumps({k: out[k] for k in ("seconds", "distance", "hot_path")} | {"quality": {k: v for k, v in chosen.items() if k != "per_topic"}}, ensure_ascii=False, indent=2))
    ql.close()
    if os.environ.get("QA_KEEP_BENCH"):
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
