"""Faults made for real: a redis-server killed and started again under load, publishes and rollbacks
under concurrent reads, and the API process restarted with SIGTERM while requests are in flight. The
API runs under uvicorn in a process of its own (``tests.support.processes``)."""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import redis

from recsys.cache import Keys
from recsys.events import StreamFields
from tests.support.keys import auth
from tests.support.processes import ApiProcess, RedisProcess, api_process, redis_server_missing, wait_until
from tests.support.serving_bundle import expected_eligible, make_bundle, today
from training.bundle import ServingBundle
from training.publish import publish, rollback

pytestmark = pytest.mark.skipif(redis_server_missing() is not None, reason=str(redis_server_missing()))

# no rate limit (the load is the test's own), a short Redis timeout and a copy refreshed twice a second
FAULT_ENV = {"OFFERS_RATE_PER_S": "0", "OFFERS_REDIS_TIMEOUT_S": "0.5", "OFFERS_FALLBACK_REFRESH_S": "0.5"}
LOAD_THREADS = 4


@dataclasses.dataclass
class Load:
    """Threads asking for offers until stopped; each answer kept as (status, body, degraded header)."""

    base_url: str
    members: list[str]
    answers: list[tuple[int, dict[str, object], str | None]] = dataclasses.field(default_factory=list)
    dropped: int = 0  # requests with no answer (connection refused or closed: the API restarting); retried
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)

    def start(self) -> Load:
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(LOAD_THREADS)]
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> Load:
        """Stop asking and wait for the answers in flight."""
        self.stop.set()
        for thread in self.threads:
            thread.join(15)
        return self

    def run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.base_url, headers=auth("reader-key"), timeout=10) as client:
            while not self.stop.is_set():
                member = self.members[int(rng.integers(len(self.members)))]
                try:
                    resp = client.get(f"/v1/members/{member}/offers")
                except httpx.TransportError:
                    with self.lock:
                        self.dropped += 1
                    self.stop.wait(0.02)
                    continue
                with self.lock:
                    self.answers.append((resp.status_code, resp.json(), resp.headers.get("X-Offers-Degraded")))

    def count(self) -> int:
        with self.lock:
            return len(self.answers)


@pytest.fixture
def load_of() -> Iterator[Callable[[str, list[str]], Load]]:
    started: list[Load] = []

    def start(base_url: str, members: list[str]) -> Load:
        started.append(Load(base_url, members).start())
        return started[-1]

    yield start
    for load in started:
        load.finish()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    with RedisProcess(tmp_path / "redis") as server:
        yield server


def _event(member: str, offer: str) -> dict[str, object]:
    return {
        "event_id": f"t-{uuid.uuid4().hex}",
        "member_id": member,
        "offer_id": offer,
        "kind": "impression",
        "channel": "app",
        "timestamp": f"{today().isoformat()}T00:00:01Z",
    }


def _more_than(load: Load, n: int) -> Callable[[], bool]:
    return lambda: load.count() > n


def test_redis_outage_answers_degraded_then_recovers_by_itself(
    redis_process: RedisProcess, load_of: Callable[[str, list[str]], Load]
) -> None:
    keys = Keys(f"t{uuid.uuid4().hex[:10]}")
    bundle, _ = make_bundle(n_members=60)
    store = redis_process.client()
    version = publish(store, bundle, keys=keys).version
    known = [f"m{i:04d}" for i in range(40)]
    with api_process(redis_process.url, keys.prefix, **FAULT_ENV) as api, api.client() as http:
        for member in known:  # served from Redis once: the API keeps their tier and country
            resp = http.get(f"/v1/members/{member}/offers")
            assert resp.status_code == 200 and "degraded" not in resp.json()
        load = load_of(api.base_url, known)
        wait_until(_more_than(load, 20), "load before the outage")

        redis_process.kill()
        wait_until(lambda: http.get("/v1/members/m0002/offers").headers.get("X-Offers-Degraded"), "degraded answers")
        served_during = load.count()
        wait_until(_more_than(load, served_during + 20), "load during the outage")

        ready = http.get("/readyz")
        assert ready.status_code == 503 and int(ready.headers["Retry-After"]) >= 1
        posted = http.post("/v1/events", json={"events": [_event("m0002", "o001")]})
        assert posted.status_code == 503 and int(posted.headers["Retry-After"]) >= 1
        assert posted.json()["error"]["code"] == "store_unavailable"

        gold = http.get("/v1/members/m0002/offers").json()  # member 2: gold, seen before the outage
        assert gold["degraded"] == "redis-unavailable" and gold["version"] == version and gold["tier"] == "gold"
        allowed = set(bundle.offer_ids[expected_eligible(bundle, 2, today(), "app")].tolist())
        assert gold["offers"] and {o["offer_id"] for o in gold["offers"]} <= allowed
        assert all(o["reasons"][0] == "popular_in_tier" for o in gold["offers"])

        stranger = http.get("/v1/members/m0057/offers").json()  # never served by this process: tier unknown
        assert stranger["degraded"] == "redis-unavailable" and stranger["tier"] is None
        every_tier = np.logical_and.reduce([expected_eligible(bundle, m, today(), "app") for m in range(5)])
        assert stranger["offers"] and {o["offer_id"] for o in stranger["offers"]} <= set(bundle.offer_ids[every_tier])
        email = http.get("/v1/members/m0002/offers", params={"channel": "email"}).json()
        assert email["degraded"] == "redis-unavailable" and email["offers"] == []  # the weekly cap is in Redis

        redis_process.start()  # same port, data from its append-only file: no API restart
        wait_until(lambda: http.get("/readyz").status_code == 200, "ready again")
        back = http.get("/v1/members/m0002/offers")
        assert "X-Offers-Degraded" not in back.headers and "degraded" not in back.json()
        event = _event("m0002", "o001")
        assert http.post("/v1/events", json={"events": [event]}).status_code == 202
        recovered_at = load.count()
        wait_until(_more_than(load, recovered_at + 20), "load after the outage")
        answers = load.finish().answers  # before the API stops

    assert {status for status, _, _ in answers} == {
        200
    } and load.dropped == 0  # never an error, before, during or after
    kinds = Counter(header for _, _, header in answers)
    assert kinds["redis-unavailable"] > 0 and kinds[None] > 0
    assert all(body.get("degraded") == header for _, body, header in answers)
    stored = redis_process.client().xrange(keys.events_stream)
    assert [fields[StreamFields.EVENT_ID.encode()].decode() for _, fields in stored] == [event["event_id"]]
    store.close()


def _renamed(bundle: ServingBundle, mark: str) -> ServingBundle:
    """The same bundle with every offer id prefixed by ``mark``: answers tell the versions apart."""
    ids = np.char.add(mark, bundle.offer_ids.astype(str))
    offers = bundle.offers.assign(offer_id=np.char.add(mark, bundle.offers["offer_id"].to_numpy(dtype=str)))
    return dataclasses.replace(bundle, offer_ids=ids, offers=offers)


def test_reads_during_publish_and_rollback_come_wholly_from_one_version(
    redis_process: RedisProcess, load_of: Callable[[str, list[str]], Load]
) -> None:
    keys = Keys(f"t{uuid.uuid4().hex[:10]}")
    plain, _ = make_bundle(n_members=60, seed=1)
    marked = _renamed(make_bundle(n_members=60, seed=2)[0], "B")
    store = redis_process.client()
    marks: dict[str, bool] = {publish(store, plain, keys=keys).version: False}  # version -> its offers marked
    members = [f"m{i:04d}" for i in range(60)]
    with api_process(redis_process.url, keys.prefix, **FAULT_ENV) as api:
        load = load_of(api.base_url, members)
        for step in ("publish B", "rollback", "publish A", "rollback", "publish B", "rollback"):
            served = load.count()
            if step == "rollback":
                rollback(store, keys)
            else:
                version = publish(store, marked if step.endswith("B") else plain, keys=keys).version
                marks[version] = step.endswith("B")
            wait_until(_more_than(load, served + 30), f"reads after {step}")
        answers = load.finish().answers
    assert {status for status, _, _ in answers} == {200} and load.dropped == 0
    assert all(header is None for _, _, header in answers)  # Redis was up: nothing degraded
    versions = Counter(str(body["version"]) for _, body, _ in answers)
    assert set(versions) <= set(marks) and len(versions) >= 3
    for _, body, _ in answers:
        offer_ids = [str(o["offer_id"]) for o in body["offers"]]  # type: ignore[union-attr]
        assert offer_ids, body
        assert all(o.startswith("B") == marks[str(body["version"])] for o in offer_ids), body
    store.close()


def _event_in_flight(port: int) -> tuple[socket.socket, bytes]:
    """A POST whose body the app is waiting for: headers sent with ``Expect: 100-continue`` and the
    server's ``100 Continue`` (sent when the app first reads the body) received. Returns the body to send."""
    body = orjson.dumps({"events": [_event("m0003", "o002")]})
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: events-key\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(head)
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        interim += conn.recv(1)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    return conn, body


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _read_response(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_api_restart_under_load_finishes_in_flight_requests(
    redis_process: RedisProcess, load_of: Callable[[str, list[str]], Load]
) -> None:
    keys = Keys(f"t{uuid.uuid4().hex[:10]}")
    store = redis_process.client()
    publish(store, make_bundle(n_members=60)[0], keys=keys)
    env = {"REDIS_URL": redis_process.url, "OFFERS_KEY_PREFIX": keys.prefix, **FAULT_ENV}
    first = ApiProcess(env)
    first.start()
    try:
        load = load_of(first.base_url, [f"m{i:04d}" for i in range(60)])
        wait_until(_more_than(load, 30), "load on the first process")
        conn, rest = _event_in_flight(first.port)  # in flight when the stop comes
        first.terminate()
        wait_until(lambda: _refuses_connections(first.port), "the first process to stop listening")
        conn.sendall(rest)
        reply = _read_response(conn)
        conn.close()
        assert first.wait() in (0, -signal.SIGTERM)  # left by itself (uvicorn re-raises the signal it handled)
    finally:
        first.stop()
    status_line, _, rest_of_reply = reply.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 202 Accepted", reply
    assert orjson.loads(rest_of_reply.partition(b"\r\n\r\n")[2])["accepted"] == 1
    assert store.xlen(keys.events_stream) == 1  # the in-flight event was stored, not lost

    before_restart = load.count()
    with ApiProcess(env, port=first.port):
        wait_until(_more_than(load, before_restart + 30), "load on the restarted process")
        answers = load.finish().answers
    assert {status for status, _, _ in answers} == {200}  # refused connections while down, never an error
    store.close()


def test_redis_process_keeps_acknowledged_writes_across_a_kill(redis_process: RedisProcess) -> None:
    """The helper itself: what Redis acknowledged before SIGKILL is there after the restart."""
    client = redis_process.client()
    client.set("k", "v")
    redis_process.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_process.start()
    assert client.get("k") == b"v"
    client.close()
