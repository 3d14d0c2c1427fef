"""Settings: the string switches are validated when the settings load (qa/config.py)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from qa import retrieval
from qa.config import Settings, describe_error

ROOT = Path(__file__).resolve().parents[1]

BAD = {
    "QA_FUSION": ("foo", "'weighted' or 'rrf'"),
    "QA_BACKEND": ("cuda", "'onnx', 'onnx-int8', 'openvino' or 'torch'"),
    "QA_PRECISION": ("fp16", "'auto', 'float32' or 'bfloat16'"),
    "QA_LOG_FORMAT": ("xml", "'text' or 'json'"),
    "QA_LOG_LEVEL": ("loud", "'critical', 'error', 'warning', 'info', 'debug' or 'trace'"),
    "QA_VECTOR_STORE": ("qdrant", "'faiss' or 'milvus'"),
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("QA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT / "tests")  # no .env file here
    return monkeypatch


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_switch_fails_at_load_naming_the_allowed_values(clean_env, name):
    value, allowed = BAD[name]
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert describe_error(info.value) == f"{name}={value!r}: Input should be {allowed}"


def test_switches_read_as_before(clean_env):
    for name, value in {"QA_FUSION": " RRF ", "QA_BACKEND": "ONNX-INT8", "QA_LOG_LEVEL": "WARN",
                        "QA_LOG_FORMAT": "JSON", "QA_PRECISION": "Float32", "QA_VECTOR_STORE": "FAISS"}.items():
        clean_env.setenv(name, value)
    s = Settings()
    assert (s.fusion, s.backend, s.log_level, s.log_format, s.precision, s.vector_store) == (
        "rrf", "onnx-int8", "warning", "json", "float32", "faiss")
    clean_env.setenv("QA_BACKEND", "")
    assert Settings().backend is None  # unset or empty: the default runtime (qa.embeddings.DEFAULT_BACKEND)


def test_retrieval_defaults_are_the_settings_defaults(clean_env):
    s = Settings()
    params = inspect.signature(retrieval.search).parameters
    assert (params["k"].default, params["candidates"].default, params["rrf_k"].default,
            params["fusion"].default, params["dense_weight"].default) == (
        s.top_k, s.candidates, s.rrf_k, s.fusion, s.dense_weight)


@pytest.mark.parametrize("args", [("stats",), ("ask", "什么是 Pod？", "--local"), ("ingest",)])
def test_cli_says_which_setting_is_wrong(tmp_path, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(QA_FUSION="foo", QA_INDEX_DIR=str(tmp_path / "index"), QA_CORPUS_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "QA_FUSION='foo': Input should be 'weighted' or 'rrf'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
