"""A publish killed with SIGKILL mid-write, and two publishes at once, with the publish in a real child
process writing to a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import redis

from recsys.cache import Keys
from recsys.errors import PublishError
from recsys.settings import Settings
from recsys.store import RedisEndpoint
from tests.conftest import running_api
from tests.support.processes import wait_until
from tests.support.serving_bundle import make_bundle
from training.publish import kept_versions, publish, served_version

BIG = 150_000  # members of the bundle the child publishes: long enough to be caught mid-write

_CHILD = """
import sys
import redis
from recsys.cache import Keys
from tests.support.serving_bundle import make_bundle
from training.publish import publish
bundle, _ = make_bundle(n_members=int(sys.argv[3]), seed=9)
print("published", publish(redis.Redis.from_url(sys.argv[1]), bundle, keys=Keys(sys.argv[2])).version, flush=True)
"""


@pytest.fixture
def child_publish(redis_endpoint: RedisEndpoint, keys: Keys) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts a publish of a big bundle in a child process (the same ``publish`` the CLI runs)."""
    children: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        args = [sys.executable, "-c", _CHILD, redis_endpoint.url, keys.prefix, str(BIG)]
        children.append(subprocess.Popen(args, stdout=subprocess.PIPE, env=env))
        return children[-1]

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()
    client = redis_endpoint.client()  # the big version's keys, many at a time (the shared cleanup goes one by one)
    batch = []
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=10_000):
        batch.append(key)
        if len(batch) == 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()


def _version_keys(client: redis.Redis, keys: Keys, version: str) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.version_pattern(version), count=10_000))


def test_publish_killed_mid_write_leaves_serving_alone_and_next_publish_cleans_up(
    redis_client: redis.Redis,
    keys: Keys,
    app_settings: Settings,
    child_publish: Callable[[], subprocess.Popen[bytes]],
) -> None:
    served = publish(redis_client, make_bundle()[0], keys=keys).version
    child = child_publish()
    partial = str(int(served) + 1)
    wait_until(lambda: redis_client.exists(keys.member(partial, "m0000")), "the child's first member records", 60)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    assert served_version(redis_client, keys) == served and kept_versions(redis_client, keys) == [served]
    assert redis_client.hget(keys.version_meta(partial), "status") == b"writing"
    left = _version_keys(redis_client, keys, partial)
    assert 0 < left < BIG  # written part way
    with running_api(app_settings) as api:  # serving carries on from the served version
        resp = api.get("/v1/members/m0001/offers")
        assert resp.status_code == 200 and resp.json()["version"] == served

    # the killed child's lock names a process of this host that is gone: the next publish takes it over
    assert redis_client.get(keys.publish_lock) is not None
    after = publish(redis_client, make_bundle(seed=4)[0], keys=keys).version
    assert _version_keys(redis_client, keys, partial) == 0
    assert kept_versions(redis_client, keys) == [after, served]
    assert redis_client.get(keys.publish_lock) is None


def test_second_publish_at_once_is_refused_naming_the_first(
    redis_client: redis.Redis, keys: Keys, child_publish: Callable[[], subprocess.Popen[bytes]]
) -> None:
    child = child_publish()
    wait_until(lambda: redis_client.exists(keys.publish_lock), "the child to take the publish lock", 60)
    with pytest.raises(PublishError, match=rf"a publish is running .*:{child.pid}\b.*wait for it to finish"):
        publish(redis_client, make_bundle()[0], keys=keys)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    (version,) = kept_versions(redis_client, keys)
    assert out.decode().split() == ["published", version]  # the child's publish went through, alone
    assert version == "1" and redis_client.get(keys.sequence) == b"1"  # the refused one took no version
    assert redis_client.get(keys.publish_lock) is None
