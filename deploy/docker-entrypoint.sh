#!/bin/sh
# Entrypoint of the zh-qa image (see docs/service.md).
#
#   serve (default)  build the index from $QA_CORPUS_DIR if there is none yet and the index
#                    folder is writable, then serve on 0.0.0.0:$PORT. With a read-only index
#                    volume (Kubernetes: the ingest Job writes it) it only serves; /readyz is
#                    503 until an index is published, and the server picks it up by itself.
#   ingest [DIR] [qa ingest options]
#                    build or refresh the index (incremental) from DIR (default $QA_CORPUS_DIR);
#                    a running server switches to the new generation without a restart.
#   anything else    run as a command (qa stats, qa ask "...", sh, ...).
set -eu

: "${QA_INDEX_DIR:=/data/index}"
: "${QA_CORPUS_DIR:=/data/corpus}"
: "${PORT:=8000}"
# proxies whose X-Forwarded-For is believed: none unless configured (FORWARDED_ALLOW_IPS still read)
: "${QA_TRUSTED_PROXIES:=${FORWARDED_ALLOW_IPS:-}}"
export QA_INDEX_DIR QA_CORPUS_DIR QA_TRUSTED_PROXIES

cmd="${1:-serve}"
case "$cmd" in
  serve)
    if [ ! -s "$QA_INDEX_DIR/CURRENT" ]; then
      parent="$(dirname "$QA_INDEX_DIR")"
      if [ -d "$QA_CORPUS_DIR" ] && { [ -w "$QA_INDEX_DIR" ] || { [ ! -e "$QA_INDEX_DIR" ] && [ -w "$parent" ]; }; }; then
        echo "no index in $QA_INDEX_DIR yet: building it from $QA_CORPUS_DIR" >&2
        qa ingest "$QA_CORPUS_DIR" --index "$QA_INDEX_DIR"
      else
        echo "no index in $QA_INDEX_DIR and no writable corpus to build it from: serving anyway (/readyz is 503 until an ingest publishes one)" >&2
      fi
    fi
    # one process: it uses every core through its worker and embedding threads
    # api.server:HttpProtocol: header size/time limits, proxy trust from QA_TRUSTED_PROXIES
    exec uvicorn api.main:create_app --factory --http api.server:HttpProtocol --host 0.0.0.0 --port "$PORT" \
      --no-access-log --timeout-keep-alive 30 --timeout-graceful-shutdown 20
    ;;
  ingest)
    shift
    dir="$QA_CORPUS_DIR"
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir="$1"; shift; fi
    # --wait: a second ingest (a Job re-run, a CronJob) queues behind a running one
    exec qa ingest "$dir" --index "$QA_INDEX_DIR" --wait 600 "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
