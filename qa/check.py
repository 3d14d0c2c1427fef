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
