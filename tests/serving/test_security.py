"""API keys over HTTP: 401 without or with an unknown key, 403 without the scope, each saying which."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi import FastAPI

from recsys.errors import ConfigurationError
from recsys.settings import Settings
from serving.security import load_access
from tests.support.live_api import auth, live_api

EVENT = {"member_id": "m1", "offer_id": "o1", "kind": "click", "channel": "app", "timestamp": "2025-03-14T09:00:00Z"}


@pytest.fixture
def http(app_settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with live_api(app_settings, monkeypatch) as client:
        yield client


def error_of(resp: httpx.Response) -> dict[str, str]:
    body: dict[str, dict[str, str]] = resp.json()
    return body["error"]


ROUTES = [
    ("POST", "/v1/events", {"events": [EVENT]}, "events:write"),
    ("PUT", "/v1/offers/o1", {"title": "t"}, "catalogue:write"),
    ("DELETE", "/v1/offers/o1", None, "catalogue:write"),
    ("DELETE", "/v1/members/m1", None, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_no_key_is_401_saying_the_header_is_missing(
    http: httpx.Client, method: str, path: str, body: object, scope: str
) -> None:
    resp = http.request(method, path, json=body)
    assert resp.status_code == 401
    assert error_of(resp)["code"] == "missing_api_key"
    assert "X-API-Key" in error_of(resp)["message"]
    assert resp.headers["www-authenticate"].startswith("ApiKey")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_unknown_key_is_401_saying_it_is_unknown(
    http: httpx.Client, method: str, path: str, body: object, scope: str
) -> None:
    resp = http.request(method, path, json=body, headers=auth("not-a-key-we-issued"))
    assert resp.status_code == 401
    assert error_of(resp)["code"] == "unknown_api_key"
    assert "not-a-key-we-issued" not in resp.text


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_key_without_the_scope_is_403_naming_it(
    http: httpx.Client, method: str, path: str, body: object, scope: str
) -> None:
    resp = http.request(method, path, json=body, headers=auth("reader-key"))
    assert resp.status_code == 403
    assert error_of(resp)["code"] == "missing_scope"
    assert scope in error_of(resp)["message"] and "mobile-app" in error_of(resp)["message"]


def test_admin_holds_every_scope(http: httpx.Client) -> None:
    resp = http.post("/v1/events", json={"events": [EVENT]}, headers=auth("admin-key"))
    assert resp.status_code == 202, resp.text


def test_no_configured_keys_says_so(
    app_settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live_api(app_settings, monkeypatch, OFFERS_API_KEYS="") as client:
        resp = client.post("/v1/events", json={"events": [EVENT]}, headers=auth("events-key"))
    assert resp.status_code == 401
    assert "OFFERS_API_KEYS" in error_of(resp)["message"]


def test_malformed_keys_fail_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_API_KEYS", '{"abc": 1}')
    with pytest.raises(ConfigurationError, match="OFFERS_API_KEYS"):
        load_access(FastAPI())


def test_the_openapi_page_documents_the_key(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert {"401", "403"} <= set(spec["paths"]["/v1/events"]["post"]["responses"])


READ_ROUTES = ["/v1/members/m1/offers", "/v1/model"]


@pytest.mark.parametrize("path", READ_ROUTES)
def test_read_routes_need_a_key_with_offers_read(http: httpx.Client, path: str) -> None:
    missing = http.get(path)
    assert missing.status_code == 401 and error_of(missing)["code"] == "missing_api_key"
    wrong = http.get(path, headers=auth("events-key"))
    assert wrong.status_code == 403 and "offers:read" in error_of(wrong)["message"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_key(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code in (200, 503)
    assert http.get(path).status_code != 401
