"""Health, readiness and the served-model endpoint, before and after publishes and a rollback."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.schema import CHANNELS
from recsys.settings import get_settings
from recsys.store import open_redis
from serving.schemas import Channel
from tests.conftest import running_api
from tests.support.serving_bundle import make_bundle
from training.publish import publish, rollback


def test_healthz_answers_without_a_publish(api: httpx.Client) -> None:
    resp = api.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_readyz_is_503_before_publish_and_200_after(api: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    before = api.get("/readyz")
    assert before.status_code == 503
    assert before.json()["error"]["code"] == "not_published"
    version = publish(redis_client, make_bundle()[0], keys=keys).version
    after = api.get("/readyz")
    assert after.status_code == 200
    assert after.json() == {"status": "ready", "version": version}


def test_model_names_the_served_version_and_follows_switch_and_rollback(
    api: httpx.Client, redis_client: redis.Redis, keys: Keys
) -> None:
    first = publish(redis_client, make_bundle(seed=1, model_version="4")[0], keys=keys).version
    info = api.get("/v1/model").json()
    assert info["version"] == first
    assert info["model_name"] == "loyalty-offers"
    assert info["model_version"] == "4"
    assert info["family"] == "test"
    assert info["run_id"] == "run-1"
    assert info["trained_at"] == "2025-05-01T02:00:00+00:00"
    assert info["metrics"] == {"ndcg_at_10": 0.25}
    assert info["members"] == 60

    second = publish(redis_client, make_bundle(seed=2, model_version="5")[0], keys=keys).version
    assert api.get("/v1/model").json()["model_version"] == "5"
    assert api.get("/v1/members/m0001/offers").json()["version"] == second

    assert rollback(redis_client, keys) == first
    assert api.get("/v1/model").json()["version"] == first
    assert api.get("/v1/members/m0001/offers").json()["version"] == first


@pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL") or os.environ.get("OFFERS_REDIS_URL")),
    reason="shuts its Redis down, so it runs only on an embedded Redis of its own",
)
def test_redis_going_away_is_503_not_500(tmp_path: Path, keys: Keys) -> None:
    endpoint = open_redis(get_settings(home=tmp_path / "own-redis"))  # a server of this test's own
    client = endpoint.client()
    publish(client, make_bundle()[0], keys=keys)
    settings = get_settings(home=tmp_path, redis_url=endpoint.url, key_prefix=keys.prefix)
    with running_api(settings) as api:
        assert api.get("/readyz").status_code == 200
        assert api.get("/v1/members/m0001/offers").status_code == 200
        client.shutdown(nosave=True)
        for path in ("/readyz", "/v1/model"):
            resp = api.get(path)
            assert resp.status_code == 503, path
            assert resp.json()["error"]["code"] == "store_unavailable"
            assert int(resp.headers["Retry-After"]) >= 1
        offers = api.get("/v1/members/m0001/offers")  # from the copy kept in the process (tests/serving/test_faults.py)
        assert offers.status_code == 200
        assert offers.json()["degraded"] == offers.headers["X-Offers-Degraded"] == "redis-unavailable"
        assert api.get("/healthz").status_code == 200
    endpoint.close()


def test_channels_match_the_data_contract() -> None:
    assert [c.value for c in Channel] == list(CHANNELS)
