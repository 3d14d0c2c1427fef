"""Build bench/data/support-pairs.jsonl: labelled (sentence, passage) pairs for verification.

    PYTHONPATH=$PWD python bench/make_support_pairs.py [--per-kind 40] [--out bench/data/support-pairs.jsonl]

Deterministic (seeded). Sources: CMRC 2018 dev and DRCD dev contexts (../shared/data) and
passages of the zh-tech corpus chunked by our own chunker. How each kind is made is described
in bench/data/README-support.md; in short, *supported* sentences are extracts, clause-trimmed
extracts, lightly reworded extracts, Simplified renderings of Traditional passages and
question+answer rewritten as a statement, and clauses of two passage sentences joined;
*unsupported* ones are same-topic sentences from
other passages, statements with a wrong answer substituted, changed numbers, added or removed
negations, swapped identifiers, and a passage clause joined with another passage's clause.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa import lexical  # noqa: E402
from qa.chunks import split_sentences  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CMRC = SHARED / "cmrc2018" / "cmrc2018_dev.json"
DRCD = SHARED / "drcd" / "DRCD_dev.json"
ZHTECH = SHARED / "zh-tech-corpus"

WH = re.compile(r"(哪一?[个位种年座家部款支条所国省市名天月日]+|什么[^\s，。？]{0,2}?(?=[，。？是]|$)|什么|谁|多少[个年次种人]?|几[个年次种]|哪里|何时|何地|哪儿|何人)")
REWORD = [("但是", "不过"), ("因此", "所以"), ("以及", "和"), ("并且", "而且"), ("被称为", "称为"),
          ("目前", "现在"), ("非常", "很"), ("已经", "已"), ("可以", "能够"), ("例如", "比如"),
          ("通过", "借助"), ("包括", "包含"), ("所有的", "全部的"), ("之后", "以后"), ("如果", "假如")]
NEGATE = [("不是", "是"), ("没有", "有"), ("不能", "能"), ("不会", "会"), ("无法", "可以"), ("不需要", "需要"),
          ("可以", "不可以"), ("需要", "不需要"), ("支持", "不支持"), ("会", "不会"), ("能", "不能"),
          ("有", "没有"), ("是", "不是")]


def sentences(text: str, lo: int = 14, hi: int = 150) -> list[str]:
    out = []
    for a, b in split_sentences(text):
        s = text[a:b].strip()
        if lo <= len(s) <= hi and len(re.findall(f"[{lexical.CJK}]", s)) >= 8 and not s.startswith(("```", "|", "#")):
            out.append(s)
    return out


def coverage(sentence: str, passage: str) -> float:
    toks = lexical.tokens(sentence)
    ptoks = set(lexical.tokens(passage))
    return sum(t in ptoks for t in toks) / max(1, len(toks))


def trimmed(s: str, rng: random.Random) -> str | None:
    clauses = [c for c in re.split(r"(?<=[，,；;])", s.rstrip("。！？!?")) if c]
    if len(clauses) < 2:
        return None
    i = rng.randrange(len(clauses))
    j = min(len(clauses), i + rng.randint(1, max(1, len(clauses) - 1)))
    out = "".join(clauses[i:j]).rstrip("，,；;")
    if len(out) < 10 or out == s.rstrip("。"):
        return None
    return out + "。"


def reworded(s: str, rng: random.Random) -> str | None:
    opts = [(a, b) for a, b in REWORD if a in s]
    if not opts:
        return None
    out = s
    for a, b in rng.sample(opts, min(2, len(opts))):
        out = out.replace(a, b, 1)
    return out


def statement(q: str, answer: str) -> str | None:
    """'X是由哪两个公司开发的？' + '光荣和ω-force' -> 'X是由光荣和ω-force开发的。'"""
    q = q.strip().rstrip("？?")
    ms = list(WH.finditer(q))
    if len(ms) != 1 or not answer or len(answer) > 40:
        return None
    m = ms[0]
    out = q[: m.start()] + answer + q[m.end():]
    out = re.sub(r"(呢|吗|么)$", "", out)
    return out + "。" if len(out) >= 10 else None


def change_number(s: str, rng: random.Random) -> str | None:
    nums = list(re.finditer(r"\d+", s))
    if not nums:
        return None
    m = rng.choice(nums)
    n = int(m.group())
    new = n + rng.randint(1, 9) if n < 1000 or rng.random() < 0.5 else n + rng.choice([-10, 10, 100])
    return s[: m.start()] + str(max(0, new) if max(0, new) != n else n + 1) + s[m.end():]


def flip_negation(s: str, rng: random.Random) -> str | None:
    for a, b in NEGATE:
        if a in s:
            i = s.index(a)
            return s[:i] + b + s[i + len(a):]
    return None


def swap_identifier(s: str, passage: str, pool: list[str], rng: random.Random) -> str | None:
    ids = [m for m in re.finditer(r"[A-Za-z][A-Za-z0-9_.\-]{2,}", s)]
    if not ids:
        return None
    m = rng.choice(ids)
    choices = [w for w in pool if w.lower() not in passage.lower() and w.lower() != m.group().lower()]
    if not choices:
        return None
    return s[: m.start()] + rng.choice(choices) + s[m.end():]


def pid(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:12]


def squad_rows(path: Path, source: str, rng: random.Random, per_kind: int) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paras = [(a["title"], p) for a in data for p in a["paragraphs"] if 150 <= len(p["context"]) <= 900]
    rng.shuffle(paras)
    answers = [qa["answers"][0]["text"] for _, p in paras for qa in p["qas"] if qa["answers"]]
    by_title: dict[str, list[str]] = {}
    for t, p in paras:
        by_title.setdefault(t, []).append(p["context"])
    rows: list[dict] = []
    counts: dict[str, int] = {}

    def add(kind: str, label: str, sentence: str | None, passage: str) -> None:
        if not sentence or counts.get(kind, 0) >= per_kind:
            return
        counts[kind] = counts.get(kind, 0) + 1
        rows.append({"id": pid(source, kind, sentence, passage[:50]), "source": source, "kind": kind,
                     "label": label, "sentence": sentence, "passage": passage})

    conv = None
    if source == "drcd":
        import opencc

        conv = opencc.OpenCC("t2s")
    for title, p in paras:
        ctx = p["context"]
        sents = sentences(ctx)
        if not sents:
            continue
        s = rng.choice(sents)
        add("extract", "supported", s, ctx)
        add("trimmed", "supported", trimmed(rng.choice(sents), rng), ctx)
        add("reworded", "supported", reworded(rng.choice(sents), rng), ctx)
        if conv is not None:
            add("simplified", "supported", conv.convert(rng.choice(sents)), ctx)
        qas = [qa for qa in p["qas"] if qa["answers"]]
        rng.shuffle(qas)
        for qa in qas[:2]:
            ans = qa["answers"][0]["text"]
            st = statement(qa["question"], ans)
            if st and ans in ctx:
                add("qa_statement", "supported", st, ctx)
                kind_digit = bool(re.search(r"\d", ans))
                wrong = [w for w in answers if w != ans and w not in ctx and bool(re.search(r"\d", w)) == kind_digit
                         and abs(len(w) - len(ans)) <= 4]
                if wrong:
                    add("wrong_answer", "unsupported", statement(qa["question"], rng.choice(wrong)), ctx)
                break
        num_s = [x for x in sents if re.search(r"\d", x)]
        if num_s:
            add("number_changed", "unsupported", change_number(rng.choice(num_s), rng), ctx)
        add("negation_flipped", "unsupported", flip_negation(rng.choice(sents), rng), ctx)
        others = [c for c in by_title.get(title, []) if c != ctx]
        if others:
            cands = [x for x in sentences(rng.choice(others)) if coverage(x, ctx) < 0.9]
            if cands:
                add("other_passage_same_article", "unsupported", rng.choice(cands), ctx)
    return rows


def zhtech_rows(rng: random.Random, per_kind: int) -> list[dict]:
    from qa.chunks import chunk_document
    from qa.documents import Document, iter_corpus

    chunks: list[tuple[str, str]] = []  # (topic folder, passage)
    for doc in iter_corpus(ZHTECH):
        if not isinstance(doc, Document):
            continue
        topic = Path(doc.path).parts[0] if Path(doc.path).parts else ""
        for c in chunk_document(doc):
            if len(c.text) >= 200 and "```" not in c.text and "|" not in c.text and len(sentences(c.text)) >= 2:
                chunks.append((topic, c.text))
    rng.shuffle(chunks)
    idents = sorted({m for _, t in chunks for m in re.findall(r"\b[A-Za-z][A-Za-z0-9_.\-]{3,}\b", t)})
    rng.shuffle(idents)
    idents = idents[:400]
    rows: list[dict] = []
    counts: dict[str, int] = {}

    def add(kind: str, label: str, sentence: str | None, passage: str) -> None:
        if not sentence or counts.get(kind, 0) >= per_kind:
            return
        counts[kind] = counts.get(kind, 0) + 1
        rows.append({"id": pid("zhtech", kind, sentence, passage[:50]), "source": "zh-tech", "kind": kind,
                     "label": label, "sentence": sentence, "passage": passage})

    by_topic: dict[str, list[str]] = {}
    for topic, t in chunks:
        by_topic.setdefault(topic, []).append(t)
    for topic, text in chunks:
        sents = sentences(text)
        add("extract", "supported", rng.choice(sents), text)
        add("trimmed", "supported", trimmed(rng.choice(sents), rng), text)
        add("reworded", "supported", reworded(rng.choice(sents), rng), text)
        add("negation_flipped", "unsupported", flip_negation(rng.choice(sents), rng), text)
        num_s = [x for x in sents if re.search(r"\d", x)]
        if num_s:
            add("number_changed", "unsupported", change_number(rng.choice(num_s), rng), text)
        add("identifier_swapped", "unsupported", swap_identifier(rng.choice(sents), text, idents, rng), text)
        other = rng.choice(by_topic[topic])
        if other != text:
            cands = [x for x in sentences(other) if coverage(x, text) < 0.9]
            if cands:
                add("other_passage_same_topic", "unsupported", rng.choice(cands), text)
    return rows


def merged_rows(rows: list[dict], rng: random.Random, per_kind: int) -> list[dict]:
    """Answers often join clauses of two sentences: ``merged`` = the first clause of one passage
    sentence + the last clause of a later one (supported); ``merged_foreign`` = a clause of the
    passage + a clause of a sentence from another passage of the same source (half supported,
    so unsupported)."""
    out: list[dict] = []
    by_source: dict[str, list[str]] = {}
    for r in rows:
        by_source.setdefault(r["source"], [])
        if r["passage"] not in by_source[r["source"]]:
            by_source[r["source"]].append(r["passage"])

    def first(x: str) -> str:
        return re.split(r"[，,；;]", x.rstrip("。！？!?"))[0]

    def last(x: str) -> str:
        return re.split(r"[，,；;]", x.rstrip("。！？!?"))[-1]

    for source, passages in sorted(by_source.items()):
        n_m = n_f = 0
        for p in passages:
            ss = sentences(p)
            if len(ss) >= 3 and n_m < per_kind:
                a, b = sorted(rng.sample(range(len(ss)), 2))
                s = first(ss[a]) + "，" + last(ss[b]) + "。"
                if len(s) >= 14 and first(ss[a]) != last(ss[b]):
                    n_m += 1
                    out.append({"id": pid(source, "merged", s, p[:50]), "source": source, "kind": "merged",
                                "label": "supported", "sentence": s, "passage": p})
            if len(ss) >= 1 and n_f < per_kind:
                other = rng.choice(passages)
                os_ = [x for x in sentences(other) if coverage(x, p) < 0.6] if other != p else []
                if os_:
                    s = first(rng.choice(ss)) + "，" + last(rng.choice(os_)) + "。"
                    n_f += 1
                    out.append({"id": pid(source, "merged_foreign", s, p[:50]), "source": source,
                                "kind": "merged_foreign", "label": "unsupported", "sentence": s, "passage": p})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-kind", type=int, default=25, help="pairs per kind and source")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / "support-pairs.jsonl")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for path, name in ((CMRC, "cmrc"), (DRCD, "drcd")):
        if path.exists():
            rows += squad_rows(path, name, rng, args.per_kind)
    if ZHTECH.exists():
        rows += zhtech_rows(rng, args.per_kind)
    rows += merged_rows(rows, random.Random(args.seed + 1), args.per_kind)  # own generator: rows above unchanged
    seen = set()
    uniq = []
    for r in rows:
        if r["id"] not in seen and r["sentence"].strip() and r["sentence"] != r["passage"]:
            seen.add(r["id"])
            uniq.append(r)
    for r in uniq:  # a fixed half to fit on, the other to report on
        r["split"] = "fit" if int(r["id"], 16) % 2 == 0 else "test"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for r in uniq:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    from collections import Counter

    c = Counter((r["source"], r["kind"], r["label"]) for r in uniq)
    for k, v in sorted(c.items()):
        print(*k, v, sep="\t")
    print(f"{len(uniq)} pairs -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
