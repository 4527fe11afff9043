"""The scale-out path on real servers: a 3-master Redis Cluster started for the session, and an MLflow
tracking server on a fresh PostgreSQL database. Each skips with the reason when its server cannot be
had here (``scripts/ensure-services.sh`` installs them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster as ClusterClient

from recsys.cache import Keys
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint, open_redis
from tests.support.mlflow_server import MlflowServer, mlflow_server, postgres_missing_reason
from tests.support.redis_cluster import RedisCluster, missing_reason, redis_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with redis_cluster(masters=3, parent=tmp_path_factory.getbasetemp()) as running:
        yield running


@pytest.fixture(scope="session")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    reason = postgres_missing_reason()
    if reason:
        pytest.skip(reason)
    with mlflow_server(parent=tmp_path_factory.getbasetemp()) as server:
        yield server


@pytest.fixture
def cluster_keys() -> Keys:
    return Keys(prefix=f"s{uuid.uuid4().hex[:10]}")


@pytest.fixture
def cluster_settings(cluster: RedisCluster, cluster_keys: Keys, tmp_path: Path) -> Settings:
    return get_settings(
        home=tmp_path, redis_url=cluster.url, redis_cluster=True, key_prefix=cluster_keys.prefix, max_limit=20
    )


@pytest.fixture
def cluster_endpoint(cluster_settings: Settings) -> RedisEndpoint:
    return open_redis(cluster_settings)


@pytest.fixture
def cluster_client(cluster_endpoint: RedisEndpoint, cluster_keys: Keys) -> Iterator[ClusterClient]:
    """A cluster client; this test's keys (every node) are removed afterwards."""
    client = cluster_endpoint.client()
    assert isinstance(client, ClusterClient)
    yield client
    doomed = list(client.scan_iter(match=f"{cluster_keys.prefix}:*", count=10_000))
    if doomed:
        client.unlink(*doomed)
    client.close()
