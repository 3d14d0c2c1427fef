"""Deployment files checked without Docker or a cluster: the Dockerfile's commands exist in the
package, the entrypoint ingests only when it should, the Kubernetes manifests parse and point
their probes, ports and commands at things that exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
K8S = ROOT / "deploy" / "k8s"
QA = [sys.executable, "-m", "qa.cli"] if not (Path(sys.executable).parent / "qa").exists() else [str(Path(sys.executable).parent / "qa")]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def manifests() -> dict[str, dict]:
    docs = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs[f"{d['kind']}/{d.get('metadata', {}).get('name', f.stem)}"] = d
    return docs


@pytest.fixture(scope="module")
def app_paths(tmp_path_factory):
    """The paths a probe may use: those the app answers with anything but 404 (no index needed)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from qa.config import Settings

    client = TestClient(create_app(Settings(index_dir=tmp_path_factory.mktemp("no-index"))))

    class Answered:
        def __contains__(self, path):
            return client.get(path).status_code != 404

    return Answered()


def qa_subcommands(text: str) -> set[str]:
    return set(re.findall(r"(?:^|[\s\"'\[,])qa\s+([a-z][a-z-]*)", text))


# ---- Dockerfile ------------------------------------------------------------------------------------
def test_dockerfile_builds_a_cpu_image_with_torch_pinned_before_the_package():
    ins = dockerfile_instructions()
    assert ins[0] == ("FROM", "python:3.11-slim")
    runs = [a for i, a in ins if i == "RUN"]
    torch_at = next(n for n, r in enumerate(runs) if "torch==" in r)
    pkg_at = next(n for n, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch_at < pkg_at
    torch_run = runs[torch_at]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_run
    pinned = re.search(r"torch==([\d.]+)", torch_run).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text()
    lo, hi = re.search(r'"torch>=([\d.]+),<([\d.]+)"', pyproject).groups()
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(lo) <= as_tuple(pinned) < as_tuple(hi)  # the pin satisfies the package's own bound


def test_dockerfile_copies_only_existing_sources_and_materialises_the_model():
    ins = dockerfile_instructions()
    for i, a in ins:
        if i == "COPY":
            *srcs, _ = shlex.split(a)
            for s in srcs:
                assert (ROOT / s).exists(), s
    model_run = next(a for i, a in ins if i == "RUN" and "ensure_default_model" in a)
    code = re.search(r'python -c "(.+)"', model_run).group(1)
    compile(code, "<dockerfile>", "exec")
    from qa.e5convert import ensure_default_model  # noqa: F401 - the names the RUN line uses exist
    from qa.config import Settings

    assert "cache_dir" in Settings.model_fields
    export_run = next(a for i, a in ins if i == "RUN" and "get_embedder" in a)  # the ONNX export, at build time
    compile(re.search(r'python -c "(.+)"', export_run).group(1), "<dockerfile>", "exec")
    runs = [a for i, a in ins if i == "RUN"]
    assert runs.index(model_run) < runs.index(export_run)
    from qa.embeddings import DEFAULT_BACKEND, get_embedder  # noqa: F401

    assert DEFAULT_BACKEND == "onnx"
    env = " ".join(a for i, a in ins if i == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "QA_CACHE_DIR=" in env  # offline, model where the build put it


def test_dockerfile_runs_the_entrypoint_as_an_unprivileged_user_on_the_exposed_port():
    ins = dict((i, a) for i, a in dockerfile_instructions() if i in ("ENTRYPOINT", "CMD", "EXPOSE", "USER"))
    assert json.loads(ins["ENTRYPOINT"]) == ["qa-entrypoint"] and json.loads(ins["CMD"]) == ["serve"]
    assert ins["USER"] not in ("root", "0") and ins["EXPOSE"] == "8000"
    copy = next(a for i, a in dockerfile_instructions() if i == "COPY" and "docker-entrypoint.sh" in a)
    assert copy.split()[-1] == "/usr/local/bin/qa-entrypoint"
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_every_qa_command_in_the_image_and_manifests_exists():
    texts = [DOCKERFILE.read_text(), ENTRYPOINT.read_text(), *(f.read_text() for f in K8S.glob("*.yaml"))]
    subs = set().union(*(qa_subcommands(t) for t in texts))
    assert {"ingest"} <= subs
    for sub in sorted(subs):
        r = subprocess.run([*QA, sub, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (sub, r.stderr)
    # and the options the image passes to them
    help_ingest = subprocess.run([*QA, "ingest", "--help"], capture_output=True, text=True, timeout=60).stdout
    for opt in ("--index", "--wait"):
        assert opt in help_ingest


def _fake_bin(tmp: Path) -> Path:
    """`qa` and `uvicorn` stand-ins that record how they were called (and make an index)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    log = tmp / "calls.log"
    (bin_dir / "qa").write_text(
        f'#!/bin/sh\necho "qa $*" >> {log}\n'
        'if [ "$1" = ingest ]; then mkdir -p "$4/gen-000001" && echo gen-000001 > "$4/CURRENT"; fi\n'
    )
    (bin_dir / "uvicorn").write_text(f'#!/bin/sh\necho "uvicorn $* trusted=[$QA_TRUSTED_PROXIES]" >> {log}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _entrypoint(tmp: Path, *args: str, **env: str) -> list[str]:
    bin_dir = _fake_bin(tmp) if not (tmp / "bin").exists() else tmp / "bin"
    (tmp / "calls.log").unlink(missing_ok=True)
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    subprocess.run(["sh", str(ENTRYPOINT), *args], env=full_env, check=True, capture_output=True, timeout=30)
    return (tmp / "calls.log").read_text().splitlines()


def test_entrypoint_ingests_only_when_there_is_no_index_and_then_serves(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    env = {"QA_CORPUS_DIR": str(corpus), "QA_INDEX_DIR": str(index)}
    calls = _entrypoint(tmp_path, **env)
    assert calls[0] == f"qa ingest {corpus} --index {index}"
    assert calls[1].startswith("uvicorn api.main:create_app --factory --http api.server:HttpProtocol --host 0.0.0.0 --port 8000")
    assert "--no-access-log" in calls[1] and calls[1].endswith("trusted=[]")  # no proxy trusted by default
    calls = _entrypoint(tmp_path, "serve", FORWARDED_ALLOW_IPS="10.0.0.5", **env)  # the older variable still works
    assert calls[0].endswith("trusted=[10.0.0.5]")
    calls = _entrypoint(tmp_path, "serve", QA_TRUSTED_PROXIES="10.0.0.6", **env)
    assert calls[0].endswith("trusted=[10.0.0.6]")
    calls = _entrypoint(tmp_path, "serve", **env)  # the index exists now: straight to serving
    assert len(calls) == 1 and calls[0].startswith("uvicorn ")
    calls = _entrypoint(tmp_path, "ingest", "--rebuild", **env)
    assert calls == [f"qa ingest {corpus} --index {index} --wait 600 --rebuild"]
    calls = _entrypoint(tmp_path, "qa", "stats", **env)
    assert calls == ["qa stats"]


def test_entrypoint_serves_without_ingesting_from_a_read_only_volume(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions; a read-only file system it does not
            ro = Path("/proc/sys")
            if os.access(ro, os.W_OK):
                pytest.skip("no read-only folder to test with")
        calls = _entrypoint(tmp_path, QA_CORPUS_DIR=str(corpus), QA_INDEX_DIR=str(ro / "index"))
        assert len(calls) == 1 and calls[0].startswith("uvicorn ")
    finally:
        if ro != Path("/proc/sys"):
            os.chmod(ro, 0o755)
        else:
            os.chmod(tmp_path / "ro", 0o755)


def test_uvicorn_target_of_the_entrypoint_is_the_app_factory():
    target = re.search(r"uvicorn (\S+) --factory", ENTRYPOINT.read_text()).group(1)
    module, _, attr = target.partition(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), attr))
    protocol = re.search(r"--http (\S+)", ENTRYPOINT.read_text()).group(1)
    module, _, attr = protocol.partition(":")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert issubclass(getattr(importlib.import_module(module), attr), HttpToolsProtocol)


def test_dockerignore_keeps_indexes_and_environments_out_but_not_the_sources():
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    assert {".venv", ".git", "index", "tests"} <= ignored
    for needed in ("qa", "api", "pyproject.toml", "README.md", "deploy/docker-entrypoint.sh"):
        assert needed not in ignored


# ---- Kubernetes ------------------------------------------------------------------------------------------
def test_manifests_parse_and_kustomization_lists_them_all():
    docs = manifests()
    assert {"ConfigMap/zh-qa-config", "PersistentVolumeClaim/zh-qa-data", "Job/zh-qa-ingest",
            "Deployment/zh-qa", "Service/zh-qa"} <= set(docs)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(f.name for f in K8S.glob("*.yaml") if f.name != "kustomization.yaml")


def _container(doc: dict) -> dict:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def test_probes_point_at_the_real_health_endpoints(app_paths):
    assert "/no/such/route" not in app_paths  # the check can fail
    c = _container(manifests()["Deployment/zh-qa"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] in app_paths, get
        assert get["port"] in {p["name"] for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}
    annotations = manifests()["Deployment/zh-qa"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in app_paths


def test_ports_agree_between_image_deployment_and_service():
    docs = manifests()
    c = _container(docs["Deployment/zh-qa"])
    (port,) = c["ports"]
    expose = next(a for i, a in dockerfile_instructions() if i == "EXPOSE")
    assert str(port["containerPort"]) == expose == docs["Deployment/zh-qa"]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    svc = docs["Service/zh-qa"]["spec"]
    assert svc["ports"][0]["targetPort"] == port["name"]
    labels = docs["Deployment/zh-qa"]["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["selector"].items())
    assert docs["Deployment/zh-qa"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_volumes_resources_and_settings_are_wired(app_paths):
    from qa.config import Settings

    docs = manifests()
    for name in ("Deployment/zh-qa", "Job/zh-qa-ingest"):
        spec = docs[name]["spec"]["template"]["spec"]
        c = _container(docs[name])
        volumes = {v["name"]: v for v in spec["volumes"]}
        for m in c["volumeMounts"]:
            assert m["name"] in volumes
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "zh-qa-data"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["envFrom"][0]["configMapRef"]["name"] == "zh-qa-config"
    server = _container(docs["Deployment/zh-qa"])
    assert next(m for m in server["volumeMounts"] if m["name"] == "data")["readOnly"] is True
    job = _container(docs["Job/zh-qa-ingest"])
    assert job["command"][:2] == ["qa", "ingest"] and "--index" in job["command"]
    # every QA_* setting in the ConfigMap is a real setting (a typo would be silently ignored)
    for key in docs["ConfigMap/zh-qa-config"]["data"]:
        if key.startswith("QA_"):
            assert key[3:].lower() in Settings.model_fields, key
    secret_env = next(e for e in server["env"] if e["name"] == "QA_API_KEYS")
    assert secret_env["valueFrom"]["secretKeyRef"]["name"] == "zh-qa-api-keys"


def test_memory_request_covers_the_measured_server(tmp_path):
    """The request is sized from bench/load.py: at least the peak RSS it measured."""
    results = ROOT / "bench" / "results" / "load.json"
    if not results.exists():
        pytest.skip("run bench/load.py first")
    data = json.loads(results.read_text())
    peak = max(lv["server"]["peak_rss_mb"] or 0 for lv in data["levels"])
    mem = _container(manifests()["Deployment/zh-qa"])["resources"]["requests"]["memory"]
    value = int(re.match(r"(\d+)", mem).group(1)) * (1024 if mem.endswith("Gi") else 1)
    assert value >= peak, (mem, peak)
