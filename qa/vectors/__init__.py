"""Where the served index lives: FAISS + SQLite generation folders (default) or Milvus.

``qa.retrieval.search`` and ``qa.Assistant`` talk to a :class:`~qa.vectors.base.VectorIndex`;
``qa.vectors.factory.open_index`` picks the implementation from ``QA_VECTOR_STORE``.
"""
