"""bench/data/real-questions.jsonl: every gold span is verbatim in its file within its line
range, stub rows point at a stub section, unanswerable rows really are not in the articles."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT

SET = ROOT / "bench" / "data" / "real-questions.jsonl"
ZHTECH = ROOT.parent / "shared" / "data" / "zh-tech-corpus"
ROOTS = {"seed": ROOT / "corpus", "zhtech": ZHTECH}
ROWS = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
needs_zhtech = pytest.mark.skipif(not ZHTECH.is_dir(), reason="../shared/data/zh-tech-corpus not present")


def _lines(row) -> str:
    text = (ROOTS[row["corpus"]] / row["file"]).read_text(encoding="utf-8")
    a, b = row["lines"]
    return "\n".join(text.splitlines()[a - 1: b])


def test_set_shape():
    kinds = Counter(r["kind"] for r in ROWS)
    assert kinds["answerable"] >= 150 and kinds["unanswerable"] >= 30 and kinds["stub"] >= 10
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    types = Counter(r["type"] for r in ROWS if r["kind"] == "answerable")
    assert set(types) >= {"definition", "howto", "flag", "comparison", "why", "troubleshooting"}
    assert min(types.values()) >= 10
    parts = Counter(r["file"].split("/")[0] if r["corpus"] == "zhtech" else "seed"
                    for r in ROWS if r["kind"] == "answerable")
    assert set(parts) == {"seed", "cncf-glossary", "kubernetes-docs-zh", "helm-www", "kubeovn-docs", "tidb-operator-docs"}
    assert min(parts.values()) >= 10
    for r in ROWS:
        assert r["question"].strip() and len(r["question"]) <= 500


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] != "unanswerable" and r["corpus"] == "seed"], ids=lambda r: r["id"])
def test_seed_rows_point_into_the_seed_article(row):
    _check_source(row)


@needs_zhtech
@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] == "answerable" and r["corpus"] == "zhtech"], ids=lambda r: r["id"])
def test_zhtech_gold_spans_are_verbatim_in_their_line_range(row):
    _check_source(row)


def _check_source(row):
    held = _lines(row)
    if row["kind"] == "answerable":
        assert row["gold"] in held, f"{row['id']}: {row['gold']!r} not in {row['file']}:{row['lines']}"
    else:
        assert "待补充" in held, f"{row['id']}: {row['file']}:{row['lines']} is not a stub section"


@needs_zhtech
def test_unanswerable_terms_occur_in_no_article():
    files = [p for root in ROOTS.values() for p in root.rglob("*") if p.is_file() and p.suffix in (".md", ".mdx", ".markdown", ".txt")]
    texts = [p.read_bytes().decode("utf-8", "replace").lower() for p in files]
    for r in ROWS:
        if r["kind"] != "unanswerable":
            continue
        assert r["absent"], r["id"]
        for term in r["absent"]:
            found = [str(f) for f, t in zip(files, texts) if term.lower() in t]
            assert not found, f"{r['id']}: {term!r} occurs in {found[:3]}"
