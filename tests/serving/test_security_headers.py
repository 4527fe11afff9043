"""Security headers on every response over HTTP, successes and errors alike; HSTS only when set."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from recsys.settings import Settings
from serving.headers import BASE_HEADERS
from tests.support.live_api import auth, live_api

ADMIN = auth("admin-key")


@pytest.fixture
def http(app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with live_api(app_settings, monkeypatch, OFFERS_MAX_BODY_BYTES="2048") as client:
        yield client


def responses(http: httpx.Client, member: str) -> dict[str, httpx.Response]:
    return {
        "200 offers": http.get(f"/v1/members/{member}/offers", headers=ADMIN),
        "200 openapi": http.get("/openapi.json"),
        "200 docs": http.get("/docs"),
        "200 probe": http.get("/healthz"),
        "204 erase": http.delete("/v1/members/nobody", headers=ADMIN),
        "400 encoding": http.post("/v1/events", content=b"\xff", headers={"content-type": "application/json", **ADMIN}),
        "401 no key": http.get(f"/v1/members/{member}/offers"),
        "404 member": http.get("/v1/members/nobody/offers", headers=ADMIN),
        "404 route": http.get("/nowhere"),
        "405 method": http.patch("/healthz"),
        "413 body": http.post("/v1/events", content=b" " * 4096, headers=ADMIN),
        "422 limit": http.get(f"/v1/members/{member}/offers?limit=0", headers=ADMIN),
    }


def test_every_response_carries_the_security_headers(http: httpx.Client, member: str) -> None:
    for what, resp in responses(http, member).items():
        assert what.startswith(str(resp.status_code)), (what, resp.status_code, resp.text)
        for name, value in BASE_HEADERS.items():
            assert resp.headers.get(name) == value, (what, name, resp.headers.get(name))
        assert "strict-transport-security" not in resp.headers  # off unless configured (behind TLS)


def test_hsts_is_sent_when_configured(app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with live_api(app_settings, monkeypatch, OFFERS_HSTS_SECONDS="31536000") as http:
        resp = http.get("/healthz")
    assert resp.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
