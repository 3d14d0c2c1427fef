"""The vector-store seam (qa/vectors): the FAISS store pushes the collection filter into FAISS
and FTS5, so a filtered search is the true top k of that collection."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, make_settings


@pytest.fixture(scope="module")
def two_collections(tmp_path_factory):
    from qa.ingest import ingest

    index = tmp_path_factory.mktemp("two-collections")
    ops = ingest(FIXTURES / "corpus" / "ops", make_settings(index), collection="ops")
    ingest(FIXTURES / "corpus", make_settings(index), collection="all")
    return index, ops.chunks_total


def test_filtered_dense_and_lexical_search_are_the_collections_own_top_k(two_collections):
    from qa.embeddings import get_embedder
    from qa.vectors.factory import open_index

    index, n_ops = two_collections
    settings = make_settings(index)
    r = open_index(settings)
    q = get_embedder(r.model, settings).encode_query("kubectl 升级")
    everything = r.dense(q, r.n_chunks)
    ops_ids = r.collection_ids("ops")
    want = [x for x in everything if x[0] in ops_ids]
    assert len(want) == n_ops < len(everything)
    for k in (1, 3, n_ops, 50):
        got = r.dense(q, k, collection="ops")
        assert [i for i, _ in got] == [i for i, _ in want[:k]]
        assert [s for _, s in got] == pytest.approx([s for _, s in want[:k]])
    lex_all = r.lexical(["kubectl"], 1000)
    lex_ops = r.lexical(["kubectl"], 1000, collection="ops")
    assert lex_ops and [x for x in lex_all if x[0] in ops_ids] == lex_ops
    assert r.dense(q, 5, collection="nope") == [] and r.lexical(["kubectl"], 5, collection="nope") == []


def test_a_filtered_question_cites_only_its_collection(two_collections):
    from qa.assistant import Assistant

    index, _ = two_collections
    bot = Assistant.open(index, settings=make_settings(index))
    ans = bot.ask("Helm 怎么回滚？", collection="ops")
    assert ans.citations and {c.collection for c in ans.citations} == {"ops"}
