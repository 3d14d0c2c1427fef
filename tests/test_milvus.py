"""QA_VECTOR_STORE=milvus against a real Milvus protocol peer (milvus-lite): ingest publishes a
generation, questions are answered from Milvus alone, keywords are found, generations switch
through an alias, a crashed publish leaves the served alias alone, and a collection without
analyzer or BM25 function is refused."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT, free_port, make_settings
from tests.milvus_peer import MilvusLiteServer, milvus_env, milvus_settings, needs_milvus

pytestmark = [pytest.mark.server]  # milvus-lite servers on 127.0.0.1

QA = [sys.executable, "-m", "qa.cli"]


# ---- the lexical encoding (no Milvus needed) ---------------------------------------------------
def corpus_tokens() -> list[str]:
    from qa import lexical

    toks: list[str] = []
    for f in sorted((FIXTURES / "corpus").rglob("*.md")):
        toks += lexical.tokens(f.read_text(encoding="utf-8"))
    return toks


def test_encoded_tokens_survive_word_tokenisers_exactly():
    from qa.vectors import lexcodec

    toks = corpus_tokens() + ["kube-proxy", "1.28", "c++", "c#", "k8s.io:443/x", "z_z", "apt-get", "容器", "器"]
    assert {"kubectl", "helm", "1.28.4"} <= set(toks)  # the fixture corpus holds what we test for
    text = lexcodec.document(toks)
    encoded = [lexcodec.encode(t) for t in toks]
    # milvus-lite's standard analyzer (\w+, lower case), a whitespace tokenizer, and ASCII word runs
    # (what Unicode word segmentation makes of letters and digits): all give back exactly our tokens
    assert re.findall(r"\w+", text.lower()) == encoded
    assert text.split() == encoded
    assert re.findall(r"[a-z0-9]+", text) == encoded
    assert [lexcodec.decode(e) for e in encoded] == toks
    # different tokens never share an encoded term
    distinct = set(toks)
    assert len({lexcodec.encode(t) for t in distinct}) == len(distinct)


def test_encoding_holds_for_random_mixed_text():
    """Whatever qa.lexical makes of odd text (full-width, Traditional, symbols, emoji), the encoded
    form splits back into exactly its tokens and no two tokens collide."""
    import random

    from qa import lexical
    from qa.vectors import lexcodec

    rng = random.Random(16)
    alphabet = "abcxyz019_.-+#/:：，。 容器镜像軟體快取ＡＢ１２Ⅻ😀é\t"
    seen: dict[str, str] = {}
    for _ in range(300):
        toks = lexical.tokens("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
        encoded = [lexcodec.encode(t) for t in toks]
        assert re.findall(r"\w+", lexcodec.document(toks)) == encoded
        for t, e in zip(toks, encoded):
            assert re.fullmatch(r"[a-z0-9]+", e) and lexcodec.decode(e) == t
            assert seen.setdefault(e, t) == t


@needs_milvus
def test_milvus_lite_analyzer_sees_our_tokens():
    from milvus_lite.analyzer.factory import create_analyzer

    from qa.vectors import lexcodec

    toks = corpus_tokens()
    assert create_analyzer({"tokenizer": "standard"}).tokenize(lexcodec.document(toks)) == [
        lexcodec.encode(t) for t in toks
    ]


# ---- embedded .db --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("milvus-corpus")
    shutil.copytree(FIXTURES / "corpus", dest, dirs_exist_ok=True)
    return dest


@needs_milvus
@pytest.mark.model
def test_embedded_db_ingest_then_answer_from_milvus_alone(tmp_path, corpus):
    from qa.assistant import Assistant
    from qa.ingest import ingest

    settings = milvus_settings(tmp_path / "index", str(tmp_path / "milvus.db"))
    report = ingest(corpus, settings)
    assert report.published and report.vector_store["published"]
    assert report.vector_store["rows"] == report.chunks_total
    # the server side needs no index files: an empty index folder and the URI
    replica = settings.model_copy(update={"index_dir": tmp_path / "nothing-here"})
    bot = Assistant.open(settings=replica)
    assert bot.reader.generation == "gen-000001" and bot.reader.n_chunks == report.chunks_total
    ans = bot.ask("Helm 怎么回滚一个 Release？")
    assert ans.status == "answered" and "helm" in ans.citations[0].path.lower()
    assert "rollback" in ans.answer
    assert not (tmp_path / "nothing-here").exists()


# ---- the gRPC server, as Milvus Standalone would be reached -------------------------------------
@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    from qa.vectors.milvus import forget_clients

    srv = MilvusLiteServer(tmp_path_factory.mktemp("milvus") / "data", free_port()).start()
    yield srv
    forget_clients()
    srv.stop()


@pytest.fixture(scope="module")
def published(tmp_path_factory, corpus, milvus):
    """The fixture corpus ingested into a local generation and published to the gRPC server."""
    from qa.ingest import ingest

    work = tmp_path_factory.mktemp("published")
    shutil.copytree(corpus, work / "corpus")
    settings = milvus_settings(work / "index", milvus.uri, alias="grpc_qa")
    report = ingest(work / "corpus", settings)
    assert report.vector_store["published"]
    return work, settings


def keyword_hits(reader, word: str) -> list:
    from qa import lexical

    ids = [cid for cid, _ in reader.lexical(lexical.query_tokens(word), 10)]
    return list(reader.chunks(ids).values())


@needs_milvus
@pytest.mark.parametrize("word", ["kubectl", "Helm", "1.28", "控制面", "包管理"])
def test_keywords_are_found_lexically_in_milvus(published, word):
    from qa import lexical
    from qa.vectors.factory import open_index

    _, settings = published
    rows = keyword_hits(open_index(settings), word)
    assert rows, f"no keyword hit for {word}"
    assert lexical.fold(word) in lexical.fold(rows[0].title + rows[0].heading + rows[0].text)


@needs_milvus
def test_milvus_answers_like_faiss(published):
    """Same passages, same client-side fusion and window re-scoring: the same citations."""
    from qa.assistant import Assistant

    work, settings = published
    faiss_bot = Assistant.open(work / "index", settings=make_settings(work / "index"))
    milvus_bot = Assistant.open(settings=settings.model_copy(update={"index_dir": work / "empty"}))
    for q in ["kubectl 怎么查看日志？", "Helm 是什么？", "集群升级到 1.28 做了什么？", "k8s 和 Docker 是什么关系？"]:
        a, b = faiss_bot.ask(q), milvus_bot.ask(q)
        assert b.status == a.status
        assert [c.path for c in b.citations][:1] == [c.path for c in a.citations][:1]
        assert b.answer == a.answer


@needs_milvus
def test_milvus_finds_stubs_and_missing_names_like_faiss(published):
    """The stub list and the "no article mentions X" lookup go through the store protocol."""
    from qa.assistant import Assistant
    from qa.vectors.factory import open_index

    work, settings = published
    faiss_bot = Assistant.open(work / "index", settings=make_settings(work / "index"))
    milvus_bot = Assistant.open(settings=settings.model_copy(update={"index_dir": work / "empty"}))
    stubs = open_index(settings).stub_ids()
    assert stubs and stubs == faiss_bot.reader.stub_ids()
    for q in ["Dockerfile 是什么？", "Velero 怎么备份 Helm release？"]:
        a, b = faiss_bot.ask(q), milvus_bot.ask(q)
        assert (b.status, b.unmentioned) == (a.status, a.unmentioned)
        # the same section is cited (its number may differ: the two stores' BM25 rank alike, not equally)
        cited = lambda ans: [c.heading for c in ans.citations if f"[{c.n}]" in ans.answer]  # noqa: E731
        assert cited(b) == cited(a)
    assert milvus_bot.ask("Velero 怎么备份 Helm release？").unmentioned == ["Velero"]


@needs_milvus
def test_collection_filter_is_pushed_into_the_search(tmp_path, milvus):
    from qa.embeddings import get_embedder
    from qa.ingest import ingest
    from qa.vectors.factory import open_index

    settings = milvus_settings(tmp_path / "index", milvus.uri, alias="filter_qa")
    ops = ingest(FIXTURES / "corpus" / "ops", settings, collection="ops")
    ingest(FIXTURES / "corpus", settings, collection="all")
    r = open_index(settings)
    assert r.n_chunks > ops.chunks_total
    q = get_embedder(r.model, settings).encode_query("kubectl")
    only_ops = r.dense(q, 50, collection="ops")
    # every passage of the collection, and only those (not the survivors of an over-fetch)
    assert len(only_ops) == ops.chunks_total
    assert {row.collection for row in r.chunks([i for i, _ in only_ops]).values()} == {"ops"}
    lex = r.lexical(["kubectl"], 50, collection="ops")
    assert lex and {row.collection for row in r.chunks([i for i, _ in lex]).values()} == {"ops"}
    assert r.lexical(["kubectl"], 50, collection="nope") == [] and r.dense(q, 5, collection="nope") == []


@needs_milvus
def test_incremental_reingest_moves_the_alias_and_an_unchanged_one_writes_nothing(tmp_path, milvus):
    from qa.ingest import ingest
    from qa.vectors.factory import open_index
    from qa.vectors.milvus import client_for

    shutil.copytree(FIXTURES / "corpus", tmp_path / "corpus")
    settings = milvus_settings(tmp_path / "index", milvus.uri, alias="incr_qa")
    first = ingest(tmp_path / "corpus", settings)
    old = open_index(settings)
    again = ingest(tmp_path / "corpus", settings)
    assert not again.published and again.vector_store["published"] is False
    assert open_index(settings).name == old.name

    f = tmp_path / "corpus" / "ops" / "helm-basics.md"
    f.write_text(f.read_text(encoding="utf-8") + "\n\n## 卸载\n\n卸载一个 Release 使用 helm uninstall 命令。\n", encoding="utf-8")
    third = ingest(tmp_path / "corpus", settings)
    assert third.changed == ["ops/helm-basics.md"] and third.chunks_embedded < first.chunks_total
    assert third.vector_store["published"] and third.vector_store["previous"] == old.name
    assert old.is_stale()  # a reader of the old generation learns there is a newer one
    new = open_index(settings)
    assert new.name != old.name and new.generation > old.generation
    assert any("uninstall" in r.text for r in keyword_hits(new, "helm uninstall"))
    # the old collection stays for the grace period: questions in flight on it still finish
    assert old.dense(new_vec(new, settings), 3)
    names = client_for(settings).list_collections()
    assert old.name in names

    # after the grace period the next publish drops it
    f.write_text(f.read_text(encoding="utf-8") + "\n更多内容。\n", encoding="utf-8")
    fourth = ingest(tmp_path / "corpus", settings.model_copy(update={"milvus_grace_s": 0}))
    assert old.name in fourth.vector_store["dropped"]
    assert old.name not in client_for(settings).list_collections()


def new_vec(reader, settings):
    from qa.embeddings import get_embedder

    return get_embedder(reader.model, settings).encode_query("helm")


@needs_milvus
def test_kill_9_mid_publish_leaves_the_served_alias_untouched(tmp_path, milvus):
    from qa.check import check_milvus
    from qa.ingest import ingest
    from qa.vectors.factory import open_index
    from qa.vectors.milvus import client_for

    shutil.copytree(FIXTURES / "corpus", tmp_path / "corpus")
    settings = milvus_settings(tmp_path / "index", milvus.uri, alias="crash_qa")
    ingest(tmp_path / "corpus", settings)
    served = open_index(settings).name
    (tmp_path / "corpus" / "new.md").write_text("# 新文章\n\n新文章讲 kubectl drain 的用法。\n", encoding="utf-8")
    env = {**os.environ, **milvus_env(milvus.uri, alias="crash_qa", milvus_batch=3), "QA_FAULT": "milvus-mid-insert",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*QA, "ingest", str(tmp_path / "corpus"), "--index", str(tmp_path / "index")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr
    names = client_for(settings).list_collections()
    assert len([n for n in names if n.startswith("crash_qa_gen_")]) == 2  # the half-written one is there
    assert open_index(settings).name == served  # and not served
    # the served generation is still whole; `qa check` says Milvus is behind the index folder
    result = check_milvus(settings)
    assert result["counts"]["chunks"] == open_index(settings).n_chunks
    assert any("run `qa ingest`" in p for p in result["problems"])
    # the next ingest (nothing changed locally) publishes the local generation and drops the leftover
    report = ingest(tmp_path / "corpus", settings)
    assert report.vector_store["published"]
    assert check_milvus(settings)["ok"]
    assert any("kubectl drain" in r.text for r in keyword_hits(open_index(settings), "kubectl drain"))
    assert len([n for n in client_for(settings).list_collections() if n.startswith("crash_qa_gen_")]) == 2


@needs_milvus
def test_qa_check_compares_milvus_rows_with_the_local_generation(published):
    work, settings = published
    env = {**os.environ, **milvus_env(settings.milvus_uri, alias="grpc_qa"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*QA, "check", "--json", "--index", str(work / "index")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    out = json.loads(proc.stdout)
    assert out["ok"] and out["milvus"]["compared_with_local"] and out["milvus"]["counts"]["chunks"] == out["counts"]["chunks"]


# ---- schema check --------------------------------------------------------------------------------
def _bad_collection(settings, published_settings, drop_analyzer: bool, drop_bm25: bool) -> None:
    """A collection as another tool might have written it: our fields, our properties, but
    the lexical field without analyzer and/or without the BM25 function."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    from qa.vectors.milvus import FIELDS, client_for

    src = client_for(published_settings)
    good = src.describe_collection(published_settings.milvus_collection)
    c = client_for(settings)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    for name, kind in FIELDS.items():
        if name == "id":
            s.add_field(name, DataType.INT64, is_primary=True)
        elif name == "lex":
            kw = {} if drop_analyzer else {"enable_analyzer": True, "analyzer_params": {"tokenizer": "standard"}}
            s.add_field(name, DataType.VARCHAR, max_length=65535, **kw)
        elif name == "vec":
            s.add_field(name, DataType.FLOAT_VECTOR, dim=int(good["properties"]["qa.dim"]))
        elif kind == "VARCHAR":
            s.add_field(name, DataType.VARCHAR, max_length=65535)
        else:
            s.add_field(name, getattr(DataType, kind))
    if not drop_bm25:
        s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["lex"],
                                output_field_names=["sparse"]))
    ip = c.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="IP")
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25" if not drop_bm25 else "IP")
    name = f"{settings.milvus_collection}_gen_000001"
    c.create_collection(name, schema=s, index_params=ip, properties=dict(good["properties"]))
    c.create_alias(name, settings.milvus_collection)


@needs_milvus
@pytest.mark.parametrize("drop_analyzer,drop_bm25,said", [(True, True, "no analyzer"), (False, True, "no BM25 function")])
def test_a_collection_without_analyzer_or_bm25_is_refused(tmp_path, milvus, published, drop_analyzer, drop_bm25, said):
    from qa.assistant import Assistant
    from qa.store import IndexMismatch
    from qa.vectors.base import StoreSchemaError

    _, good = published
    alias = f"bad_{int(drop_analyzer)}{int(drop_bm25)}"
    settings = milvus_settings(tmp_path / "index", milvus.uri, alias=alias)
    _bad_collection(settings, good, drop_analyzer, drop_bm25)
    with pytest.raises(StoreSchemaError, match=said) as exc:
        Assistant.open(settings=settings)
    assert isinstance(exc.value, IndexMismatch)  # the service answers 503 index_mismatch with this message
    env = {**os.environ, **milvus_env(milvus.uri, alias=alias), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*QA, "ask", "kubectl 是什么？", "--index", str(tmp_path / "index")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and said in proc.stderr.replace("\n", " ")


def test_without_the_extra_milvus_is_refused_with_the_install_hint(monkeypatch, tmp_path):
    import sys

    from qa.vectors.base import StoreUnavailable
    from qa.vectors.factory import open_index
    from qa.vectors.milvus import forget_clients

    forget_clients()
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # `import pymilvus` now fails
    with pytest.raises(StoreUnavailable, match=r"pip install 'zh-qa\[milvus\]'"):
        open_index(milvus_settings(tmp_path, "http://127.0.0.1:1"))


def test_the_default_store_never_imports_pymilvus():
    code = ("import sys, qa.assistant, qa.ingest, qa.check, qa.cli, api.main; "
            "assert not {'pymilvus', 'milvus_lite', 'qa.vectors.milvus'} & set(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
