"""The training job and publish against an MLflow tracking server on PostgreSQL with a proxied artifact
store, publishing into the Redis Cluster: the production path, end to end, on real servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow as mlflow_api
import pytest
from mlflow import MlflowClient
from redis.cluster import RedisCluster as ClusterClient

from recsys.cache import Keys
from recsys.errors import ModelError
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint
from tests.conftest import running_api
from tests.support.mlflow_server import MlflowServer
from tests.support.redis_cluster import RedisCluster
from training import tracking
from training.generate import generate
from training.release import publish_registered
from training.train import run_training

MEMBERS = 400


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scaleout-sample")
    generate(out, members=MEMBERS, seed=5, show_progress=False)
    return out


@pytest.fixture
def settings(
    mlflow: MlflowServer, cluster: RedisCluster, cluster_keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings as a deployment has them: MLFLOW_TRACKING_URI and REDIS_URL from the environment. MLflow's
    process-wide tracking URI is put back afterwards: this server stops at the end of the session."""
    previous = mlflow_api.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow.uri)
    monkeypatch.setenv("REDIS_URL", cluster.url)
    monkeypatch.setenv("OFFERS_REDIS_CLUSTER", "true")
    run = uuid.uuid4().hex[:8]
    yield get_settings(
        home=tmp_path, key_prefix=cluster_keys.prefix, model_name=f"offers-{run}", experiment=f"offers-{run}"
    )
    mlflow_api.set_tracking_uri(previous)


def served_model_version(client: ClusterClient, keys: Keys, version: str) -> str:
    value = client.hget(keys.version_meta(version), "model_version")
    return value.decode() if isinstance(value, bytes) else str(value)


def test_training_logs_to_the_server_and_publish_fetches_from_its_artifact_store(
    sample: Path,
    settings: Settings,
    mlflow: MlflowServer,
    cluster_endpoint: RedisEndpoint,
    cluster_client: ClusterClient,
    cluster_keys: Keys,
) -> None:
    assert settings.tracking_uri == mlflow.uri and settings.redis_cluster
    first = run_training(sample, settings, family="als", show_progress=False, echo=lambda _: None)
    second = run_training(sample, settings, family="popularity", show_progress=False, echo=lambda _: None)
    assert first.champion and not second.champion

    client = MlflowClient(mlflow.uri)
    run = client.get_run(first.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied: clients never write the store
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(first.metrics["ndcg_at_10"])
    version = client.get_model_version(settings.model_name, first.model_version)
    source = str(version.source)
    assert source.startswith("mlflow-artifacts:/") and source.endswith(tracking.BUNDLE_PATH)
    assert str(tracking.champion(client, settings.model_name).version) == first.model_version  # type: ignore[union-attr]

    # what the server keeps: runs and versions in PostgreSQL, the bundle in its artifact store, nothing local
    assert mlflow.query("SELECT status FROM runs WHERE run_uuid = %s", (first.run_id,)) == [("FINISHED",)]
    stored = mlflow.query("SELECT version FROM model_versions WHERE name = %s ORDER BY version", (settings.model_name,))
    assert stored == [(int(first.model_version),), (int(second.model_version),)]
    bundles = {p.parent.parent.parent.name for p in mlflow.artifacts.rglob(f"{tracking.BUNDLE_PATH}/bundle.json")}
    assert {first.run_id, second.run_id} <= bundles
    assert not (settings.var_dir / "mlflow").exists()

    published, bundle = publish_registered(settings, cluster_endpoint, show_progress=False)  # the champion
    assert published.members == len(bundle.member_ids) > 0
    assert served_model_version(cluster_client, cluster_keys, published.version) == first.model_version
    explicit, _ = publish_registered(settings, cluster_endpoint, second.model_version, show_progress=False)
    assert served_model_version(cluster_client, cluster_keys, explicit.version) == second.model_version

    with running_api(settings) as http:
        info = http.get("/v1/model").json()
        assert (info["version"], info["model_version"], info["family"]) == (
            explicit.version,
            second.model_version,
            "popularity",
        )
        member = str(bundle.member_ids[0])
        resp = http.get(f"/v1/members/{member}/offers", params={"limit": 5})
        assert resp.status_code == 200, resp.text
        assert resp.json()["version"] == explicit.version


def test_publishing_an_unknown_version_names_it(settings: Settings, cluster_endpoint: RedisEndpoint) -> None:
    tracking.configure(settings)
    with pytest.raises(ModelError, match="not found"):
        publish_registered(settings, cluster_endpoint, "999", show_progress=False)


@pytest.mark.parametrize(("host", "status"), [(None, 200), ("mlflow:5000", 403), ("evil.example.com", 403)])
def test_the_server_answers_only_allowed_host_headers(mlflow: MlflowServer, host: str | None, status: int) -> None:
    """Why docker-compose.yml and deploy/k8s/mlflow.yaml set MLFLOW_SERVER_ALLOWED_HOSTS to their service names."""
    headers = {"Host": host} if host else {}
    resp = httpx.get(f"{mlflow.uri}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, headers=headers)
    assert resp.status_code == status
