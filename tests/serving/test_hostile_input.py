"""Hostile requests over HTTP, against the API under uvicorn and a real Redis holding a published
version: each gets a 4xx with a JSON error body naming the problem, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.settings import Settings
from serving.body_guard import json_depth_exceeds
from tests.support.live_api import auth, live_api

MAX_BODY = 4096
MAX_DEPTH = 8
MAX_BATCH = 5
ADMIN = auth("admin-key")
JSON = {"content-type": "application/json", **ADMIN}


@pytest.fixture
def http(app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    limits = {
        "OFFERS_MAX_BODY_BYTES": str(MAX_BODY),
        "OFFERS_MAX_JSON_DEPTH": str(MAX_DEPTH),
        "OFFERS_EVENTS_MAX_BATCH": str(MAX_BATCH),
    }
    with live_api(app_settings, monkeypatch, **limits) as client:
        yield client


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] and error["message"]
    return error


def event(member: str, **changes: object) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {"member_id": member, "offer_id": "o001", "kind": "click", "channel": "app", "timestamp": now} | changes


# -- size ----------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_by_its_content_length(http: httpx.Client, member: str) -> None:
    body = json.dumps({"events": [event(member, offer_id="o" * 50)] * 40}).encode()
    assert len(body) > MAX_BODY
    error = error_of(http.post("/v1/events", content=body, headers=JSON), 413)
    assert error["code"] == "body_too_large"
    assert "OFFERS_MAX_BODY_BYTES" in error["message"] and str(MAX_BODY) in error["message"]
    assert "Content-Length" in error["message"]
    assert error["fields"][0]["field"] == "body"


def test_a_streamed_body_over_the_limit_is_413_while_it_streams(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(64):
            yield b" " * 1024

    error = error_of(http.put("/v1/offers/o001", content=chunks(), headers=JSON), 413)
    assert error["code"] == "body_too_large"
    assert "streamed" in error["message"]


def test_a_streamed_body_under_the_limit_is_read_whole(http: httpx.Client, member: str) -> None:
    body = json.dumps({"events": [event(member)]}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    resp = http.post("/v1/events", content=chunks(), headers=JSON)
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == 1


def test_a_batch_over_the_event_limit_is_413_naming_the_setting(http: httpx.Client, member: str) -> None:
    error = error_of(http.post("/v1/events", json={"events": [event(member)] * (MAX_BATCH + 1)}, headers=ADMIN), 413)
    assert error["code"] == "batch_too_large"
    assert "OFFERS_EVENTS_MAX_BATCH" in error["message"] and str(MAX_BATCH) in error["message"]


# -- shape and encoding -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1500])  # 1500: past Python's own JSON recursion limit
def test_deeply_nested_json_is_400_naming_the_limit(http: httpx.Client, depth: int) -> None:
    body = b'{"events": ' + b"[" * depth + b"]" * depth + b"}"
    error = error_of(http.post("/v1/events", content=body, headers=JSON), 400)
    assert error["code"] == "json_too_deep"
    assert f"deeper than {MAX_DEPTH}" in error["message"] and "OFFERS_MAX_JSON_DEPTH" in error["message"]


def test_nesting_within_the_limit_and_brackets_in_strings_pass(http: httpx.Client, member: str) -> None:
    body = json.dumps({"events": [event(member, event_id='[[[[[[[[[[{{{{{{{{{{\\"[[[[')]}).encode()
    resp = http.post("/v1/events", content=body, headers=JSON)
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"events": [{"member_id": "caf\xe9"}]}', "0xe9"),  # latin-1, not UTF-8
        (b'\xff\xfe{\x00"\x00}\x00', "0xff"),  # UTF-16 with a byte-order mark
    ],
    ids=["latin-1", "utf-16"],
)
def test_a_body_that_is_not_utf8_is_400_naming_the_byte(http: httpx.Client, body: bytes, expected: str) -> None:
    error = error_of(http.post("/v1/events", content=body, headers=JSON), 400)
    assert error["code"] == "invalid_encoding"
    assert "UTF-8" in error["message"] and expected in error["message"]


def test_a_body_that_is_not_json_is_422_naming_the_position(http: httpx.Client) -> None:
    error = error_of(http.post("/v1/events", content=b'{"events": [}', headers=JSON), 422)
    assert error["fields"][0]["field"] == "body"
    assert "JSON" in error["message"] and "character" in error["message"]


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/members/{m}/offers?limit=100000000000000000000000000000", "limit"),
        ("/v1/members/{m}/offers?limit=-1", "limit"),
        ("/v1/members/{m}/rewards?limit=99999999", "limit"),
        ("/v1/weekly-picks?week=2026-W48&page_size=1000000000", "page_size"),
        ("/v1/members/{m}/offers?on=9999-12-31", "on"),
        ("/v1/members/{m}/offers?on=0001-01-01", "on"),
        ("/v1/members/{m}/offers?on=-2026-01-01", "on"),
        ("/v1/members/{m}/rewards?on=3026-01-01", "on"),
        ("/v1/weekly-picks?week=9999-W52", "week"),
        ("/v1/weekly-picks?week=1900-W01", "week"),
    ],
)
def test_out_of_range_parameters_are_422_naming_them(http: httpx.Client, member: str, path: str, field: str) -> None:
    error = error_of(http.get(path.format(m=member), headers=ADMIN), 422)
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field]
    assert error["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    "member_id",
    ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "' OR 1=1 --", '"; DROP TABLE members; --', "*", "<script>"],
)
def test_traversal_and_injection_looking_ids_are_just_unknown_members(http: httpx.Client, member_id: str) -> None:
    # a slash ends the path segment, so the router finds no endpoint; otherwise it is an unknown member
    error = error_of(http.get(f"/v1/members/{member_id}/offers", headers=ADMIN), 404)
    assert error["code"] in {"member_not_found", "not_found"}
    assert "is not known" in error["message"] or "no endpoint" in error["message"]


@pytest.mark.parametrize("member_id", ["%00", "m%0Ab", "%1B%5B31m"])
def test_control_characters_in_ids_are_422(http: httpx.Client, member_id: str) -> None:
    for method, path in (("GET", f"/v1/members/{member_id}/offers"), ("DELETE", f"/v1/members/{member_id}")):
        error = error_of(http.request(method, path, headers=ADMIN), 422)
        assert error["fields"][0]["field"] == "member_id"


def test_an_encoded_slash_in_an_id_reaches_no_file_and_no_other_route(http: httpx.Client) -> None:
    error = error_of(http.get("/v1/members/..%2F..%2F..%2Fetc%2Fpasswd/offers", headers=ADMIN), 404)
    assert "root:" not in json.dumps(error)


def test_injection_looking_ids_in_events_are_stored_as_plain_text(
    http: httpx.Client, member: str, redis_client: redis.Redis, keys: Keys
) -> None:
    odd = "' OR 1=1; --"
    batch = {"events": [event(member, offer_id=odd), event(member, member_id="\x00")]}
    resp = http.post("/v1/events", json=batch, headers=ADMIN)
    assert resp.status_code == 207, resp.text
    assert [(e["index"], e["field"]) for e in resp.json()["errors"]] == [(1, "member_id")]
    stored = redis_client.xrange(keys.events_stream)
    assert [fields[b"o"].decode() for _, fields in stored] == [odd]


# -- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        -1,
        -86_400_000,
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        10**30,
        "not a time",
    ],
)
def test_negative_and_far_future_timestamps_are_rejected_naming_the_field(
    http: httpx.Client, member: str, timestamp: object
) -> None:
    resp = http.post("/v1/events", json={"events": [event(member, timestamp=timestamp)]}, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "timestamp")]
    assert errors[0]["reason"]


# -- the depth scan on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "limit", "too_deep"),
    [
        (b"[[[]]]", 3, False),
        (b"[[[[]]]]", 3, True),
        (b'{"a": "[[[[[[[["}', 2, False),
        (b'{"a": "\\"[[[[[[[["}', 2, False),
        (b'[{"a": [{"b": []}]}]', 4, True),
        (b"[" * 10, 9, True),
    ],
)
def test_json_depth_counts_brackets_outside_strings(body: bytes, limit: int, too_deep: bool) -> None:
    assert json_depth_exceeds(body, limit) is too_deep
