"""The OpenAPI page documents every endpoint: its response body with a whole example, its request body
with one, its errors as JSON, and the API key every endpoint but the probes needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recsys.settings import Settings
from tests.conftest import running_api

PROBES = {"/healthz", "/readyz"}
ENDPOINTS = {
    ("get", "/v1/members/{member_id}/offers"),
    ("get", "/v1/members/{member_id}/rewards"),
    ("get", "/v1/weekly-picks"),
    ("post", "/v1/events"),
    ("put", "/v1/offers/{offer_id}"),
    ("delete", "/v1/offers/{offer_id}"),
    ("delete", "/v1/members/{member_id}"),
    ("get", "/v1/model"),
    ("get", "/healthz"),
    ("get", "/readyz"),
}


@pytest.fixture(scope="module")
def spec(redis_endpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(home=tmp_path_factory.mktemp("openapi"), redis_url=redis_endpoint.url, key_prefix="openapi")
    with running_api(settings) as http:
        resp = http.get("/openapi.json")
        assert resp.status_code == 200
        assert http.get("/docs").status_code == 200
        yield resp.json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    found: dict[str, Any] = spec["components"]["schemas"][ref.split("/")[-1]] if ref else schema
    return found


def test_every_endpoint_is_there(spec: dict[str, Any]) -> None:
    assert {(m, p) for m, p, _ in operations(spec)} == ENDPOINTS


def test_every_response_body_has_a_whole_example(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            content = response.get("content", {}).get("application/json")
            if status == "204":
                assert content is None
                continue
            assert content is not None, (method, path, status)
            schema = resolve(spec, content["schema"])
            assert schema.get("examples"), (method, path, status, schema.get("title"))


def test_request_bodies_have_examples(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if "requestBody" in op:
            schema = resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])
            assert schema.get("examples"), (method, path)


def test_errors_are_documented_as_json(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        errors = {s for s in op["responses"] if s[0] in "45"}
        if path not in PROBES:
            assert {"401", "403", "422"} <= errors, (method, path)
        for status in errors:
            assert op["responses"][status]["description"], (method, path, status)


def test_every_endpoint_but_the_probes_needs_an_api_key(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key issued to the caller.",
    }
    for method, path, op in operations(spec):
        secured = any("APIKeyHeader" in s for s in op.get("security", []))
        assert secured == (path not in PROBES), (method, path)


@pytest.mark.parametrize(("method", "path"), sorted(ENDPOINTS))
def test_every_endpoint_says_what_it_does(spec: dict[str, Any], method: str, path: str) -> None:
    op = spec["paths"][path][method]
    assert op.get("summary") and op.get("tags"), (method, path)
    for parameter in op.get("parameters", []):
        if parameter["in"] == "query":
            assert parameter.get("description"), (method, path, parameter["name"])
