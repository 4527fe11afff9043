"""The offers hot path: which requests it answers itself, that those never reach FastAPI, and that every
answer (offers and errors alike) is the one FastAPI's own route gives, over HTTP against a real Redis."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from recsys.access import ENV_VAR
from recsys.settings import Settings
from serving.app import create_app
from serving.hot_path import OffersHotPath, PlainOffersRequest, plain_offers_request
from serving.schemas import Channel
from tests.conftest import MODEL_ORDER, NO_CAPS, running_api
from tests.support.keys import keys_env
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import publish


def http_scope(path: str, query: bytes = b"", method: str = "GET", **extra: Any) -> Scope:
    headers = [(b"host", b"test"), (b"x-api-key", b"reader-key")]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    } | extra


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/v1/members/M1/offers", b"", PlainOffersRequest("M1")),
        ("/v1/members/M1/offers", b"limit=7", PlainOffersRequest("M1", limit=7)),
        ("/v1/members/M1/offers", b"limit=007&channel=sms", PlainOffersRequest("M1", limit=7, channel=Channel.SMS)),
        ("/v1/members/M 1/offers", b"on=2026-12-24", PlainOffersRequest("M 1", on=date(2026, 12, 24))),
        ("/v1/members/" + "x" * 64 + "/offers", b"channel=email", PlainOffersRequest("x" * 64, channel=Channel.EMAIL)),
    ],
)
def test_a_plain_request_is_read_as_the_route_reads_it(path: str, query: bytes, expected: PlainOffersRequest) -> None:
    assert plain_offers_request(http_scope(path, query)) == expected


@pytest.mark.parametrize(
    ("path", "query", "extra"),
    [
        ("/v1/members/M1/offers", b"", {"method": "HEAD"}),
        ("/v1/members/M1/offers", b"", {"method": "POST"}),
        ("/v1/members/M1/offers", b"", {"root_path": "/api"}),
        ("/v1/members/M1/offers/", b"", {}),
        ("/v1/members//offers", b"", {}),
        ("/v1/members/a/b/offers", b"", {}),
        ("/v1/members/M\x01/offers", b"", {}),
        ("/v1/members/" + "x" * 65 + "/offers", b"", {}),
        ("/v1/members/M1/rewards", b"", {}),
        ("/v1/members/M1/offers", b"limit=0", {}),
        ("/v1/members/M1/offers", b"limit=", {}),
        ("/v1/members/M1/offers", b"limit=%2B5", {}),
        ("/v1/members/M1/offers", b"limit=1e3", {}),
        ("/v1/members/M1/offers", b"limit=1234567", {}),
        ("/v1/members/M1/offers", "limit=\u0663".encode(), {}),
        ("/v1/members/M1/offers", b"limit=2&limit=3", {}),
        ("/v1/members/M1/offers", b"channel=APP", {}),
        ("/v1/members/M1/offers", b"channel=fax", {}),
        ("/v1/members/M1/offers", b"on=2026-13-01", {}),
        ("/v1/members/M1/offers", b"on=20261224", {}),
        ("/v1/members/M1/offers", b"on=2026-12-24T00:00", {}),
        ("/v1/members/M1/offers", b"page=2", {}),
    ],
)
def test_anything_else_is_left_to_fastapi(path: str, query: bytes, extra: dict[str, Any]) -> None:
    assert plain_offers_request(http_scope(path, query, **extra)) is None


def test_plain_requests_never_reach_fastapi_and_others_always_do(
    app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, keys_env())
    app = create_app(app_settings, contact_policy=NO_CAPS, ranking_policy=MODEL_ORDER)
    reached: list[str] = []

    async def fastapi_stack(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["query_string"].decode())

    hot = OffersHotPath(fastapi_stack)

    async def status_of(query: bytes) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await hot(http_scope(f"/v1/members/{member}/offers", query, app=app), receive, send)
        return int(sent[0]["status"]) if sent else 0

    async def run() -> list[int]:
        async with app.router.lifespan_context(app):
            return [await status_of(q) for q in (b"", b"limit=2&channel=email", b"limit=999", b"limit=2&limit=3")]

    statuses = asyncio.run(run())
    assert statuses[:3] == [200, 200, 422]  # answered by the hot path, the over-limit 422 included
    assert reached == ["limit=2&limit=3"]  # the one request it does not read went on, unanswered by it


def _requests(bundle: ServingBundle) -> list[tuple[str, dict[str, str], str | None]]:
    """(path, query, API key) of requests plain and odd, good and bad."""
    members = [str(m) for m in bundle.member_ids[:6]]
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    offers = "/v1/members/{}/offers"
    found: list[tuple[str, dict[str, str], str | None]] = [(offers.format(m), {}, "reader-key") for m in members]
    first = offers.format(members[0])
    found += [
        (first, {"limit": "3", "channel": "email"}, "reader-key"),
        (first, {"limit": "5", "channel": "sms", "on": tomorrow}, "admin-key"),
        (first, {"limit": "999"}, "reader-key"),  # over the maximum: 422 from the answer itself
        (first, {"limit": "0"}, "reader-key"),
        (first, {"channel": "fax"}, "reader-key"),
        (first, {"on": "2099-01-01"}, "reader-key"),
        (offers.format("nobody-here"), {}, "reader-key"),  # 404
        (first, {}, None),  # 401, no key
        (first, {}, "not-a-key"),  # 401, unknown key
        (first, {}, "events-key"),  # 403, key lacks offers:read
    ]
    return found


COMPARED_HEADERS = ("content-type", "www-authenticate", "x-content-type-options", "cache-control", "retry-after")


def _answers(settings: Settings, bundle: ServingBundle, hot_path: bool) -> list[tuple[int, Any, dict[str, str]]]:
    answers = []
    with running_api(settings, key=None, hot_path=hot_path) as http:
        for path, query, key in _requests(bundle):
            resp: httpx.Response = http.get(path, params=query, headers={"X-API-Key": key} if key else {})
            answers.append((resp.status_code, resp.json(), {h: resp.headers.get(h, "") for h in COMPARED_HEADERS}))
    return answers


def test_every_answer_is_the_one_fastapi_gives(app_settings: Settings, redis_client: Any, keys: Any) -> None:
    bundle = make_bundle()[0]
    publish(redis_client, bundle, keys=keys)
    hot, full = _answers(app_settings, bundle, hot_path=True), _answers(app_settings, bundle, hot_path=False)
    assert [a[0] for a in hot] == [200] * 8 + [422, 422, 422, 422, 404, 401, 401, 403]
    for request, with_hot, without in zip(_requests(bundle), hot, full, strict=True):
        assert with_hot == without, request
