"""The deployment files hold together: every Kubernetes manifest passes the official schemas (strict),
and the structure production relies on is there (probes, replicas, settings, wiring between objects)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
NAMESPACE = "loyalty-offers"
KUBERNETES_VERSIONS = ("1.28.0", "1.37.0")  # oldest and newest we claim (CronJob timeZone is GA from 1.27)
SECRETS_MADE_BY_HAND = {"mlflow-db"}  # docs/deploy.md says how

Doc = dict[str, Any]


def manifests() -> list[tuple[str, Doc]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


DOCS = manifests()


def find(kind: str, name: str) -> Doc:
    found = [doc for _, doc in DOCS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} manifests"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def workloads() -> Iterator[Doc]:
    yield from (doc for _, doc in DOCS if doc["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"})


def config_env(doc: Doc) -> dict[str, str]:
    """The environment a workload's first container gets: its ConfigMaps, then its own env values."""
    container = containers(doc)[0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= find("ConfigMap", source["configMapRef"]["name"])["data"]
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<from secret>")
    return env


def test_the_manifests_are_there() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS}
    assert {
        ("Namespace", NAMESPACE),
        ("Deployment", "offers-api"),
        ("Service", "offers-api"),
        ("HorizontalPodAutoscaler", "offers-api"),
        ("PodDisruptionBudget", "offers-api"),
        ("StatefulSet", "redis-cluster"),
        ("Job", "redis-cluster-create"),
        ("Deployment", "mlflow"),
        ("StatefulSet", "mlflow-postgres"),
        ("CronJob", "offers-weekly-training"),
    } <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("file", "doc"), DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_each_manifest_passes_the_kubernetes_schema(file: str, doc: Doc, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{file} {doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes {version}: {exc}")


@pytest.mark.parametrize(("file", "doc"), DOCS, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_everything_is_in_the_namespace_and_labelled(file: str, doc: Doc) -> None:
    meta = doc["metadata"]
    if doc["kind"] != "Namespace":
        assert meta.get("namespace") == NAMESPACE, file
    assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "loyalty-offers", file


def test_images_are_pinned() -> None:
    for doc in workloads():
        for container in containers(doc):
            image = container["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), image
            assert not image.endswith(":latest"), image


def test_selectors_match_their_pods_and_services_find_pods() -> None:
    pod_labels = []
    for doc in workloads():
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        labels = spec["template"]["metadata"]["labels"]
        pod_labels.append(labels)
        if "selector" in spec:
            assert spec["selector"]["matchLabels"].items() <= labels.items(), doc["metadata"]["name"]
    for _, doc in DOCS:
        if doc["kind"] in {"Service", "PodDisruptionBudget"}:
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert any(selector.items() <= labels.items() for labels in pod_labels), doc["metadata"]["name"]


def test_referenced_config_and_secrets_exist() -> None:
    for doc in workloads():
        for container in containers(doc):
            for source in container.get("envFrom", []):
                find("ConfigMap", source["configMapRef"]["name"])
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in SECRETS_MADE_BY_HAND, ref
        for volume in pod_spec(doc).get("volumes", []):
            if "configMap" in volume:
                find("ConfigMap", volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert all(f"secret generic {name}" in guide for name in SECRETS_MADE_BY_HAND)


def test_api_is_replicated_probed_and_configured() -> None:
    api = find("Deployment", "offers-api")
    assert api["spec"]["replicas"] > 1
    (container,) = containers(api)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] in port
    assert container["livenessProbe"]["httpGet"]["port"] in port
    assert {"requests", "limits"} <= container["resources"].keys()
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    env = config_env(api)
    assert env["OFFERS_ENVIRONMENT"] == "production"
    assert env["REDIS_URL"].startswith(("redis://", "rediss://"))
    assert env["MLFLOW_TRACKING_URI"].startswith(("http://", "https://"))
    assert env["PORT"] == str(port["http"])
    service = find("Service", "offers-api")
    assert service["spec"]["ports"][0]["targetPort"] in port


def test_the_autoscaler_scales_the_api_and_never_below_two() -> None:
    hpa = find("HorizontalPodAutoscaler", "offers-api")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "offers-api"}
    assert 1 < hpa["minReplicas"] <= hpa["maxReplicas"]
    assert find("PodDisruptionBudget", "offers-api")["spec"]["minAvailable"] < hpa["minReplicas"]


def test_redis_cluster_has_masters_and_replicas_and_the_api_treats_it_as_a_cluster() -> None:
    redis = find("StatefulSet", "redis-cluster")
    config = find("ConfigMap", "redis-cluster-config")["data"]["redis.conf"]
    assert "cluster-enabled yes" in config and "appendonly yes" in config
    assert "maxmemory-policy noeviction" in config
    headless = find("Service", redis["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    create = " ".join(containers(find("Job", "redis-cluster-create"))[0]["command"])
    replicas_per_master = int(re.search(r"--cluster-replicas (\d+)", create).group(1))  # type: ignore[union-attr]
    assert redis["spec"]["replicas"] == 3 * (1 + replicas_per_master)  # 3 masters
    assert re.search(rf"for i in {' '.join(str(i) for i in range(redis['spec']['replicas']))};", create)
    env = config_env(find("Deployment", "offers-api"))
    assert env["OFFERS_REDIS_CLUSTER"] == "true"
    assert env["REDIS_URL"] == "redis://redis-cluster:6379"
    find("Service", "redis-cluster")


def test_mlflow_server_uses_postgres_and_serves_its_artifacts() -> None:
    mlflow = find("Deployment", "mlflow")
    (container,) = containers(mlflow)
    args = container["args"]
    assert container["command"] == ["mlflow", "server"]
    assert "--serve-artifacts" in args and "--artifacts-destination" in args
    assert args[args.index("--backend-store-uri") + 1] == "$(MLFLOW_BACKEND_STORE_URI)"
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db"
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    tracking = config_env(find("Deployment", "offers-api"))["MLFLOW_TRACKING_URI"]
    assert is_allowed_host_header(allowed, tracking.split("://", 1)[1])  # what clients send as Host
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    port = container["ports"][0]["containerPort"]
    assert args[args.index("--port") + 1] == str(port) and tracking.endswith(f":{port}")
    postgres = find("StatefulSet", "mlflow-postgres")
    assert find("Service", "mlflow-postgres")["spec"]["ports"][0]["port"] == 5432
    assert "postgres" in containers(postgres)[0]["image"]


def test_weekly_training_trains_then_publishes_with_the_production_settings() -> None:
    cron = find("CronJob", "offers-weekly-training")
    _minute, _hour, day, month, weekday = cron["spec"]["schedule"].split()
    assert day == "*" and month == "*" and weekday != "*"  # once a week
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    command = " ".join(containers(cron)[0]["command"])
    assert command.index("offers train") < command.index("offers publish")
    assert "&&" in command  # no publish after a failed training
    env = config_env(cron)
    assert {"REDIS_URL", "MLFLOW_TRACKING_URI", "OFFERS_REDIS_CLUSTER"} <= env.keys()


# -- docker compose -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE.read_text())
    return doc


def command_words(service: Doc) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_compose_runs_the_whole_stack(compose: Doc) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "mlflow", "train", "api", "lb"} <= services.keys()
    for name, service in services.items():
        for needed in service.get("depends_on", []):
            assert needed in services, f"{name} depends on unknown {needed}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
            else:
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


def test_compose_runs_several_api_replicas_behind_one_port(compose: Doc) -> None:
    api, lb = compose["services"]["api"], compose["services"]["lb"]
    assert api["deploy"]["replicas"] > 1
    assert "ports" not in api  # replicas cannot share a host port; nginx publishes one
    assert lb["ports"] == ["8000:8000"]
    nginx = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    assert "http://api:8000" in nginx and "resolver 127.0.0.11" in nginx
    for name in ("api", "train"):
        env = compose["services"][name]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert compose["services"]["api"]["environment"]["OFFERS_ENVIRONMENT"] == "production"


def test_compose_mlflow_is_on_postgres_and_answers_the_other_containers(compose: Doc) -> None:
    mlflow = compose["services"]["mlflow"]
    words = command_words(mlflow)
    backend = words[words.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow")
    assert "--serve-artifacts" in words and "--artifacts-destination" in words
    allowed = mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert is_allowed_host_header(allowed, "mlflow:5000")
    assert not is_allowed_host_header(allowed, "evil.example.com")
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"psycopg2-binary==' in pyproject  # the image installs the driver the URI names
