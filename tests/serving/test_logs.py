"""No member data or keys in the logs: ``offers serve`` is started as a real process at INFO, called
with member ids in paths, queries and bodies and with API keys, and its whole output is searched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from recsys.access import ENV_VAR, Scope, key_entry
from recsys.cache import Keys
from recsys.store import RedisEndpoint
from tests.support.processes import free_port, wait_until

SECRET_KEY = "lo_test_key_3b9f27c1d8e4"
UNKNOWN_KEY = "lo_test_wrong_5a1c0e9d"
UNKNOWN_MEMBER = "MBR-PRIVATE-80417"


def serve_and_capture(env: dict[str, str], log: Path, calls: list[tuple[str, str, object, str]]) -> str:
    """Run ``offers serve`` with ``env``, make ``calls`` (method, path, json body, key), stop it with
    SIGTERM and return everything it wrote to stdout and stderr."""
    port = free_port()
    offers = Path(sys.executable).parent / "offers"
    with log.open("wb") as out:
        process = subprocess.Popen([str(offers), "serve", "--port", str(port)], env=env, stdout=out, stderr=out)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, "API start")
            with httpx.Client(base_url=base, timeout=10) as http:
                for method, path, body, key in calls:
                    status = http.request(method, path, json=body, headers={"X-API-Key": key}).status_code
                    assert status < 500, (method, path, status)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    return log.read_text(errors="replace")


@pytest.fixture
def served_log(redis_endpoint: RedisEndpoint, keys: Keys, member: str, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_endpoint.url,
        "OFFERS_KEY_PREFIX": keys.prefix,
        "OFFERS_HOME": str(tmp_path),
        "OFFERS_LOG_LEVEL": "info",
        "OPENBLAS_NUM_THREADS": "1",
        ENV_VAR: json.dumps(key_entry(SECRET_KEY, "mobile-app", [Scope.ADMIN])),
    }
    now = datetime.now(UTC).isoformat()
    event = {"member_id": member, "offer_id": "o001", "kind": "click", "channel": "app", "timestamp": now}
    calls: list[tuple[str, str, object, str]] = [
        ("GET", f"/v1/members/{member}/offers?limit=3", None, SECRET_KEY),
        ("GET", f"/v1/members/{member}/rewards", None, SECRET_KEY),
        ("GET", f"/v1/members/{UNKNOWN_MEMBER}/offers", None, SECRET_KEY),  # 404
        ("GET", f"/v1/members/{member}/offers?limit=0", None, SECRET_KEY),  # 422
        ("GET", f"/v1/members/{member}/offers", None, UNKNOWN_KEY),  # 401
        ("POST", "/v1/events", {"events": [event, {**event, "member_id": UNKNOWN_MEMBER, "kind": "?"}]}, SECRET_KEY),
        ("DELETE", f"/v1/members/{UNKNOWN_MEMBER}", None, SECRET_KEY),
    ]
    yield serve_and_capture(env, tmp_path / "serve.log", calls)


def test_the_log_names_routes_and_callers_but_no_member_id_and_no_key(served_log: str, member: str) -> None:
    for secret in (member, UNKNOWN_MEMBER, SECRET_KEY, UNKNOWN_KEY):
        assert secret not in served_log, f"{secret!r} is in the server log:\n{served_log}"
    # the access log is on: the requests are there, by route template, status and caller name
    assert "GET /v1/members/{member_id}/offers 200 caller=mobile-app" in served_log
    assert "GET /v1/members/{member_id}/offers 404 caller=mobile-app" in served_log
    assert "GET /v1/members/{member_id}/offers 401 caller=-" in served_log
    assert "POST /v1/events 207 caller=mobile-app" in served_log
    assert "DELETE /v1/members/{member_id} 204" in served_log
