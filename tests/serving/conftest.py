"""Fixtures shared by the serving tests (the root conftest has Redis, keys and the API runners)."""

from __future__ import annotations

import pytest
import redis

from recsys.cache import Keys
from tests.support.serving_bundle import make_bundle
from training.publish import publish


@pytest.fixture
def member(redis_client: redis.Redis, keys: Keys) -> str:
    """A member of a freshly published small bundle."""
    bundle = make_bundle()[0]
    publish(redis_client, bundle, keys=keys)
    return str(bundle.members["member_id"].iloc[0])
