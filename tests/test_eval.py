"""`qa eval` metrics: exact values on hand-made rankings, and a real run on a tiny SQuAD file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qa.evaluate import Question, answer_hit, load_squad, normalize_answer, passage_hit, ranking_metrics
from tests.conftest import FIXTURES, ROOT, make_settings

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
