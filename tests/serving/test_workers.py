"""``serving.workers``: several worker processes on one port, each with its own SO_REUSEPORT socket, so
connections spread over them; a worker that dies is replaced, SIGTERM stops them all, and a port that
cannot be had stops the start. Real processes and real sockets (and the real API under ``offers serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.procs import children
from recsys.settings import Settings
from tests.support.keys import keys_env
from tests.support.processes import free_port, wait_until

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this platform")
STOP_TIMEOUT_S = 20


def _launch(port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "serving.workers", "tests.support.pid_app:app", "--port", str(port)]
    return subprocess.Popen([*command, "--log-level", "warning", *extra])


def _pids_answering(port: int, connections: int) -> set[int]:
    """The worker pid behind each of ``connections`` fresh connections."""
    return {int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text) for _ in range(connections)}


@pytest.fixture
def workers() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    supervisor = _launch(port, "--workers", "2")
    wait_until(lambda: len(_pids_answering(port, 20)) == 2, "both workers answering")
    yield supervisor, port
    if supervisor.poll() is None:
        supervisor.kill()
        supervisor.wait()


def test_connections_spread_over_every_worker_and_sigterm_stops_them_all(
    workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    supervisor, port = workers
    answering = _pids_answering(port, 64)
    assert len(answering) == 2 and answering <= set(children(supervisor.pid))
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(STOP_TIMEOUT_S) == 0
    assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in answering)


def _alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_worker_that_dies_is_replaced(workers: tuple[subprocess.Popen[bytes], int]) -> None:
    supervisor, port = workers
    before = _pids_answering(port, 32)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(now := _pids_answering(port, 32)) == 2 and victim not in now, "a replacement worker")
    assert supervisor.poll() is None


def test_a_port_already_taken_stops_the_start_with_uvicorns_startup_failure_status() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        supervisor = _launch(port, "--workers", "2")
        try:
            assert supervisor.wait(STOP_TIMEOUT_S) == 3
        finally:
            if supervisor.poll() is None:
                supervisor.kill()


def test_offers_serve_runs_the_api_on_several_workers(app_settings: Settings) -> None:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": str(app_settings.redis_url),
        "OFFERS_KEY_PREFIX": app_settings.key_prefix,
        "OFFERS_HOME": str(app_settings.home),
        "OFFERS_API_KEYS": keys_env(),
        "OFFERS_LOG_LEVEL": "warning",
    }
    offers = str(Path(sys.executable).with_name("offers"))
    supervisor = subprocess.Popen([offers, "serve", "--port", str(port), "--workers", "2"], env=env)
    try:
        wait_until(lambda: len(children(supervisor.pid)) >= 2, "two workers")
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200, "the API")
        statuses = {httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code for _ in range(20)}
        assert statuses == {200}
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(STOP_TIMEOUT_S) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
