"""The FAISS index a generation is published with (``qa.store``): exact below a size where
brute force stays fast, approximate above.

Vectors are L2-normalised, so inner product is cosine.  Below ``APPROX_THRESHOLD``
passages an exact flat index answers in a few milliseconds on 2 cores; above it an
HNSW graph keeps latency flat with high recall (see bench/scale.py).
"""

from __future__ import annotations

import numpy as np

APPROX_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # recall@10 0.998 on real e5 vectors at 17k (bench/ann_real.py), 0.22 ms


def build_index(vectors: np.ndarray, ids: np.ndarray, approximate: bool | None = None):
    import faiss

    n, dim = vectors.shape if vectors.ndim == 2 else (0, vectors.shape[-1])
    if approximate is None:
        approximate = n > APPROX_THRESHOLD
    if approximate:
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        base = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(base)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index
