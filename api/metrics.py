"""Prometheus metrics at ``GET /metrics`` (text exposition format).

* ``qa_http_requests_total{method,route,status}``: requests by route template (``/ask``,
  ``/static/{name}``; ``unmatched`` for 404s, so random URLs cannot blow up the label set);
* ``qa_http_request_duration_seconds{method,route}``: latency histogram (whole request, body
  streaming included);
* ``qa_http_requests_in_progress``, ``qa_questions_pending`` (queued or being answered);
* ``qa_rejected_total{reason}``: 401/413/408/429/503-busy refusals;
* ``qa_embed_batch_size``: questions per embedding batch (micro-batching);
* ``qa_index_generation`` (the number in ``gen-000042``), ``qa_index_passages``,
  ``qa_index_documents``, ``qa_index_bytes``, ``qa_index_info{generation,model}``,
  ``qa_ready``: read from the served index at scrape time (a scrape never loads anything);
* with an LLM writer (QA_LLM_BASE_URL): ``qa_llm_request_duration_seconds`` (histogram),
  ``qa_llm_tokens_total{kind}`` (prompt / completion), ``qa_llm_fallbacks_total{reason}``,
  ``qa_llm_sentences_total`` and ``qa_llm_sentences_supported_total`` (verification).

Each app has its own registry (tests create many apps in one process).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from qa.store import generation_number

LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IndexCollector:
    """Index gauges computed from whatever the holder has loaded, at scrape time."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        holder = getattr(self.app.state, "holder", None)
        bot = holder.loaded if holder is not None else None
        ready = GaugeMetricFamily("qa_ready", "1 when the index is loaded and the model is warm")
        ready.add_metric([], 1.0 if holder is not None and holder.ready else 0.0)
        yield ready
        if bot is None:
            return
        r = bot.reader
        for name, doc, value in (
            ("qa_index_generation", "number of the served index generation", generation_number(r.generation)),
            ("qa_index_passages", "passages in the served index", r.n_chunks),
            ("qa_index_documents", "documents in the served index", r.n_docs),
            ("qa_index_bytes", "bytes on disk of the served generation (SQLite + FAISS)", _size(r)),
            ("qa_index_age_seconds", "seconds since the served generation was opened", _age(r)),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g
        info = InfoMetricFamily("qa_index", "the served generation and its embedding model")
        info.add_metric([], {"generation": r.generation, "model": r.model})
        yield info


class LLMCollector:
    """The LLM writer's counters (qa.writers.grounded.LLMStats), read at scrape time."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        holder = getattr(self.app.state, "holder", None)
        bot = holder.loaded if holder is not None else None
        stats = getattr(getattr(bot, "writer", None), "stats", None)
        if stats is None:
            return
        from qa.writers.grounded import LATENCY_BUCKETS

        with stats._lock:
            buckets = [(str(b), n) for b, n in zip(LATENCY_BUCKETS, stats.latency_buckets)] + [("+Inf", stats.calls)]
            h = HistogramMetricFamily("qa_llm_request_duration_seconds", "LLM call latency (answers and failures)")
            h.add_metric([], buckets, stats.latency_sum)
            yield h
            tok = CounterMetricFamily("qa_llm_tokens", "tokens reported by the LLM endpoint", labels=["kind"])
            tok.add_metric(["prompt"], stats.prompt_tokens)
            tok.add_metric(["completion"], stats.completion_tokens)
            yield tok
            fb = CounterMetricFamily("qa_llm_fallbacks", "extractive answers given instead, by reason", labels=["reason"])
            for reason, n in sorted(stats.fallbacks.items()):
                fb.add_metric([reason], n)
            yield fb
            yield CounterMetricFamily("qa_llm_sentences", "sentences of LLM answers verified", value=stats.sentences)
            yield CounterMetricFamily("qa_llm_sentences_supported", "sentences verified as supported", value=stats.supported)


def _size(reader) -> int:
    try:
        return reader.size_bytes()
    except OSError:  # pruned while we looked
        return 0


def _age(reader) -> float:
    import time

    return max(0.0, time.time() - reader.opened_at)


class Metrics:
    def __init__(self, app: FastAPI):
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "qa_http_requests", "HTTP requests by route template and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "qa_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_progress = Gauge("qa_http_requests_in_progress", "HTTP requests being served", registry=r)
        self.pending = Gauge("qa_questions_pending", "questions queued or being answered", registry=r)
        self.rejected = Counter("qa_rejected", "requests refused before answering, by reason", ["reason"], registry=r)
        self.batch = Histogram(
            "qa_embed_batch_size", "questions per query-embedding batch",
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=r,
        )
        self.index_swaps = Counter("qa_index_swaps", "times a newer index generation was picked up", registry=r)
        r.register(IndexCollector(app))
        r.register(LLMCollector(app))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def install(app: FastAPI) -> Metrics:
    app.state.metrics = Metrics(app)
    return app.state.metrics


def router(protect: list) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/metrics", include_in_schema=False, dependencies=protect)
    def metrics(request: Request) -> Response:  # sync: a scrape may open a new generation, off the event loop
        """Prometheus metrics (text format 0.0.4)."""
        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return r

