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
from qa.chunks import FENCE_RE, ChunkerConfig, chunk_document, refence
from qa.config import Settings
from qa.progress import make_progress
from qa.embedcache import CacheWriter, open_cache
from qa.encoder import canonical_model
from qa.vectors.factory import publish as publish_store
from qa.documents import MAX_BYTES, Document, Skipped, iter_files, load_document, skipped_files
from qa.store import (
    DB_NAME,
    SCHEMA_VERSION,
    GenerationWriter,
    connect,
    current_generation,
    fault_point,
    remove_stale_temp,
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
    files_seen: int = 0  # candidate articles found (read or not)
    files_skipped: int = 0  # files not indexed, each with its reason in ``skipped`` (a hidden folder counts its files)
    indexed: list[str] = field(default_factory=list)  # every file of this run now in the index (added, changed, unchanged)
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_cached: int = 0  # of the reused ones, found in the persistent embedding cache
    rebuild_reason: str | None = None
    # a full rebuild re-reads the index's other collections from the folders they were last
    # ingested from (a rebuild of one must not drop the rest): collection -> files read
    also_rebuilt: dict[str, int] = field(default_factory=dict)
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


def _collection_roots(conn) -> dict[str, Path]:
    """The folder each collection of an index was last ingested from, from its ``runs``."""
    roots: dict[str, Path] = {}
    try:
        rows = conn.execute("SELECT stats FROM runs ORDER BY id").fetchall()
    except sqlite3.Error:
        return roots
    for (stats,) in rows:
        try:
            d = json.loads(stats)
        except ValueError:
            continue
        roots.update({c: Path(r) for c, r in (d.get("roots") or {}).items()})
        if d.get("collection") and (d.get("root_abs") or d.get("root")):
            roots[d["collection"]] = Path(d.get("root_abs") or d["root"])
    return roots


def _other_collections(conn, collection: str) -> list[tuple[str, Path]]:
    """The index's other collections and the folder each was last ingested from; an error
    naming them when a folder is gone (a rebuild would otherwise drop that collection)."""
    names = [r[0] for r in conn.execute("SELECT DISTINCT collection FROM documents WHERE collection != ?", (collection,))]
    roots = _collection_roots(conn)
    lost = [f"{c} (last ingested from {roots[c]})" if c in roots else f"{c} (no record of its folder)"
            for c in names if c not in roots or not roots[c].exists()]
    if lost:
        raise FileNotFoundError(
            "a full rebuild re-reads every collection of the index, and these folders are gone: "
            + "; ".join(lost) + ". Ingest each from where it is now (qa ingest DIR --collection NAME) "
            "with the settings the index was built with, then rebuild; the served index is unchanged"
        )
    return [(c, roots[c]) for c in names]


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
    progress: bool | str = False,
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
    bar = make_progress(progress)
    try:
        return _run(root, settings, index_dir, collection, rebuild, bar, follow_symlinks, use_cache)
    finally:
        if bar is not None:
            bar.close()


class _Build:
    """The new generation, started lazily at the first new or changed file, so an unchanged
    corpus copies nothing and loads no model."""

    def __init__(self, index_dir: Path, settings: Settings, full: bool, prev_name: str | None, use_cache: bool):
        from qa.embeddings import get_embedder

        self.settings = settings
        self.embedder = get_embedder(settings.model, settings)
        # int8 vectors are cached apart from float32 ones (QA_BACKEND, see qa.backends)
        self.vector_identity = getattr(self.embedder, "vector_identity", self.embedder.identity)
        try:
            self.writer = GenerationWriter(index_dir)
        except OSError as exc:
            raise _write_error(index_dir, prev_name, exc) from exc
        try:
            self.conn = self.writer.start(copy_previous=not full)
            # Passages still to embed, on disk (a TEMP table never reaches the published file):
            # memory does not grow with the corpus.
            self.conn.execute("CREATE TEMP TABLE pending (id INTEGER PRIMARY KEY, hash TEXT UNIQUE, text TEXT)")
        except BaseException:
            self.writer.abort()
            raise
        self.cache = open_cache(settings.cache_dir) if use_cache else None
        self.superseded: list[int] = []  # ids of changed documents' previous rows, dropped at the end

    def close_cache(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None


_OLD = "\0old\0"  # path prefix of a changed document's previous rows until the run ends


def _run(root, settings, index_dir, collection, rebuild, bar, follow_symlinks, use_cache):
    t0 = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: give a folder of .md/.markdown/.mdx/.txt files")
    report = IngestReport(collection=collection, root=str(root))
    cfg = ChunkerConfig(settings.chunk_size, settings.chunk_hard_limit, settings.chunk_overlap_sentences)

    remove_stale_temp(index_dir)  # a killed run's folder goes now, even if nothing is published
    prev_name = current_generation(index_dir)
    prev_meta: dict[str, str] = {}
    prev_chunks = 0
    known: dict[str, tuple[int, str]] = {}
    if prev_name:
        pconn = connect(index_dir / prev_name / DB_NAME, readonly=True)
        prev_meta = _meta(pconn)
        prev_chunks = int(pconn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        known = {
            r[0]: (r[1], r[2])
            for r in pconn.execute(
                "SELECT path, id, content_hash FROM documents WHERE collection=?", (collection,)
            )
        }
    model_name = settings.model
    if prev_name and not rebuild:
        if prev_meta.get("schema") != str(SCHEMA_VERSION):
            report.rebuild_reason = "index format changed"
        elif prev_meta.get("model") != canonical_model(model_name):
            report.rebuild_reason = (
                f"model changed ({prev_meta.get('model')} -> {canonical_model(model_name)}): re-embedding everything"
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
    known_for_diff: dict[str, tuple[int, str]] = {} if full else known
    others = _other_collections(pconn, collection) if full and prev_name else []
    roots = _collection_roots(pconn) if prev_name else {}
    if prev_name:
        pconn.close()

    build: _Build | None = None
    try:
        # 1. one pass over the files: hash each; a new or changed one is parsed, chunked and
        #    written at once (documents are never all held in memory); passages without a
        #    vector anywhere (this index, the previous one, the embedding cache) are queued.
        items = [(collection, root, i) for i in iter_files(root, follow_symlinks=follow_symlinks)]
        for other, other_root in others:
            items += [(other, other_root, i) for i in iter_files(other_root, follow_symlinks=follow_symlinks)
                      if not isinstance(i, Skipped)]
        if bar:
            bar.start_files(sum(1 for *_, i in items if not isinstance(i, Skipped)))
        seen: set[str] = set()
        new_passages = 0
        for item_collection, item_root, item in items:
            if item_collection != collection:
                # another collection of the index, re-read so the rebuild keeps it
                if bar:
                    bar.file_done()
                try:
                    doc = load_document(item[0], item_root, data=item[0].read_bytes())
                except OSError:
                    continue
                if isinstance(doc, Skipped):
                    continue
                if build is None:
                    build = _Build(index_dir, settings, full, prev_name, use_cache)
                new_passages += _add_document(build, doc, None, item_root, item_collection, cfg, report)
                report.also_rebuilt[item_collection] = report.also_rebuilt.get(item_collection, 0) + 1
                continue
            if isinstance(item, Skipped):
                report.skipped.append({"path": item.path, "reason": item.reason})
                report.files_skipped += skipped_files(item)
                continue
            path, rel = item
            report.files_seen += 1
            if bar:
                bar.file_done()
            try:
                # the loader's size limit, before reading: a huge file is never loaded into memory
                size = path.stat().st_size
                if size > MAX_BYTES:
                    report.skipped.append({"path": rel, "reason": f"file too large ({size} bytes > {MAX_BYTES})"})
                    report.files_skipped += 1
                    continue
                data = path.read_bytes()
            except OSError as exc:
                report.skipped.append({"path": rel, "reason": f"cannot read: {exc.strerror or exc}"})
                report.files_skipped += 1
                continue
            digest = hashlib.sha256(data).hexdigest()
            old = known_for_diff.get(rel)
            if old and old[1] == digest:
                seen.add(rel)
                report.unchanged += 1
                report.indexed.append(rel)
                continue
            doc = load_document(path, root, data=data)
            del data
            if isinstance(doc, Skipped):
                report.skipped.append({"path": doc.path, "reason": doc.reason})
                report.files_skipped += 1
                continue
            seen.add(rel)
            for w in doc.warnings:
                report.warnings.append({"path": rel, "warning": w})
            if build is None:
                if bar:
                    bar.message(f"loading the embedding model ({settings.model})")
                build = _Build(index_dir, settings, full, prev_name, use_cache)
            new_passages += _add_document(build, doc, old, root, collection, cfg, report)
            (report.changed if old else report.added).append(rel)
            report.indexed.append(rel)
        removed = sorted(set(known_for_diff) - seen)
        report.removed = removed
        if build is None and not full and not removed:
            report.generation = prev_name
            report.chunks_total = prev_chunks  # what the served index holds, not 0
            report.seconds = time.perf_counter() - t0
            return report
        if build is None:
            build = _Build(index_dir, settings, full, prev_name, use_cache)
        conn = build.conn

        # 2. embed the queue, longest passages of each window together; every batch's
        #    vectors go to the persistent cache at once (committed every few seconds), so
        #    a run killed at any point keeps what it embedded.
        te = time.perf_counter()
        report.chunks_embedded = _embed_pending(build, bar)
        report.embed_seconds = time.perf_counter() - te
        build.close_cache()
        fault_point("after-embed")
        left = conn.execute("SELECT count(*) FROM chunks WHERE length(vec) = 0").fetchone()[0]
        if left:
            raise RuntimeError(f"{left} passages were left without a vector")

        # 3. drop removed documents and the previous rows of changed ones
        drop_ids = [known_for_diff[p][0] for p in removed] + build.superseded
        for i in range(0, len(drop_ids), 500):
            part = drop_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            conn.execute(
                f"DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id IN ({marks}))", part
            )
            conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
            conn.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)

        now = time.time()
        report.chunks_reused = new_passages - report.chunks_embedded
        embedder = build.embedder
        meta = {
            "schema": str(SCHEMA_VERSION),
            "model": canonical_model(model_name),
            "model_identity": embedder.identity,
            "dim": str(embedder.dim),
            "chunker": cfg.fingerprint(),
            "lexical": lexical.VERSION,
            "updated_at": str(now),
        }
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        report.chunks_total = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        report.generation = build.writer.name
        report.seconds = time.perf_counter() - t0
        report.published = True
        conn.execute(
            "INSERT INTO runs (started_at, finished_at, stats) VALUES (?,?,?)",
            (now - report.seconds, time.time(),
             json.dumps({**report.to_dict(), "root_abs": str(root.resolve()),
                         "roots": {**{c: str(r) for c, r in roots.items()}, collection: str(root.resolve())}},
                        ensure_ascii=False)),
        )
        conn.execute("DROP TABLE temp.pending")
        build.writer.publish(conn)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        if build is not None:
            build.close_cache()
            build.writer.abort()
        if isinstance(exc, IndexWriteError) or not _is_write_failure(exc):
            raise
        raise _write_error(index_dir, prev_name, exc) from exc
    except BaseException:
        if build is not None:
            build.close_cache()
            build.writer.abort()
        raise
    report.seconds = time.perf_counter() - t0
    return report


def _add_document(build: _Build, doc: Document, old, root: Path, collection: str, cfg: ChunkerConfig,
                  report: IngestReport) -> int:
    """Write one parsed document and its passages; queue the passages that need a vector."""
    from qa.embeddings import text_hash

    conn = build.conn
    if old:
        # keep the previous rows (their vectors are reusable) under another name until the end
        conn.execute("UPDATE documents SET path = ? || path WHERE id = ?", (_OLD, old[0]))
        conn.execute("UPDATE chunks SET key = ? || key WHERE doc_id = ?", (_OLD, old[0]))
        build.superseded.append(old[0])
    chunks = _hard_cut(chunk_document(doc, cfg), doc, cfg.hard_limit, report)
    if not chunks:
        report.warnings.append({"path": doc.path, "warning": "no text to index (empty after cleaning)"})
    hashes = [text_hash(ch.embed_text(doc.title), build.vector_identity) for ch in chunks]
    vecs: dict[str, bytes] = {}
    for h in set(hashes):
        row = conn.execute("SELECT vec FROM chunks WHERE embed_hash=? AND length(vec) > 0 LIMIT 1", (h,)).fetchone()
        if row:
            vecs[h] = row[0]
    missing = [h for h in set(hashes) if h not in vecs]
    if missing and build.cache is not None:
        cached = build.cache.get_many(missing)
        vecs.update(cached)
        report.chunks_cached += len(cached)
    stat = _stat(root, doc.path)
    cur = conn.execute(
        "INSERT INTO documents (collection, path, source, title, meta, content_hash, encoding, size, "
        "mtime, n_chunks, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            collection, doc.path, _display_source(root, doc.path), doc.title,
            json.dumps(doc.meta, ensure_ascii=False, default=str), doc.content_hash,
            doc.encoding, stat[0], stat[1], len(chunks), time.time(),
        ),
    )
    doc_id = cur.lastrowid
    for ch, h in zip(chunks, hashes):
        vec = vecs.get(h)
        if vec is None:
            conn.execute("INSERT OR IGNORE INTO pending (hash, text) VALUES (?, ?)", (h, ch.embed_text(doc.title)))
        c = conn.execute(
            "INSERT INTO chunks (key, doc_id, ord, heading, text, start, end, line_start, line_end, "
            "is_stub, kind, embed_hash, vec) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                ch.key, doc_id, ch.ord, ch.heading, ch.display_text, ch.start, ch.end, ch.line_start,
                ch.line_end, int(ch.is_stub), ch.kind, h, vec or b"",
            ),
        )
        lex = " ".join([doc.title, *ch.heading_path, ch.index_text])
        conn.execute(
            "INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)",
            (c.lastrowid, lexical.fts_document(lex)),
        )
    return len(chunks)


#: rows of the queue embedded together: sorted by length inside a window (little padding)
#: while progress, rate and the resume point move steadily through the queue
EMBED_WINDOW = 256


def _embed_pending(build: _Build, bar) -> int:
    conn = build.conn
    total = int(conn.execute("SELECT count(*) FROM temp.pending").fetchone()[0])
    if bar:
        bar.start_embedding(total)
    if not total:
        return 0
    writer = CacheWriter(build.cache, interval=build.settings.cache_flush_seconds) if build.cache is not None else None
    done, last = 0, 0
    try:
        while True:
            rows = conn.execute(
                "SELECT id, hash, text FROM temp.pending WHERE id > ? ORDER BY id LIMIT ?", (last, EMBED_WINDOW)
            ).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            texts = [r[2] for r in rows]
            for idx, vecs in build.embedder.iter_encode_passages(texts):
                fresh = {rows[i][1]: v.astype(np.float32).tobytes() for i, v in zip(idx, vecs)}
                if writer is not None:
                    writer.add(fresh)
                conn.executemany(
                    "UPDATE chunks SET vec = ? WHERE embed_hash = ? AND length(vec) = 0",
                    [(v, h) for h, v in fresh.items()],
                )
                done += len(fresh)
                if bar:
                    bar.embedded_batch(len(fresh))
    finally:
        if writer is not None:
            writer.close()
    return done


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
    back to the source.  A slice of a code block is re-fenced with the block's opening
    line (``fence_open``/``fence_close``, shown around the slice), so no passage has an
    unbalanced fence.
    """
    if all(len(c.display_text) <= hard_limit for c in chunks):
        return chunks
    import dataclasses

    out = []
    for c in chunks:
        if len(c.display_text) <= hard_limit:
            out.append(dataclasses.replace(c, ord=len(out)))
            continue
        first = c.text.split("\n", 1)[0]
        opener = c.fence_open or (first.strip() if FENCE_RE.match(first) else "")
        # a re-fenced piece is shown with its fence lines: they count against the limit too
        step = hard_limit - (len(opener) + 8 if opener and c.kind in ("code", "diagram") else 0)
        pieces = range(c.start, c.end, step)
        report.warnings.append({
            "path": doc.path,
            "warning": f"passage of {c.end - c.start} characters (line {c.line_start}) cut into {len(pieces)} "
            f"pieces at the hard limit of {hard_limit}",
        })
        for a in pieces:
            b = min(a + step, c.end)
            text = doc.body[a:b]
            if not text.strip():
                continue
            fence_open, fence_close = refence(text, opener) if c.kind in ("code", "diagram") else ("", "")
            key = hashlib.sha256(f"{doc.path}\0{c.key}\0{a}".encode()).hexdigest()[:20]
            out.append(dataclasses.replace(
                c, key=key, ord=len(out), text=text, start=a, end=b,
                line_start=doc.source_line(a), line_end=doc.source_line(b - 1),
                fence_open=fence_open, fence_close=fence_close,
            ))
    return out


def _stat(root: Path, rel: str) -> tuple[int | None, float | None]:
    try:
        st = ((root / rel) if root.is_dir() else root).stat()
        return st.st_size, st.st_mtime
    except OSError:
        return None, None
