"""The deployment files, checked offline: Kubernetes manifests and pod fragments against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields fail), the compose instance's dagster.yaml against
Dagster's instance schema, and the names that compose.yaml and dagster.yaml must agree on.

Helm is not available here, so the chart's values are checked through what they put into Kubernetes
objects (the run launcher's pod and job config, the code location's volumes and env).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "docker" / "k8s"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes release still maintained by the big cloud providers


def _kv():
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed "
                               "(pip install -e '.[dev]')")


def _validate(doc: dict) -> None:
    kv = _kv()
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as e:
        where = "/".join(str(p) for p in e.path)
        raise AssertionError(f"{doc['kind']} {doc['metadata'].get('name')}: {where}: {e.message}") from None


def _camel(value):
    """Dagster's k8s config takes snake_case or camelCase keys; the Kubernetes schema only camelCase."""
    if isinstance(value, dict):
        return {(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k) if "/" not in k else k): _camel(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _pod(container: dict, pod_spec: dict | None = None, name: str = "run") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {**_camel(pod_spec or {}),
                     "containers": [{"name": "dagster", "image": "mmg4:cuda", **_camel(container)}]}}


def _kustomize_resources() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def test_strict_validation_catches_an_unknown_field():
    with pytest.raises(AssertionError, match="nodeSelektor"):
        _validate(_pod({"resources": {}}, {"nodeSelektor": {"a": "b"}}))


def test_plain_manifests_are_valid_kubernetes():
    docs = _kustomize_resources()
    assert {d["kind"] for d in docs} >= {"Namespace", "Service", "StatefulSet", "PersistentVolumeClaim", "Job"}
    for doc in docs:
        _validate(doc)


def test_kustomize_renders_them_offline():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (only needed for this rendering check)")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(rendered) == len(_kustomize_resources())
    for doc in rendered:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "mmg4"
        _validate(doc)


def test_training_job_is_a_multi_node_gpu_job():
    job = next(d for d in _kustomize_resources() if d["kind"] == "Job")
    spec, container = job["spec"], job["spec"]["template"]["spec"]["containers"][0]
    nodes = spec["completions"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == nodes
    assert f"--nnodes={nodes}" in container["args"] and "--node-rank=$(JOB_COMPLETION_INDEX)" in container["args"]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert f"--nproc-per-node={gpus}" in container["args"]


def test_translation_run_tags_make_a_valid_one_gpu_pod():
    tags = yaml.safe_load((K8S / "run-tags.yaml").read_text())
    for name, tag in tags.items():
        config = tag["dagster-k8s/config"]
        assert set(config) <= {"container_config", "pod_spec_config", "pod_template_spec_metadata",
                               "job_spec_config", "job_metadata", "merge_behavior"}
        _validate(_pod(config["container_config"], config.get("pod_spec_config"), name=name))
    gpu = tags["translation"]["dagster-k8s/config"]["container_config"]["resources"]["limits"]["nvidia.com/gpu"]
    assert gpu == 1


def test_helm_values_put_valid_objects_into_kubernetes():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    run = launcher["runK8sConfig"]
    _validate(_pod(run["containerConfig"]))
    pod_spec = {**_pod(run["containerConfig"])["spec"], "restartPolicy": "Never"}
    _validate({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "run"},
               "spec": {**_camel(run["jobSpecConfig"]), "template": {"spec": pod_spec}}})
    [code] = values["dagster-user-deployments"]["deployments"]
    _validate(_pod({"env": code["env"], "volumeMounts": code["volumeMounts"], "resources": code["resources"]},
                   {"volumes": code["volumes"]}, name="code"))
    env = {e["name"]: e["value"] for e in code["env"]}
    assert env["MMG4_CONFIG"] == "configs/paper.yaml" and env["MMG4_MEMORY_URL"].startswith("postgresql+psycopg://")
    # the lake is mounted where the paper profile puts it, from the claim the manifests create
    paper = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    assert code["volumeMounts"][0]["mountPath"] == paper["lake_root"]
    claims = {d["metadata"]["name"] for d in _kustomize_resources() if d["kind"] == "PersistentVolumeClaim"}
    assert code["volumes"][0]["persistentVolumeClaim"]["claimName"] in claims
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and monitoring["freeSlotsAfterRunEndSeconds"] > 0


def test_compose_instance_config_is_valid_for_dagster(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(var, "x")
    config, _ = dagster_instance_config(str(ROOT / "docker"))  # raises on any unknown or mistyped key
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "dagster/partition"
    assert config["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}


def test_compose_and_its_instance_agree_on_names():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    instance = yaml.safe_load((ROOT / "docker" / "dagster.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    assert launcher["network"] == compose["networks"]["default"]["name"]
    lake_volume = launcher["container_kwargs"]["volumes"][0].split(":")[0]
    assert lake_volume == compose["volumes"]["lake"]["name"]
    env = compose["x-env"]
    missing = [v for v in launcher["env_vars"] if v not in env]
    assert not missing, f"run containers would lack {missing}"
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    workspace = yaml.safe_load((ROOT / "docker" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] in compose["services"] and str(grpc["port"]) in compose["services"]["code"]["command"]
