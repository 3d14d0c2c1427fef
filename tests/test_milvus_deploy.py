"""The Milvus variant of the Kubernetes manifests (deploy/k8s/milvus), checked without a cluster:
stateless replicas (≥ 3, no index volume), the ingest Job writing to Milvus, the token from a
Secret, every QA_* name a real setting, and Helm values for the official Milvus chart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MILVUS = ROOT / "deploy" / "k8s" / "milvus"


def manifests() -> dict[str, dict]:
    docs = {}
    for f in sorted(MILVUS.glob("*.yaml")):
        if f.name in ("kustomization.yaml", "milvus-values.yaml"):
            continue
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs[f"{d['kind']}/{d['metadata']['name']}"] = d
    return docs


def container(doc: dict) -> dict:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def test_kustomization_lists_every_manifest():
    k = yaml.safe_load((MILVUS / "kustomization.yaml").read_text())
    assert sorted(k["resources"]) == sorted(
        f.name for f in MILVUS.glob("*.yaml") if f.name not in ("kustomization.yaml", "milvus-values.yaml")
    )
    assert {"Deployment/zh-qa", "Job/zh-qa-ingest", "Secret/zh-qa-milvus", "ConfigMap/zh-qa-milvus-config",
            "Service/zh-qa", "PodDisruptionBudget/zh-qa"} <= set(manifests())


def test_servers_are_stateless_replicas_on_milvus():
    docs = manifests()
    dep = docs["Deployment/zh-qa"]
    assert dep["spec"]["replicas"] >= 3
    spec = dep["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in spec.get("volumes", []))  # no index volume
    c = container(dep)
    assert {m["mountPath"] for m in c.get("volumeMounts", [])} <= {"/tmp"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # the probe waits longer than one Milvus call, so a Milvus outage reads as 503, not as a probe timeout
    cfg = docs["ConfigMap/zh-qa-milvus-config"]["data"]
    assert c["readinessProbe"]["timeoutSeconds"] > float(cfg["QA_MILVUS_TIMEOUT_S"])
    pdb = docs["PodDisruptionBudget/zh-qa"]["spec"]
    assert pdb["minAvailable"] < dep["spec"]["replicas"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service/zh-qa"]["spec"]["selector"].items() <= labels.items()


def test_token_comes_from_the_secret_and_settings_are_real():
    from qa.config import Settings

    docs = manifests()
    cfg = docs["ConfigMap/zh-qa-milvus-config"]["data"]
    assert cfg["QA_VECTOR_STORE"] == "milvus" and cfg["QA_MILVUS_URI"].startswith("http")
    assert "QA_MILVUS_TOKEN" not in cfg
    for key in cfg:
        if key.startswith("QA_"):
            assert key[3:].lower() in Settings.model_fields, key
    Settings(**{k[3:].lower(): v for k, v in cfg.items() if k.startswith("QA_")})  # the values validate
    assert "token" in docs["Secret/zh-qa-milvus"]["stringData"]
    for name in ("Deployment/zh-qa", "Job/zh-qa-ingest"):
        c = container(docs[name])
        assert c["envFrom"][0]["configMapRef"]["name"] == "zh-qa-milvus-config"
        tok = next(e for e in c["env"] if e["name"] == "QA_MILVUS_TOKEN")
        assert tok["valueFrom"]["secretKeyRef"] == {"name": "zh-qa-milvus", "key": "token"}


def test_ingest_job_builds_locally_and_publishes_to_milvus():
    docs = manifests()
    job = docs["Job/zh-qa-ingest"]
    c = container(job)
    assert c["command"][:2] == ["qa", "ingest"] and "--index" in c["command"]
    index = c["command"][c["command"].index("--index") + 1]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert any(index.startswith(p) for p in mounts)
    vols = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    claim = vols[mounts["/data"]]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in docs


def test_qa_commands_in_the_manifests_exist():
    import subprocess

    for f in MILVUS.glob("*.yaml"):
        for cmd in set(re.findall(r'\["qa",\s*"([a-z-]+)"', f.read_text())) | set(re.findall(r'args: \["([a-z-]+)"\]', f.read_text())):
            r = subprocess.run([sys.executable, "-m", "qa.cli", cmd, "--help"], capture_output=True, cwd=ROOT)
            assert r.returncode == 0, (f.name, cmd)


def test_helm_values_for_the_official_chart():
    v = yaml.safe_load((MILVUS / "milvus-values.yaml").read_text())
    assert v["cluster"]["enabled"] is True
    major, minor = (int(x) for x in re.match(r"v(\d+)\.(\d+)", v["image"]["all"]["tag"]).groups())
    assert (major, minor) >= (2, 5)  # BM25 functions and analyzers
    user = yaml.safe_load(v["extraConfigFiles"]["user.yaml"])
    assert user["common"]["security"]["authorizationEnabled"] is True
    assert v["queryNode"]["replicas"] >= 2 and v["etcd"]["replicaCount"] >= 3
