"""Consistency check of the served index: SQLite rows, lexical entries and FAISS ids agree.

Used by ``qa check`` and by the crash-safety tests: after any interrupted ingest the
served generation must still pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.store import DB_NAME, FAISS_NAME, IndexNotFound, connect, current_generation


def check_index(index_dir: Path) -> dict:
    """Return {"ok": bool, "generation", "problems": [...], "counts": {...}}."""
    import faiss

    index_dir = Path(index_dir)
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFound(f"no index in {index_dir}/: build it with `qa ingest corpus/ --index {index_dir}`")
    problems: list[str] = []
    path = index_dir / gen
    conn = connect(path / DB_NAME, readonly=True)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if integrity != "ok":
        problems.append(f"sqlite integrity: {integrity}")
    meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
    dim = int(meta.get("dim", 0))
    chunk_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    fts_ids = {r[0] for r in conn.execute("SELECT rowid FROM chunks_fts")}
    doc_ids = {r[0] for r in conn.execute("SELECT id FROM documents")}
    if chunk_ids - fts_ids:
        problems.append(f"{len(chunk_ids - fts_ids)} passages missing from the lexical index")
    if fts_ids - chunk_ids:
        problems.append(f"{len(fts_ids - chunk_ids)} orphan lexical entries")
    orphans = conn.execute("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} passages whose document is gone")
    bad_counts = conn.execute(
        "SELECT count(*) FROM documents d WHERE n_chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)"
    ).fetchone()[0]
    if bad_counts:
        problems.append(f"{bad_counts} documents with a wrong passage count")
    bad_vecs = conn.execute("SELECT count(*) FROM chunks WHERE length(vec) != ?", (dim * 4,)).fetchone()[0]
    if bad_vecs:
        problems.append(f"{bad_vecs} vectors of the wrong size (dim {dim})")
    dup = conn.execute("SELECT count(*) - count(DISTINCT key) FROM chunks").fetchone()[0]
    if dup:
        problems.append(f"{dup} duplicate passage ids")
    index = faiss.read_index(str(path / FAISS_NAME))
    faiss_ids = set(np.asarray(faiss.vector_to_array(index.id_map)).tolist()) if hasattr(index, "id_map") else set()
    if index.ntotal != len(chunk_ids):
        problems.append(f"FAISS holds {index.ntotal} vectors for {len(chunk_ids)} passages")
    if faiss_ids != chunk_ids:
        problems.append(
            f"FAISS ids differ from passage ids ({len(faiss_ids - chunk_ids)} extra, {len(chunk_ids - faiss_ids)} missing)"
        )
    if dim and index.d != dim:
        problems.append(f"FAISS dimension {index.d} != recorded {dim}")
    leftovers = [p.name for p in index_dir.glob("gen-*.tmp*")]
    conn.close()
    return {
        "ok": not problems,
        "generation": gen,
        "problems": problems,
        "leftover_temp": leftovers,
        "counts": {"documents": len(doc_ids), "chunks": len(chunk_ids), "lexical": len(fts_ids), "vectors": int(index.ntotal)},
    }


def check_milvus(settings, index_dir: Path | None = None, sample: int = 32) -> dict:
    """QA_VECTOR_STORE=milvus: the served collection against its manifest.

    The manifest is the local generation it was published from (passage ids, keys, vectors)
    when this machine has it, else the counts recorded in the collection's properties."""
    from qa.vectors.base import StoreSchemaError
    from qa.vectors.milvus import MilvusReader, _count

    problems: list[str] = []
    try:
        r = MilvusReader(settings)
    except StoreSchemaError as exc:
        return {"ok": False, "problems": [str(exc)], "collection": None}
    rows = {int(x["id"]): x["key"] for x in r._iterate("id >= 0", ["key"])}
    n_docs = sum(1 for _ in r._iterate("ord == 0", ["id"]))
    if len(rows) != r.n_chunks or _count(r.client, settings, r.name) != r.n_chunks:
        problems.append(f"Milvus holds {len(rows)} passages, its manifest says {r.n_chunks}")
    local_name = r.props.get("qa.local_generation")
    local = Path(index_dir or settings.index_dir) / local_name if local_name else None
    compared = False
    if local is not None and (local / DB_NAME).exists():
        compared = True
        conn = connect(local / DB_NAME, readonly=True)
        want = {int(a): b for a, b in conn.execute("SELECT id, key FROM chunks")}
        docs = conn.execute("SELECT count(*) FROM documents WHERE n_chunks > 0").fetchone()[0]
        if set(want) != set(rows):
            problems.append(f"Milvus ids differ from {local_name} ({len(set(rows) - set(want))} extra, "
                            f"{len(set(want) - set(rows))} missing)")
        elif any(want[i] != rows[i] for i in want):
            problems.append(f"{sum(want[i] != rows[i] for i in want)} passages with another key than in {local_name}")
        if docs != n_docs:
            problems.append(f"Milvus holds {n_docs} documents, {local_name} {docs}")
        ids = sorted(want)[:: max(1, len(want) // sample)][:sample]
        if ids:
            got = {int(x["id"]): x["vec"] for x in r._c(r.client.query, r.name, ids=ids, output_fields=["vec"])}
            bad = 0
            for i, blob in conn.execute(f"SELECT id, vec FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids):
                if i not in got or not np.allclose(np.frombuffer(blob, dtype=np.float32), np.asarray(got[i]), atol=1e-6):
                    bad += 1
            if bad:
                problems.append(f"{bad} of {len(ids)} sampled vectors differ from {local_name}")
        conn.close()
        served_local = current_generation(Path(index_dir or settings.index_dir))
        if served_local and served_local != local_name:
            problems.append(f"Milvus serves {local_name}, the index folder is at {served_local}: run `qa ingest` "
                            "to publish it")
    elif n_docs != r.n_docs:
        problems.append(f"Milvus holds {n_docs} documents, its manifest says {r.n_docs}")
    return {"ok": not problems, "problems": problems, "collection": r.name, "generation": r.generation,
            "compared_with_local": compared, "counts": {"documents": n_docs, "chunks": len(rows)}}
