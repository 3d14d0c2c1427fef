"""Corpus -> a new index generation, re-embedding only what changed.

Documents are tracked by (collection, path) and the sha256 of their bytes.  An
unchanged corpus costs one read + hash per file and publishes nothing; a changed
one copies the served generation, applies the difference and publishes a new
generation atomically (see ``qa.store``).  Passage vectors are reused whenever
the exact text that would be embedded (with the same model) was embedded before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from qa import lexical
from qa.chunks import ChunkerConfig, chunk_document
from qa.config import Settings
from qa.embedcache import open_cache
from qa.vectors.factory import publish as publish_store
from qa.documents import MAX_BYTES, Document, Skipped, iter_files, load_document
from qa.store import (
    DB_NAME,
    SCHEMA_VERSION,
    GenerationWriter,
    connect,
    current_generation,
    fault_point,
)

log = logging.getLogger(__name__)


class IngestLocked(RuntimeError):
    """Another ingest holds the index lock."""


class IndexWriteError(OSError):
    """The new generation could not be written (disk full, read-only or not a folder).

    The served generation is untouched; the message says where and why."""


@dataclass
class IngestReport:
    collection: str
    root: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    files_seen: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_cached: int = 0  # of the reused ones, found in the persistent embedding cache
    rebuild_reason: str | None = None
    generation: str | None = None
    published: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0
    vector_store: dict | None = None  # what was published to a shared store (qa.vectors.factory.publish)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["chunks_per_second"] = round(self.chunks_per_second, 1)
        return d


def _meta(conn) -> dict[str, str]:
    try:
        return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
    except Exception:
        return {}


def _display_source(root: Path, rel: str) -> str:
    """Path shown to readers: relative to the working directory when possible."""
    full = (root / rel) if root.is_dir() else root
    try:
        return full.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return full.as_posix()


def ingest(
    root: Path,
    settings: Settings,
    index_dir: Path | None = None,
    collection: str = "default",
    rebuild: bool = False,
    progress: bool = False,
    wait: float = 0,
    follow_symlinks: bool = False,
    use_cache: bool = True,
) -> IngestReport:
    index_dir = Path(index_dir or settings.index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(
            exc.errno, f"cannot create the index folder {index_dir}: {exc.strerror or exc}"
        ) from exc
    lock = FileLock(str(index_dir / ".lock"))
    try:
        lock.acquire(timeout=wait)
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        raise IngestLocked(
            f"another `qa ingest` is writing {index_dir}/ right now; wait for it to finish "
            "(or pass --wait SECONDS)"
        ) from None
    except OSError as exc:  # read-only folder, disk full: the lock file cannot be created
        raise IndexWriteError(exc.errno, f"cannot write to the index folder {index_dir}: {exc.strerror or exc}") from exc
    try:
        report = _ingest_locked(
            root, settings, index_dir, collection, rebuild, progress, follow_symlinks, use_cache
        )
        # QA_VECTOR_STORE=milvus: the local generation, new or unchanged, is what Milvus serves next
        report.vector_store = publish_store(index_dir, settings)
        return report
    finally:
        lock.release()


def _ingest_locked(root, settings, index_dir, collection, rebuild, progress, follow_symlinks, use_cache):
    t0 = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give a folder of .md/.markdown/.mdx/.txt files")
    report = IngestReport(collection=collection, root=str(root))
    cfg = ChunkerConfig(settings.chunk_size, settings.chunk_hard_limit, settings.chunk_overlap_sentences)

    prev_name = current_generation(index_dir)
    prev_meta: dict[str, str] = {}
    known: dict[str, tuple[int, str]] = {}
    if prev_name:
        pconn = connect(index_dir / prev_name / DB_NAME, readonly=True)
        prev_meta = _meta(pconn)
        known = {
            r[0]: (r[1], r[2])
            for r in pconn.execute(
                "SELECT path, id, content_hash FROM documents WHERE collection=?", (collection,)
            )
        }
        pconn.close()

    model_name = settings.model
    if prev_name and not rebuild:
        if prev_meta.get("schema") != str(SCHEMA_VERSION):
            report.rebuild_reason = "index format changed"
        elif prev_meta.get("model") != _canonical_model(model_name):
            report.rebuild_reason = (
                f"model changed ({prev_meta.get('model')} -> {_canonical_model(model_name)}): re-embedding everything"
            )
        elif prev_meta.get("lexical") != lexical.VERSION:
            report.rebuild_reason = f"lexical tokenizer changed ({prev_meta.get('lexical')} -> {lexical.VERSION})"
        elif prev_meta.get("chunker") != cfg.fingerprint():
            report.rebuild_reason = (
                f"chunker settings changed ({prev_meta.get('chunker')} -> {cfg.fingerprint()}): re-chunking everything"
            )
    elif rebuild:
        report.rebuild_reason = "--rebuild"
    full = report.rebuild_reason is not None or not prev_name
    if full:
        known_for_diff: dict[str, tuple[int, str]] = {}
    else:
        known_for_diff = known

    # 1. scan: hash every file, parse only new or changed ones
    docs: list[Document] = []
    seen: set[str] = set()
    for item in iter_files(root, follow_symlinks=follow_symlinks):
        if isinstance(item, Skipped):
            report.skipped.append({"path": item.path, "reason": item.reason})
            continue
        path, rel = item
        report.files_seen += 1
        try:
            # the loader's size limit, before reading: a huge file is never loaded into memory
            size = path.stat().st_size
            if size > MAX_BYTES:
                report.skipped.append({"path": rel, "reason": f"file too large ({size} bytes > {MAX_BYTES})"})
                continue
            data = path.read_bytes()
        except OSError as exc:
            report.skipped.append({"path": rel, "reason": f"cannot read: {exc.strerror or exc}"})
            continue
        seen.add(rel)
        digest = hashlib.sha256(data).hexdigest()
        old = known_for_diff.get(rel)
        if old and old[1] == digest:
            report.unchanged += 1
            continue
        doc = load_document(path, root, data=data)
        if isinstance(doc, Skipped):
            seen.discard(rel)
            report.skipped.append({"path": doc.path, "reason": doc.reason})
            continue
        for w in doc.warnings:
            report.warnings.append({"path": rel, "warning": w})
        docs.append(doc)
        (report.changed if old else report.added).append(rel)
    removed = sorted(set(known_for_diff) - seen)
    report.removed = removed
    if not full and not docs and not removed:
        report.generation = prev_name
        report.seconds = time.perf_counter() - t0
        return report

    # 2. chunk
    from qa.embeddings import get_embedder, text_hash

    embedder = get_embedder(model_name, settings)
    identity = embedder.identity
    # int8 vectors are cached apart from float32 ones (QA_BACKEND, see qa.backends)
    vector_identity = getattr(embedder, "vector_identity", identity)
    try:
        writer = GenerationWriter(index_dir)
    except OSError as exc:
        raise _write_error(index_dir, prev_name, exc) from exc
    try:
        conn = writer.start(copy_previous=not full)
        reusable: dict[str, bytes] = {}
        drop_ids = [known_for_diff[p][0] for p in removed] + [
            known_for_diff[d.path][0] for d in docs if d.path in known_for_diff
        ]
        if drop_ids:
            marks = ",".join("?" * len(drop_ids))
            for h, v in conn.execute(
                f"SELECT embed_hash, vec FROM chunks WHERE doc_id IN ({marks})", drop_ids
            ):
                reusable[h] = v
            conn.execute(
                f"DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id IN ({marks}))",
                drop_ids,
            )
            conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", drop_ids)
            conn.execute(f"DELETE FROM documents WHERE id IN ({marks})", drop_ids)

        planned = []  # (doc, chunks, embed_hashes)
        to_embed: dict[str, str] = {}
        for doc in docs:
            chunks = _hard_cut(chunk_document(doc, cfg), doc, cfg.hard_limit, report)
            if not chunks:
                report.warnings.append({"path": doc.path, "warning": "no text to index (empty after cleaning)"})
            hashes = []
            for ch in chunks:
                et = ch.embed_text(doc.title)
                h = text_hash(et, vector_identity)
                hashes.append(h)
                if h not in reusable and h not in to_embed:
                    row = conn.execute("SELECT vec FROM chunks WHERE embed_hash=? LIMIT 1", (h,)).fetchone()
                    if row:
                        reusable[h] = row[0]
                    else:
                        to_embed[h] = et
            planned.append((doc, chunks, hashes))

        # 3. embed only what is new (and not in the persistent cache)
        te = time.perf_counter()
        cache = open_cache(settings.cache_dir) if use_cache else None
        if cache and to_embed:
            cached = cache.get_many(list(to_embed))
            reusable.update(cached)
            report.chunks_cached = len(cached)
            for k in cached:
                del to_embed[k]
        if to_embed:
            keys = list(to_embed)
            vecs = _embed_with_progress(embedder, [to_embed[k] for k in keys], progress)
            fresh = {k: v.astype(np.float32).tobytes() for k, v in zip(keys, vecs)}
            reusable.update(fresh)
            if cache:
                cache.put_many(fresh)
        if cache:
            cache.close()
        report.embed_seconds = time.perf_counter() - te
        fault_point("after-embed")
        report.chunks_embedded = len(to_embed)

        # 4. write rows
        now = time.time()
        for doc, chunks, hashes in planned:
            stat = _stat(root, doc.path)
            cur = conn.execute(
                "INSERT INTO documents (collection, path, source, title, meta, content_hash, encoding, size, "
                "mtime, n_chunks, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    collection, doc.path, _display_source(root, doc.path), doc.title,
                    json.dumps(doc.meta, ensure_ascii=False, default=str), doc.content_hash,
                    doc.encoding, stat[0], stat[1], len(chunks), now,
                ),
            )
            doc_id = cur.lastrowid
            for ch, h in zip(chunks, hashes):
                c = conn.execute(
                    "INSERT INTO chunks (key, doc_id, ord, heading, text, start, end, line_start, line_end, "
                    "is_stub, kind, embed_hash, vec) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        ch.key, doc_id, ch.ord, ch.heading, ch.text, ch.start, ch.end, ch.line_start,
                        ch.line_end, int(ch.is_stub), ch.kind, h, reusable[h],
                    ),
                )
                lex = " ".join([doc.title, *ch.heading_path, ch.text])
                conn.execute(
                    "INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)",
                    (c.lastrowid, lexical.fts_document(lex)),
                )
        report.chunks_reused = sum(len(c) for _, c, _ in planned) - report.chunks_embedded
        meta = {
            "schema": str(SCHEMA_VERSION),
            "model": _canonical_model(model_name),
            "model_identity": identity,
            "dim": str(embedder.dim),
            "chunker": cfg.fingerprint(),
            "lexical": lexical.VERSION,
            "updated_at": str(now),
        }
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        report.chunks_total = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        report.generation = writer.name
        report.seconds = time.perf_counter() - t0
        report.published = True
        conn.execute(
            "INSERT INTO runs (started_at, finished_at, stats) VALUES (?,?,?)",
            (now - report.seconds, time.time(), json.dumps(report.to_dict(), ensure_ascii=False)),
        )
        writer.publish(conn)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        writer.abort()
        if isinstance(exc, IndexWriteError) or not _is_write_failure(exc):
            raise
        raise _write_error(index_dir, prev_name, exc) from exc
    except BaseException:
        writer.abort()
        raise
    report.seconds = time.perf_counter() - t0
    return report


def _is_write_failure(exc: BaseException) -> bool:
    """Disk full, quota, read-only or vanished index folder, as raised by os, SQLite or FAISS."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return any(
        s in text
        for s in ("disk is full", "no space", "readonly", "read-only", "unable to open", "disk i/o", "could not open",
                  "quota", "ioerr")
    )


def _write_error(index_dir: Path, served: str | None, exc: BaseException) -> IndexWriteError:
    why = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
    kept = f"the served generation {served} is untouched" if served else "no index was published"
    msg = f"cannot write the new index generation in {index_dir}/: {why} (disk full or not writable?); {kept}"
    errno = getattr(exc, "errno", None)
    return IndexWriteError(errno, msg) if errno else IndexWriteError(msg)


def _hard_cut(chunks: list, doc: Document, hard_limit: int, report: IngestReport) -> list:
    """No passage longer than ``hard_limit`` characters reaches the model or the index.

    The chunker cuts prose at the target size, but a single line of a code block or a
    table row can be arbitrarily long (minified JS, a data dump pasted into a table);
    such a passage is cut into ``hard_limit`` slices of the body, so offsets still map
    back to the source.
    """
    if all(c.end - c.start <= hard_limit for c in chunks):
        return chunks
    import dataclasses

    out = []
    for c in chunks:
        if c.end - c.start <= hard_limit:
            out.append(dataclasses.replace(c, ord=len(out)))
            continue
        pieces = range(c.start, c.end, hard_limit)
        report.warnings.append({
            "path": doc.path,
            "warning": f"passage of {c.end - c.start} characters (line {c.line_start}) cut into {len(pieces)} "
            f"pieces at the hard limit of {hard_limit}",
        })
        for a in pieces:
            b = min(a + hard_limit, c.end)
            text = doc.body[a:b]
            if not text.strip():
                continue
            key = hashlib.sha256(f"{doc.path}\0{c.key}\0{a}".encode()).hexdigest()[:20]
            out.append(dataclasses.replace(
                c, key=key, ord=len(out), text=text, start=a, end=b,
                line_start=doc.source_line(a), line_end=doc.source_line(b - 1),
            ))
    return out


def _canonical_model(name: str) -> str:
    from qa.embeddings import DEFAULT_ALIASES
    from qa.config import DEFAULT_MODEL

    return DEFAULT_MODEL if name in DEFAULT_ALIASES else name


def _stat(root: Path, rel: str) -> tuple[int | None, float | None]:
    try:
        st = ((root / rel) if root.is_dir() else root).stat()
        return st.st_size, st.st_mtime
    except OSError:
        return None, None


def _embed_with_progress(embedder, texts: list[str], progress: bool) -> np.ndarray:
    if not progress:
        return embedder.encode_passages(texts)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    order = np.argsort([len(t) for t in texts])[::-1]
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    step = max(embedder.batch_size * 4, 64)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("embedding passages", total=len(texts))
        for i in range(0, len(texts), step):
            idx = order[i : i + step]
            out[idx] = embedder._encode([texts[j] for j in idx], embedder.passage_prompt)
            bar.advance(task, len(idx))
    return out

