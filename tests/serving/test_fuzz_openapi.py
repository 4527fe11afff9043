"""Property-based fuzzing of every endpoint from the service's own OpenAPI schema (Schemathesis), over
HTTP against the API under uvicorn and a real Redis holding a published version: no 5xx, and every
status code, content type, header and body conforms to what the schema declares, with an admin key, a
key lacking most scopes, and no key at all. Valid (positive) and invalid (negative) requests both.

Examples per operation are bounded (``MAX_EXAMPLES``) and derandomized, so a CI run is quick and the
same every time; raise ``FUZZ_EXAMPLES`` locally for a deeper search."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recsys.cache import Keys
from recsys.settings import get_settings
from recsys.store import RedisEndpoint
from tests.conftest import running_api
from tests.support.keys import auth
from tests.support.serving_bundle import make_bundle
from training.publish import publish

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
AUTH_FAILURES_MAX = "OFFERS_AUTH_FAILURES_MAX"
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Fuzzed:
    base_url: str
    schema: schemathesis.BaseSchema
    member_id: str


@pytest.fixture(scope="module")
def fuzzed(redis_endpoint: RedisEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    keys = Keys(prefix=f"t{uuid.uuid4().hex[:10]}")
    client = redis_endpoint.client()
    bundle = make_bundle()[0]
    publish(client, bundle, keys=keys)
    home = tmp_path_factory.mktemp("fuzz")
    app_settings = get_settings(home=home, redis_url=redis_endpoint.url, key_prefix=keys.prefix)
    # the fuzzer fails authentication hundreds of times from one address: with the flood limit on it would
    # meet only its 429 (tested in test_auth_failures.py), not the 401 and 403 bodies it is here to check
    previous = os.environ.get(AUTH_FAILURES_MAX)
    os.environ[AUTH_FAILURES_MAX] = "0"
    try:
        with running_api(app_settings, key=None) as http:
            base_url = str(http.base_url).rstrip("/")
            schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
            yield Fuzzed(base_url, schema, str(bundle.members["member_id"].iloc[0]))
    finally:
        if previous is None:
            os.environ.pop(AUTH_FAILURES_MAX, None)
        else:
            os.environ[AUTH_FAILURES_MAX] = previous
        for key in client.scan_iter(match=f"{keys.prefix}:*", count=10_000):
            client.unlink(key)
        client.close()


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 10, "the schema lost endpoints"
    return found


def check_all(
    fuzzed: Fuzzed, strategy: SearchStrategy[Case], headers: dict[str, str], mode: GenerationMode, n: int
) -> None:
    checks = CONFORMANCE + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    with requests.Session() as session:

        @given(case=strategy)
        @settings(
            max_examples=n,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case) -> None:
            case.call_and_validate(base_url=fuzzed.base_url, session=session, headers=headers, checks=checks)

        run()


def takes_input(operation: schemathesis.APIOperation) -> bool:
    """Whether there is anything to make invalid (the probes take no parameters)."""
    sets = (operation.path_parameters, operation.query, operation.headers, operation.cookies, operation.body)
    return any(len(s) for s in sets)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_endpoint_conforms_with_an_admin_key(fuzzed: Fuzzed, mode: GenerationMode) -> None:
    for operation in operations(fuzzed.schema):
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue
        check_all(fuzzed, operation.as_strategy(generation_mode=mode), auth("admin-key"), mode, MAX_EXAMPLES)


def test_a_known_member_answers_within_the_schema_whatever_the_query(fuzzed: Fuzzed) -> None:
    """Random ids mostly meet 404; pinning a published member exercises the 200 bodies too."""
    pinned = [op for op in operations(fuzzed.schema) if "{member_id}" in op.path and op.method.upper() == "GET"]
    assert pinned
    for operation in pinned:
        strategy = operation.as_strategy(path_parameters={"member_id": fuzzed.member_id})
        check_all(fuzzed, strategy, auth("admin-key"), GenerationMode.POSITIVE, MAX_EXAMPLES)


@pytest.mark.parametrize("key", [None, "events-key"], ids=["no-key", "narrow-key"])
def test_every_endpoint_conforms_without_the_right_key(fuzzed: Fuzzed, key: str | None) -> None:
    headers = auth(key) if key else {}
    for operation in operations(fuzzed.schema):
        check_all(fuzzed, operation.as_strategy(), headers, GenerationMode.POSITIVE, max(5, MAX_EXAMPLES // 3))


def test_the_fuzzer_sees_every_route(fuzzed: Fuzzed) -> None:
    seen = {(op.method.upper(), op.path) for op in operations(fuzzed.schema)}
    assert ("GET", "/v1/members/{member_id}/offers") in seen
    assert ("POST", "/v1/events") in seen
    assert ("PUT", "/v1/offers/{offer_id}") in seen
