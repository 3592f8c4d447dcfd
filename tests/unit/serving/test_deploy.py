"""deploy/: the Kubernetes manifests parse and agree with each other, the Dockerfile and the server
(ports, probe paths that the app serves, image name, labels)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from pyflame_rt.serving import ModelRegistry, ServerConfig
from pyflame_rt.serving.app import create_app

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()


def manifests() -> dict[str, dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = [yaml.safe_load((K8S / name).read_text()) for name in kustomization["resources"]]
    assert {p.name for p in K8S.glob("*.yaml")} == {"kustomization.yaml", *kustomization["resources"]}
    return {d["kind"]: d for d in docs}


def served_paths() -> set[str]:
    return {route.path for route in create_app(ModelRegistry(), ServerConfig()).routes}


def test_every_kind_is_there_in_one_namespace():
    docs = manifests()
    assert set(docs) == {"Namespace", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    namespace = docs["Namespace"]["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for k, d in docs.items() if k != "Namespace")


def test_deployment_probes_ports_image_and_scrape_annotations():
    docs = manifests()
    pod = docs["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    port = int(docs["ConfigMap"]["data"]["HTTP_PORT"])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["image"].split(":")[0] == "pyflame-rt"
    paths = served_paths()
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in paths
        assert container[probe]["httpGet"]["port"] in ("http", port)
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] in paths
    assert int(annotations["prometheus.io/port"]) == port
    assert container["envFrom"][0]["configMapRef"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_service_and_autoscaler_point_at_the_deployment():
    docs = manifests()
    deployment = docs["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    spec = docs["HorizontalPodAutoscaler"]["spec"]
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_the_app_serves():
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) >= 2
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    (health,) = re.findall(r"^HEALTHCHECK .*\n\s+CMD .*?(/[\w/]+)'", DOCKERFILE, re.M)
    assert health in served_paths()
    port = manifests()["ConfigMap"]["data"]["HTTP_PORT"]
    assert f"EXPOSE {port}" in DOCKERFILE and f"HTTP_PORT={port}" in DOCKERFILE
    assert "pyflame-rt serve --model-repository" in DOCKERFILE
    for source in re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, re.M):
        if not source.startswith("$"):
            assert (ROOT / source).exists(), source
