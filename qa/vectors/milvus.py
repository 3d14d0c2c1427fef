"""The served index in Milvus, so any number of stateless API replicas share one store.

Writing: ``qa ingest`` still builds the local FAISS + SQLite generation (file hashes,
embedding reuse, chunking); :func:`publish_to_milvus` then copies that generation into a
*new* collection ``<alias>_gen_<number>`` (vector, space-joined encoded lexical tokens with a
BM25 function, and every field a citation needs), checks the row count, and moves the alias
with ``alter_alias``: the same contract as ``CURRENT`` on disk.  Readers resolve the alias
once per generation and query the concrete collection, so a question in flight finishes on
the generation it started on; old collections are dropped ``QA_MILVUS_GRACE_S`` after the
alias left them.  A publish that dies half-way leaves an unaliased collection that the next
publish drops: the served alias is never touched before the new collection is complete.

Reading: :class:`MilvusReader` implements :class:`qa.vectors.base.VectorIndex` with the
collection filter in the search expression.  Fusion and window re-scoring stay in
``qa.retrieval`` (client side), so answers match the FAISS path; Milvus's own
``hybrid_search`` is available beside it for the benchmark (:meth:`MilvusReader.hybrid`).

At open the reader checks the schema: the analysed field, its analyzer, the BM25 function,
the sparse and dense fields, and the lexical versions.  Anything else is refused with a
message instead of serving zero keyword hits.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from qa import lexical
from qa.config import DEFAULT_CANDIDATES, DEFAULT_DENSE_WEIGHT, Settings
from qa.store import DB_NAME, ChunkRow, IndexNotFound, connect, fault_point, generation_number
from qa.vectors import lexcodec
from qa.vectors.base import StoreSchemaError, StoreUnavailable

log = logging.getLogger(__name__)

INSTALL_HINT = "QA_VECTOR_STORE=milvus needs the milvus extra: pip install 'zh-qa[milvus]'"
SCHEMA_VERSION = "1"
ANALYZERS = ("standard", "whitespace")  # both keep an encoded token whole (see lexcodec)
VARCHAR_MAX = 65535
BOUNDED_STALENESS_S = 5.5  # Milvus's common.gracefulTime (5000 ms) and a margin
# (name, kind): what a served collection must hold; kinds are pymilvus DataType names
FIELDS = {
    "id": "INT64", "collection": "VARCHAR", "doc_path": "VARCHAR", "source": "VARCHAR", "title": "VARCHAR",
    "doc_meta": "VARCHAR", "doc_chunks": "INT64", "ingested_at": "DOUBLE", "key": "VARCHAR", "ord": "INT64",
    "heading": "VARCHAR", "text": "VARCHAR", "char_start": "INT64", "char_end": "INT64", "line_start": "INT64",
    "line_end": "INT64", "is_stub": "BOOL", "kind": "VARCHAR", "lex": "VARCHAR", "sparse": "SPARSE_FLOAT_VECTOR",
    "vec": "FLOAT_VECTOR",
}
ROW_FIELDS = [f for f in FIELDS if f not in ("lex", "sparse", "vec")]


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        # a 503 / exit 3 with the fix, like any other reason the store cannot be used
        raise StoreUnavailable(INSTALL_HINT) from None
    # pymilvus logs a traceback per failed RPC; the caller gets one StoreUnavailable instead
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    return pymilvus


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def client_for(settings: Settings):
    """One client (one gRPC channel, thread-safe) per server, database and token."""
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    key = (settings.milvus_uri, settings.milvus_db, token)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            pm = _pymilvus()
            uri = settings.milvus_uri
            if uri.endswith(".db"):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                c = pm.MilvusClient(
                    uri=uri, token=token, db_name=settings.milvus_db if settings.milvus_db != "default" else "",
                    timeout=settings.milvus_timeout_s,
                    # pymilvus pings every 10 s even when idle; gRPC servers with default settings
                    # (milvus-lite's) answer that with GOAWAY "too_many_pings" and drop the channel,
                    # failing calls in flight. Every call has a timeout, so rarer pings lose nothing.
                    grpc_options={"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False},
                )
            except Exception as exc:
                raise _unavailable(settings, exc) from None
            _clients[key] = c
        return c


def forget_clients() -> None:
    """Close cached clients (tests that start and stop servers)."""
    with _clients_lock:
        for c in _clients.values():
            try:
                c.close()
            except Exception:
                pass
        _clients.clear()


def _unavailable(settings: Settings, exc: BaseException) -> StoreUnavailable:
    why = str(getattr(exc, "message", "") or exc).strip().splitlines()[0][:300] if str(exc) else type(exc).__name__
    return StoreUnavailable(f"Milvus at {settings.milvus_uri} is unavailable: {why}")


def _call(settings: Settings, fn, *args, **kwargs):
    """A Milvus call with the configured timeout; any failure becomes StoreUnavailable."""
    kwargs.setdefault("timeout", settings.milvus_timeout_s)
    try:
        return fn(*args, **kwargs)
    except (StoreUnavailable, StoreSchemaError, IndexNotFound):
        raise
    except Exception as exc:  # MilvusException, grpc.RpcError, connection errors
        raise _unavailable(settings, exc) from None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def collection_name(alias: str, number: int) -> str:
    return f"{alias}_gen_{number:06d}"


def _number_of(name: str, alias: str) -> int | None:
    prefix = f"{alias}_gen_"
    tail = name[len(prefix):] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _alias_target(client, settings: Settings) -> str | None:
    pm = _pymilvus()
    try:
        return client.describe_alias(settings.milvus_collection, timeout=settings.milvus_timeout_s)["collection_name"]
    except pm.MilvusException as exc:
        text = str(exc).lower()
        if "not exist" in text or "not found" in text or "doesn't exist" in text:
            return None
        raise _unavailable(settings, exc) from None
    except Exception as exc:
        raise _unavailable(settings, exc) from None


# ---- reading ------------------------------------------------------------------------------


class MilvusReader:
    """One Milvus generation (the collection the alias named when opened), for queries."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = client_for(settings)
        self.alias = settings.milvus_collection
        name = _alias_target(self.client, settings)
        if name is None:
            raise IndexNotFound(
                f"no index in Milvus at {settings.milvus_uri} (alias {self.alias!r}) yet: publish one with "
                "`QA_VECTOR_STORE=milvus qa ingest corpus/`"
            )
        self.name = name
        desc = _call(settings, self.client.describe_collection, name)
        self.props: dict[str, str] = {str(k): str(v) for k, v in (desc.get("properties") or {}).items()}
        where = f"Milvus collection {name} (alias {self.alias})"
        check_schema(desc, self.props, where=where)
        indexes = set(_call(settings, self.client.list_indexes, name))
        for field, metric in (("sparse", "BM25"), ("vec", "IP")):
            idx = _call(settings, self.client.describe_index, name, field) if field in indexes else None
            if not idx or str(idx.get("metric_type", "")).upper() != metric:
                raise StoreSchemaError(f"{where}: the index on {field} has metric {(idx or {}).get('metric_type')}, "
                                       f"expected {metric}: publish again with `QA_VECTOR_STORE=milvus qa ingest --rebuild`")
        state = _call(settings, self.client.get_load_state, name)
        if "Loaded" not in str(state.get("state")):
            _call(settings, self.client.load_collection, name, timeout=max(settings.milvus_timeout_s, 60.0))
        self.generation = self.props.get("qa.generation") or f"gen-{_number_of(name, self.alias) or 0:06d}"
        self.n_chunks = int(self.props.get("qa.chunks", 0))
        self.n_docs = int(self.props.get("qa.documents", 0))
        self.meta = {k[3:]: v for k, v in self.props.items() if k.startswith("qa.")}
        self.opened_at = time.time()
        self._c = lambda fn, *a, **kw: _call(settings, fn, *a, **kw)

    @property
    def model(self) -> str:
        return self.props.get("qa.model", "?")

    @property
    def model_identity(self) -> str:
        return self.props.get("qa.model_identity", "?")

    def _filter(self, collection: str | None) -> str:
        return f"collection == {_quote(collection)}" if collection else ""

    def is_stale(self) -> bool:
        return _alias_target(self.client, self.settings) not in (None, self.name)

    def ping(self) -> None:
        if _alias_target(self.client, self.settings) is None:
            raise StoreUnavailable(f"the alias {self.alias!r} is gone from Milvus at {self.settings.milvus_uri}")

    def dense(self, qvec: np.ndarray, k: int, collection: str | None = None) -> list[tuple[int, float]]:
        if self.n_chunks == 0 or k <= 0:
            return []
        res = self._c(
            self.client.search, self.name, data=[np.asarray(qvec, dtype=np.float32).ravel().tolist()],
            anns_field="vec", limit=min(k, 16384), filter=self._filter(collection), output_fields=[],
            search_params={"metric_type": "IP"},
        )
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def lexical(self, tokens: Sequence[str], k: int, collection: str | None = None) -> list[tuple[int, float]]:
        text = lexcodec.query(tokens)
        if not text or self.n_chunks == 0 or k <= 0:
            return []
        res = self._c(
            self.client.search, self.name, data=[text], anns_field="sparse", limit=min(k, 16384),
            filter=self._filter(collection), output_fields=[], search_params={"metric_type": "BM25"},
        )
        # BM25 is never negative; milvus-lite reports it negated ("smaller is better"), Milvus as is
        out = [(int(h["id"]), abs(float(h["distance"]))) for h in res[0]]
        return [x for x in out if x[1] > 0]

    def hybrid(
        self, qvec: np.ndarray, tokens: Sequence[str], k: int, ranker: str = "weighted",
        dense_weight: float = DEFAULT_DENSE_WEIGHT, candidates: int = DEFAULT_CANDIDATES, collection: str | None = None,
    ) -> list[tuple[int, float]]:
        """Milvus's own fusion (``hybrid_search``), measured beside ours in bench/milvus.py."""
        pm = _pymilvus()
        flt = self._filter(collection)
        reqs = [pm.AnnSearchRequest(data=[np.asarray(qvec, dtype=np.float32).ravel().tolist()], anns_field="vec",
                                    param={"metric_type": "IP"}, limit=candidates, expr=flt or None)]
        text = lexcodec.query(tokens)
        if text:
            reqs.append(pm.AnnSearchRequest(data=[text], anns_field="sparse", param={"metric_type": "BM25"},
                                            limit=candidates, expr=flt or None))
        rk = (pm.RRFRanker(60) if ranker == "rrf" else
              pm.WeightedRanker(dense_weight, 1 - dense_weight) if len(reqs) == 2 else pm.WeightedRanker(1.0))
        res = self._c(self.client.hybrid_search, self.name, reqs, rk, limit=k, output_fields=["id"])
        return [(int(h["id"]), float(h["distance"])) for h in res[0]]

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        rows = self._c(self.client.query, self.name, ids=[int(i) for i in ids], output_fields=ROW_FIELDS)
        return {int(r["id"]): _row(r) for r in rows}

    def stub_ids(self) -> list[int]:
        return sorted(int(r["id"]) for r in self._iterate("is_stub == true", ["id"]))

    def documents(self) -> list[dict]:
        out = []
        for r in self._iterate("ord == 0", ["collection", "doc_path", "title", "doc_chunks", "ingested_at", "doc_meta"]):
            out.append({
                "collection": r["collection"], "path": r["doc_path"], "title": r["title"], "chunks": int(r["doc_chunks"]),
                "ingested_at": float(r["ingested_at"]), "url": json.loads(r["doc_meta"] or "{}").get("url"),
            })
        return sorted(out, key=lambda d: (d["collection"], d["path"]))

    def _iterate(self, flt: str, fields: list[str], batch: int = 1000):
        it = self._c(self.client.query_iterator, self.name, batch_size=batch, filter=flt, output_fields=fields)
        try:
            while True:
                try:
                    rows = it.next()
                except Exception as exc:
                    raise _unavailable(self.settings, exc) from None
                if not rows:
                    break
                yield from rows
        finally:
            it.close()

    def size_bytes(self) -> int:
        return int(self.props.get("qa.bytes", 0))

    def info(self) -> dict:
        return {
            "generation": self.generation,
            "model": self.model,
            "model_identity": self.model_identity,
            "documents": self.n_docs,
            "chunks": self.n_chunks,
            "index_bytes": self.size_bytes(),
            "chunker": self.props.get("qa.chunker"),
            "updated_at": float(self.props.get("qa.updated_at", 0) or 0),
            "last_ingest": json.loads(self.props.get("qa.last_ingest", "null")),
            "store": {"kind": "milvus", "uri": self.settings.milvus_uri, "alias": self.alias, "collection": self.name},
        }


def _row(r: dict) -> ChunkRow:
    return ChunkRow(
        int(r["id"]), r["key"], r["doc_path"], r["collection"], r["title"], json.loads(r["doc_meta"] or "{}"),
        r["heading"], r["text"], int(r["char_start"]), int(r["char_end"]), int(r["line_start"]), int(r["line_end"]),
        bool(r["is_stub"]), r["kind"], r["source"],
    )


def check_schema(desc: dict, props: dict[str, str], where: str) -> None:
    """Refuse a collection whose keyword search would silently return nothing (or other terms)."""
    fields = {f["name"]: f for f in desc.get("fields", [])}
    missing = [n for n in FIELDS if n not in fields]
    if missing:
        raise StoreSchemaError(f"{where} lacks the fields {', '.join(missing)}: it was not written by "
                               "`qa ingest`; publish again with `QA_VECTOR_STORE=milvus qa ingest`")
    for name, kind in FIELDS.items():
        got = getattr(fields[name].get("type"), "name", str(fields[name].get("type")))
        if got != kind:
            raise StoreSchemaError(f"{where}: field {name} is {got}, expected {kind}")
    params = fields["lex"].get("params") or {}
    if str(params.get("enable_analyzer", "")).lower() != "true":
        raise StoreSchemaError(f"{where}: field lex has no analyzer (enable_analyzer is off): BM25 would find "
                               "nothing; publish again with `QA_VECTOR_STORE=milvus qa ingest --rebuild`")
    analyzer = params.get("analyzer_params") or "{}"
    analyzer = json.loads(analyzer) if isinstance(analyzer, str) else analyzer
    tok = analyzer.get("tokenizer", analyzer.get("type", "standard"))
    tok = tok.get("type") if isinstance(tok, dict) else tok
    if tok not in ANALYZERS:
        raise StoreSchemaError(f"{where}: field lex uses the {tok!r} analyzer, which does not keep our encoded "
                               f"tokens whole (use one of {', '.join(ANALYZERS)}); publish again")
    bm25 = [fn for fn in desc.get("functions", [])
            if getattr(fn.get("type"), "name", str(fn.get("type"))) == "BM25"
            and list(fn.get("input_field_names", [])) == ["lex"] and list(fn.get("output_field_names", [])) == ["sparse"]]
    if not bm25:
        raise StoreSchemaError(f"{where} has no BM25 function from lex to sparse: keyword search would return "
                               "nothing; publish again with `QA_VECTOR_STORE=milvus qa ingest --rebuild`")
    if props.get("qa.lex_encoding") != lexcodec.VERSION or props.get("qa.lexical") != lexical.VERSION:
        raise StoreSchemaError(
            f"{where} holds lexical tokens {props.get('qa.lexical')}/{props.get('qa.lex_encoding')}, this code makes "
            f"{lexical.VERSION}/{lexcodec.VERSION}: re-ingest with `QA_VECTOR_STORE=milvus qa ingest --rebuild`"
        )
    dim = int((fields["vec"].get("params") or {}).get("dim", 0))
    if str(dim) != props.get("qa.dim"):
        raise StoreSchemaError(f"{where}: vector dimension {dim} != recorded {props.get('qa.dim')}")


# ---- writing ------------------------------------------------------------------------------


def _schema(pm, dim: int):
    DT = pm.DataType
    s = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DT.INT64, is_primary=True)
    # a partition key: a filtered question only reads its collection's partitions
    s.add_field("collection", DT.VARCHAR, max_length=512, is_partition_key=True)
    for name in ("doc_path", "source", "title", "doc_meta", "key", "heading", "text", "kind"):
        s.add_field(name, DT.VARCHAR, max_length=VARCHAR_MAX)
    for name in ("doc_chunks", "ord", "char_start", "char_end", "line_start", "line_end"):
        s.add_field(name, DT.INT64)
    s.add_field("ingested_at", DT.DOUBLE)
    s.add_field("is_stub", DT.BOOL)
    s.add_field("lex", DT.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True,
                analyzer_params={"tokenizer": "standard"})
    s.add_field("sparse", DT.SPARSE_FLOAT_VECTOR)
    s.add_field("vec", DT.FLOAT_VECTOR, dim=dim)
    s.add_function(pm.Function(name="lex_bm25", function_type=pm.FunctionType.BM25,
                               input_field_names=["lex"], output_field_names=["sparse"]))
    return s


def _index_params(client):
    ip = client.prepare_index_params()
    # exact search, like the FAISS default below 200k passages; HNSW for bigger stores (docs/milvus.md)
    ip.add_index("vec", index_type="FLAT", metric_type="IP")
    # FTS5's bm25() defaults, so keyword scores rank like the FAISS path
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                 params={"bm25_k1": 1.2, "bm25_b": 0.75})
    return ip


def _fit(text: str, limit: int = VARCHAR_MAX) -> str:
    b = text.encode("utf-8")
    if len(b) <= limit:
        return text
    return b[:limit].decode("utf-8", "ignore").rsplit(" ", 1)[0]


def _rows(conn: sqlite3.Connection, batch: int):
    cur = conn.execute(
        "SELECT c.id, d.collection, d.path, d.source, d.title, d.meta, d.n_chunks, d.ingested_at, c.key, c.ord, "
        "c.heading, c.text, c.start, c.end, c.line_start, c.line_end, c.is_stub, c.kind, f.tokens, c.vec "
        "FROM chunks c JOIN documents d ON d.id = c.doc_id JOIN chunks_fts f ON f.rowid = c.id ORDER BY c.id"
    )
    while True:
        rows = cur.fetchmany(batch)
        if not rows:
            return
        out = []
        for r in rows:
            vec = np.frombuffer(r[19], dtype=np.float32)
            out.append({
                "id": r[0], "collection": r[1], "doc_path": r[2], "source": r[3], "title": r[4], "doc_meta": r[5],
                "doc_chunks": r[6], "ingested_at": float(r[7]), "key": r[8], "ord": r[9], "heading": r[10],
                "text": r[11], "char_start": r[12], "char_end": r[13], "line_start": r[14], "line_end": r[15],
                "is_stub": bool(r[16]), "kind": r[17], "lex": _fit(lexcodec.document(r[18].split())),
                "vec": vec,
            })
        yield out


def _row_bytes(row: dict) -> int:
    strings = sum(len(str(row[k]).encode("utf-8")) for k in ("collection", "doc_path", "source", "title", "doc_meta",
                                                              "key", "heading", "text", "kind", "lex"))
    return strings + 8 * 8 + 1 + row["vec"].nbytes


def local_generation_dir(index_dir: Path) -> Path | None:
    from qa.store import current_generation

    name = current_generation(Path(index_dir))
    return Path(index_dir) / name if name else None


def publish_to_milvus(generation_dir: Path, settings: Settings, report: dict | None = None) -> dict:
    """Copy one local generation into a new Milvus collection and move the alias to it.

    Skips (one call) when the alias already serves this local generation, so re-ingesting
    an unchanged corpus writes nothing.  Returns what was done, for the ingest report."""
    t0 = time.perf_counter()
    pm = _pymilvus()
    generation_dir = Path(generation_dir)
    conn = connect(generation_dir / DB_NAME, readonly=True)
    try:
        meta = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}
        local = generation_dir.name
        source_id = f"{local}@{meta.get('updated_at', '')}"
        client = client_for(settings)
        alias = settings.milvus_collection
        served = _alias_target(client, settings)
        if served is not None:
            props = _call(settings, client.describe_collection, served).get("properties") or {}
            if props.get("qa.source") == source_id:
                return {"published": False, "reason": "already served", "collection": served, "alias": alias,
                        "seconds": round(time.perf_counter() - t0, 3)}
        existing = _call(settings, client.list_collections)
        served_n = _number_of(served, alias) if served else None
        for c in existing:  # left by a publish that died before moving the alias: never served
            n = _number_of(c, alias)
            if n is not None and c != served and (served_n is None or n > served_n):
                _call(settings, client.drop_collection, c)
        numbers = [n for n in (_number_of(c, alias) for c in existing) if n is not None]
        number = max([generation_number(local), *(n + 1 for n in numbers)])
        name = collection_name(alias, number)
        n_chunks = int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        n_docs = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
        dim = int(meta["dim"])
        last = conn.execute("SELECT started_at, finished_at, stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        last_ingest = None
        if last:
            stats = json.loads(last[2])
            last_ingest = {"started_at": last[0], "finished_at": last[1],
                           **{k: (len(v) if isinstance(v, list) else v) for k, v in stats.items()}}
        props = {
            "qa.schema": SCHEMA_VERSION, "qa.generation": f"gen-{number:06d}", "qa.local_generation": local,
            "qa.source": source_id, "qa.model": meta.get("model", "?"),
            "qa.model_identity": meta.get("model_identity", "?"), "qa.dim": str(dim),
            "qa.chunker": meta.get("chunker", ""), "qa.lexical": meta.get("lexical", ""),
            "qa.lex_encoding": lexcodec.VERSION, "qa.updated_at": meta.get("updated_at", "0"),
            "qa.chunks": str(n_chunks), "qa.documents": str(n_docs),
            "qa.last_ingest": json.dumps(last_ingest, ensure_ascii=False),
        }
        _call(settings, client.create_collection, name, schema=_schema(pm, dim), index_params=_index_params(client),
              consistency_level="Bounded", properties=props, timeout=max(settings.milvus_timeout_s, 60.0))
        written, nbytes, last_insert = 0, 0, time.monotonic()
        for rows in _rows(conn, settings.milvus_batch):
            nbytes += sum(_row_bytes(r) for r in rows)
            for r in rows:
                r["vec"] = r["vec"].tolist()
            _call(settings, client.insert, name, rows, timeout=max(settings.milvus_timeout_s, 120.0))
            last_insert = time.monotonic()
            written += len(rows)
            fault_point("milvus-mid-insert")
        _call(settings, client.flush, name, timeout=max(settings.milvus_timeout_s, 300.0))
        got = _count(client, settings, name)
        if got != n_chunks:
            raise StoreUnavailable(f"Milvus collection {name} holds {got} rows after writing {n_chunks}; "
                                   "the alias was not moved")
        _call(settings, client.alter_collection_properties, name,
              properties={"qa.bytes": str(nbytes), "qa.published_at": str(time.time())})
        # Searches read with Bounded consistency (Milvus's default, the fast one): rows younger than
        # its staleness window (5 s by default) may be invisible to them, so the alias moves only
        # once the last insert is older than that.  milvus-lite has no such window.
        if not _is_lite(client, settings):
            time.sleep(max(0.0, BOUNDED_STALENESS_S - (time.monotonic() - last_insert)))
        fault_point("milvus-before-alias")
        if served is None:
            _call(settings, client.create_alias, name, alias)
        else:
            _call(settings, client.alter_alias, name, alias)
        log.info("Milvus alias %s -> %s (%d passages)", alias, name, n_chunks)
        dropped = prune(client, settings, keep={name, served})
        return {"published": True, "collection": name, "alias": alias, "rows": written, "bytes": nbytes,
                "previous": served, "dropped": dropped, "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        conn.close()


def _is_lite(client, settings: Settings) -> bool:
    try:
        return "lite" in str(client.get_server_version(timeout=settings.milvus_timeout_s)).lower()
    except Exception:
        return False


def _count(client, settings: Settings, name: str) -> int:
    res = _call(settings, client.query, name, filter="id >= 0", output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"])


def prune(client, settings: Settings, keep: set[str | None]) -> list[str]:
    """Drop our collections that the alias left more than the grace period ago (questions
    still in flight on them have long finished)."""
    alias = settings.milvus_collection
    names = sorted((n, c) for c in _call(settings, client.list_collections)
                   if (n := _number_of(c, alias)) is not None)
    served = _alias_target(client, settings)
    served_n = _number_of(served, alias) if served else None
    published: dict[str, float] = {}
    dropped = []
    now = time.time()
    for i, (n, c) in enumerate(names):
        if c in keep or c == served:
            continue
        if served_n is not None and n > served_n:
            continue  # being written by a publish right now, or left by one: publish_to_milvus drops it
        successor = names[i + 1][1] if i + 1 < len(names) else None
        if successor is None:
            continue
        if successor not in published:
            props = _call(settings, client.describe_collection, successor).get("properties") or {}
            published[successor] = float(props.get("qa.published_at", props.get("qa.updated_at", now)))
        if now - published[successor] >= settings.milvus_grace_s:
            _call(settings, client.drop_collection, c)
            dropped.append(c)
    return dropped
