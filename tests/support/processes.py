"""Real processes the fault tests break: a redis-server they can kill and start again on the same port
(its data kept in an append-only file fsynced on every write, so a kill loses nothing acknowledged), and
the API under uvicorn in a process of its own, stopped with SIGTERM like an orchestrator does."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests.support.keys import auth, keys_env

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_missing() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not installed"


def wait_until(check: object, what: str, timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``check()`` (a callable) until it is true; fail naming ``what`` after ``timeout``."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, httpx.HTTPError, redis.RedisError):
            if check():
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


@dataclass
class RedisProcess:
    """One redis-server on a fixed loopback port, killed and restarted by the test."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.root)]
        args += ["--logfile", str(self.root / "redis.log"), "--protected-mode", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        try:
            wait_until(lambda: client.ping() and not client.info("persistence").get("loading"), "Redis start")
        finally:
            client.close()

    def kill(self) -> None:
        """Redis goes away at once (SIGKILL): nothing flushed, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()


@dataclass
class ApiProcess:
    """``uvicorn serving.app:create_app --factory`` in a child process, on a fixed port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    graceful_s: int = 10

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        command += ["--timeout-graceful-shutdown", str(self.graceful_s)]
        env = {**os.environ, "OFFERS_API_KEYS": keys_env(), **self.env}
        self.process = subprocess.Popen(command, env=env)
        process = self.process
        wait_until(
            lambda: process.poll() is None and httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200,
            "API start",
        )

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a pod: uvicorn stops listening and finishes what is in flight."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = START_TIMEOUT_S) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self, key: str = "admin-key") -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=auth(key), timeout=10)

    def __enter__(self) -> ApiProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def api_process(redis_url: str, prefix: str, **env: str) -> Iterator[ApiProcess]:
    """The API over ``redis_url`` and key prefix ``prefix``; ``env`` adds settings (``OFFERS_*``)."""
    api = ApiProcess({"REDIS_URL": redis_url, "OFFERS_KEY_PREFIX": prefix, **env})
    with api:
        yield api
