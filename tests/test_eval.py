"""`qa eval` metrics: exact values on hand-made rankings, and a real run on a tiny SQuAD file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa.evaluate import Question, answer_hit, load_squad, normalize_answer, passage_hit, ranking_metrics
from tests.conftest import FIXTURES, ROOT, make_settings

pytestmark = [pytest.mark.model]

TINY = FIXTURES / "squad" / "tiny.json"


def test_ranking_metrics_exact():
    relevance = [
        [True, False, False],  # rank 1
        [False, False, True],  # rank 3
        [False] * 4 + [True],  # rank 5
        [False] * 10,  # miss
    ]
    m = ranking_metrics(relevance)
    assert m["hit@1"] == 0.25
    assert m["hit@3"] == 0.5
    assert m["hit@5"] == 0.75
    assert m["hit@10"] == 0.75
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 5) / 4)


def test_answer_normalisation_width_punctuation_script():
    assert normalize_answer("６３００ 公里！") == normalize_answer("6300公里")
    assert normalize_answer("臺灣") == normalize_answer("台湾")
    q = Question("x", "?", ["Guido van Rossum"], "p00000.md")
    assert answer_hit(q, "由 guido van rossum 发布[1]")
    assert not answer_hit(q, "由 Guido 发布")
    assert passage_hit(q, "eval/p00000.md", "Python 由 Guido van Rossum 发布")
    assert not passage_hit(q, "eval/p00001.md", "Python 由 Guido van Rossum 发布")


def test_load_squad_makes_one_article_per_paragraph():
    ds = load_squad(TINY)
    assert len(ds.docs) == 3 and len(ds.questions) == 4
    assert ds.questions[0].doc == "p00000.md" and ds.questions[3].doc == "p00002.md"


def test_qa_eval_cli_on_tiny_set(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(TINY), "--json", "--methods", "hybrid,lexical",
         "--unanswerable", str(FIXTURES / "squad" / "unanswerable.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["questions"] == 4 and set(out["methods"]) == {"hybrid", "lexical"}
    hybrid = out["methods"]["hybrid"]
    for key in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "answer_hit", "answer_chars_mean",
                "latency_ms_p50", "latency_ms_p95", "abstained_unanswerable", "refused_answerable"):
        assert key in hybrid
    assert hybrid["hit@1"] == 1.0 and hybrid["mrr@10"] == 1.0
    assert hybrid["answer_hit"] == 1.0
    assert hybrid["abstained_unanswerable"] == 1.0


def test_traditional_and_simplified_meet(tmp_path):
    from qa.assistant import Assistant
    from qa.ingest import ingest

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "simplified.md").write_text("# 软件发布\n\n我们的软件每个月发布一次新版本，发布前需要通过回归测试。\n", encoding="utf-8")
    (corpus / "traditional.md").write_text("# 記憶體設定\n\n伺服器的記憶體上限設定為 64 GB，超過時會觸發警告。\n", encoding="utf-8")
    (corpus / "other.md").write_text("# 缓存\n\nRedis 缓存的默认过期时间是 30 分钟。\n", encoding="utf-8")
    index = tmp_path / "i"
    ingest(corpus, make_settings(index))
    bot = Assistant.open(index, settings=make_settings(index))
    trad_q = bot.ask("軟體多久發布一次新版本？")  # Traditional question, Simplified article
    assert not trad_q.abstained and trad_q.citations[0].path.endswith("simplified.md")
    simp_q = bot.ask("服务器的内存上限设置为多少？")  # Simplified question, Traditional article
    assert not simp_q.abstained and simp_q.citations[0].path.endswith("traditional.md")
    assert "記憶體" in simp_q.citations[0].text  # shown as written


# --- bad records never cost the run (issue 15, item 9) ------------------------------------

BAD = FIXTURES / "eval-bad"


def test_load_squad_skips_and_counts_unusable_records():
    ds = load_squad(BAD / "squad_bad.json", max_chars=500)
    assert [q.qid for q in ds.questions] == ["ok-1", "ok-2"]
    reasons = sorted(s["reason"] for s in ds.skipped)
    assert reasons == sorted([
        "empty question", "empty question", "question longer than 500 characters",
        "answer not in its context", "duplicate id", "malformed record", "paragraph has no context",
    ])
    assert {s["id"] for s in ds.skipped if s["reason"] == "empty question"} == {"empty-1", "blank-1"}


def test_load_real_skips_and_counts_unusable_lines():
    from qa.evalsets import load_real

    rs = load_real(BAD / "real_bad.jsonl", max_chars=500, roots={"docs": BAD / "corpus"})
    assert [q.qid for q in rs.questions] == ["a1", "a2", "a3", "s1", "u1"]
    by_reason = {}
    for s in rs.skipped:
        by_reason.setdefault(s["reason"].split(":")[0], []).append(s["where"].split(" (")[0])
    assert by_reason == {
        "malformed JSON": ["line 6"], "not a JSON object": ["line 7"], "empty question": ["line 8"],
        "question longer than 500 characters": ["line 9"], "duplicate id": ["line 10"],
        "unknown kind 'maybe'": ["line 11"], "answerable question without a gold span": ["line 12"],
        "gold span not in its file's line range": ["line 13"], "source file not readable": ["line 14"],
    }


def test_unreadable_set_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"data": 3}', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "data" in r.stderr and "Traceback" not in r.stderr


def test_qa_eval_squad_with_bad_records_reports_them(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(BAD / "squad_bad.json"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["questions"] == 2 and out["skipped_count"] == 7
    assert out["skipped_by_reason"]["empty question"] == 2
    assert out["hit@1"] == 1.0
    for key in ("lead_sentence_hit", "answer_hit@80", "meta_first_sentence", "answers_with_diagram_source",
                "answers_with_lone_fence", "answers_with_dangling_colon"):
        assert key in out
    assert out["lead_sentence_hit"] <= out["answer_hit"]  # the first sentence is part of the answer


def test_qa_eval_real_set_over_named_corpora(tmp_path):
    """File + line-range relevance, stub and unanswerable questions, bad lines skipped."""
    keep = tmp_path / "idx"
    cmd = [sys.executable, "-m", "qa.cli", "eval", str(BAD / "real_bad.jsonl"), "--json",
           "--corpus", f"docs={BAD / 'corpus'}"]
    r = subprocess.run(cmd + ["--keep-index", str(keep)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["format"] == "real"
    assert (out["questions"], out["unanswerable_questions"], out["stub_questions"]) == (3, 1, 1)
    assert out["skipped_count"] == 9
    assert out["hit@1"] == 1.0 and out["file_hit@1"] == 1.0  # three distinct topics in two files
    assert out["abstained_unanswerable"] == 1.0
    assert out["stub_section_cited"] == 1.0
    assert 0.0 <= out["stub_status"] <= 1.0
    assert out["lead_sentence_hit"] <= out["answer_hit"]
    assert "per_question" not in out
    # the kept index is asked as is, read-only, with --index (nothing ingested); --corpus
    # then only serves to check the gold spans
    r2 = subprocess.run(cmd + ["--index", str(keep), "--per-question"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    out2 = json.loads(r2.stdout)
    assert out2["index"]["reused"] == str(keep)
    assert out2["hit@1"] == out["hit@1"] and out2["answer_hit"] == out["answer_hit"]
    assert {row["id"] for row in out2["per_question"]} == {"a1", "a2", "a3", "s1", "u1"}


def test_qa_eval_real_set_needs_every_corpus(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(BAD / "real_bad.jsonl"), "--corpus", f"other={BAD / 'corpus'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 1 and "--corpus docs=DIR" in r.stderr.replace("\n", " ")
    r = subprocess.run([sys.executable, "-m", "qa.cli", "eval", str(BAD / "real_bad.jsonl"), "--corpus", "nodir"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "NAME=DIR" in r.stderr


def test_dangling_colon_seen_from_highlights():
    from qa.evaluate import dangling_colon
    from qa.responses import Answer, Citation, IndexInfo, Scores

    text = "Docker 镜像是一个特殊的文件系统，包含：\n\n- 程序\n- 库\n\n镜像不包含动态数据。"
    colon_end = text.index("：") + 1
    def answer(highlights):
        c = Citation(n=1, title="t", path="p.md", heading="h", text=text, start=0, end=len(text), line_start=1,
                     line_end=5, highlights=highlights, scores=Scores(fused=1.0))
        return Answer(question="q", answer="Docker 镜像是一个特殊的文件系统，包含：镜像不包含动态数据。[1]", abstained=False,
                      confidence=0.9, citations=[c], took_ms=1.0, index=IndexInfo(generation="g", model="m"))
    list_start = text.index("- 程序")
    assert dangling_colon(answer([[0, colon_end], [text.index("镜像不"), len(text)]]))  # the list is left out
    assert not dangling_colon(answer([[0, colon_end], [list_start, list_start + 11]]))  # quoted with its list


def test_dangling_colon_sees_past_layout_to_what_is_quoted():
    """A lead-in quoted with its list (the list's spans start after "- ") is complete; one whose
    continuation is not quoted is counted."""
    from types import SimpleNamespace

    from qa.evaluate import dangling_colon

    text = "调度失败的原因可能有两种情况：\n\n* 资源不足。\n* 节点有污点。\n\n接着看日志：\n\n```bash\nkubectl logs x\n```\n"
    lead, item = (0, text.index("\n")), (text.index("资源"), text.index("资源") + 5)
    cite = lambda *spans: SimpleNamespace(text=text, highlights=[list(s) for s in spans])  # noqa: E731
    quoted = SimpleNamespace(answer="调度失败的原因可能有两种情况：资源不足。[1]", citations=[cite(lead, item)])
    assert not dangling_colon(quoted)
    alone = SimpleNamespace(answer="调度失败的原因可能有两种情况。[1]", citations=[cite(lead)])
    assert dangling_colon(alone)
    log = text.index("接着看日志："), text.index("接着看日志：") + 6
    assert dangling_colon(SimpleNamespace(answer="接着看日志。[1]", citations=[cite(log)]))
    code = text.index("kubectl"), text.index("kubectl") + 14
    assert not dangling_colon(SimpleNamespace(answer="接着看日志：`kubectl logs x`[1]", citations=[cite(log, code)]))
