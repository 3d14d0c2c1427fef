"""``QA_VECTOR_STORE`` -> the store that serves questions, and what ``qa ingest`` publishes to.

``faiss`` (default) needs nothing beyond the index folder.  ``milvus`` imports pymilvus
only here, when chosen, and says how to install it otherwise.
"""

from __future__ import annotations

from pathlib import Path

from qa.config import Settings


def open_index(settings: Settings, index_dir: Path | None = None):
    """The served generation as a :class:`qa.vectors.base.VectorIndex`."""
    if settings.vector_store == "milvus":
        from qa.vectors.milvus import MilvusReader

        return MilvusReader(settings)
    from qa.vectors.faiss import FaissIndex

    return FaissIndex.open(Path(index_dir or settings.index_dir))


def publish(index_dir: Path, settings: Settings) -> dict | None:
    """After an ingest: copy the local generation to the shared store (a no-op for FAISS, and
    for Milvus when it already serves this generation)."""
    if settings.vector_store != "milvus":
        return None
    from qa.vectors.milvus import local_generation_dir, publish_to_milvus

    gen = local_generation_dir(index_dir)
    return publish_to_milvus(gen, settings) if gen is not None else None
