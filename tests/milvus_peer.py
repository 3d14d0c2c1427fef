"""A real Milvus protocol peer for tests: milvus-lite's gRPC server as its own process on
127.0.0.1 (the client talks gRPC exactly as to Milvus Standalone), or the embedded ``.db``."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HAVE_MILVUS = all(importlib.util.find_spec(m) is not None for m in ("pymilvus", "milvus_lite"))
needs_milvus = pytest.mark.skipif(
    not HAVE_MILVUS, reason="the milvus extra is not installed: pip install -e '.[milvus]' (make test installs it)"
)


class MilvusLiteServer:
    """``milvus-lite server`` on a free port, stopped (or killed) by the test."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = Path(data_dir), port
        self.uri = f"http://127.0.0.1:{port}"
        self.log = self.data_dir.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "MilvusLiteServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        import grpc

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{self.port}")).result(timeout=0.5)
                return self
            except grpc.FutureTimeoutError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError("milvus-lite server did not start in time")

    def kill(self) -> None:
        """SIGKILL: the store vanishes as a crashed or partitioned Milvus would."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def milvus_settings(index_dir: Path, uri: str, alias: str = "zh_qa", **kw):
    from qa.config import Settings

    return Settings(index_dir=index_dir, vector_store="milvus", milvus_uri=uri, milvus_collection=alias, **kw)


def milvus_env(uri: str, alias: str = "zh_qa", **kw) -> dict:
    env = {"QA_VECTOR_STORE": "milvus", "QA_MILVUS_URI": uri, "QA_MILVUS_COLLECTION": alias}
    env.update({f"QA_{k.upper()}": str(v) for k, v in kw.items()})
    return env
