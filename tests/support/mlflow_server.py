"""A real MLflow tracking server for the scale-out tests: a fresh PostgreSQL database as its backend store
and a temporary folder as its proxied artifact store, the way it runs in production.

PostgreSQL is the one the machine runs on 127.0.0.1:5432 (user ``postgres``, trust auth); when it is not
there, ``postgres_missing_reason`` says why so the tests skip instead of failing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from tests.support.redis_cluster import free_port

PG_HOST = os.environ.get("OFFERS_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OFFERS_TEST_PGPORT", "5432"))
PG_USER = os.environ.get("OFFERS_TEST_PGUSER", "postgres")
START_TIMEOUT_S = 120.0


def _admin() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3)
    conn.autocommit = True
    return conn


def postgres_missing_reason() -> str | None:
    """Why no test database can be made here, or None when it can."""
    try:
        _admin().close()
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL is not reachable at {PG_USER}@{PG_HOST}:{PG_PORT} with trust auth ({first}); "
            "scripts/ensure-services.sh installs and starts it"
        )
    return None


def mlflow_executable() -> str:
    """The ``mlflow`` script of the running interpreter's environment (the project's .venv)."""
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


@contextlib.contextmanager
def scratch_database(prefix: str = "offers_test") -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URI (psycopg2 driver), drop it afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"  # lower case: no quoting surprises
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver we install.
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.close()


@dataclass(frozen=True)
class MlflowServer:
    uri: str  # http://127.0.0.1:<port>
    backend_store_uri: str
    artifacts: Path  # the artifact store the server proxies (never written by clients directly)
    log: Path

    def query(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Rows of a read-only SQL query on the server's backend database (to see what it stored)."""
        database = self.backend_store_uri.rsplit("/", 1)[1]
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall())
        finally:
            conn.close()


def _wait_healthy(uri: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server at {uri} not healthy after {START_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it spawned (its own session, started by us)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # uvicorn workers that outlived the parent
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def mlflow_server(parent: Path | None = None) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` on a fresh PostgreSQL database and a temporary artifact store; yield it;
    stop it, drop the database and remove the artifacts at the end."""
    root = Path(tempfile.mkdtemp(prefix="mlflow-server-", dir=parent))
    artifacts = root / "artifacts"
    artifacts.mkdir()
    log = root / "server.log"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no huey job runners: nothing here uses them
    try:
        with scratch_database() as backend:
            args = [
                mlflow_executable(), "server",
                "--backend-store-uri", backend,
                "--artifacts-destination", str(artifacts),
                "--serve-artifacts",
                "--host", "127.0.0.1",
                "--port", str(port),
                "--workers", "1",
            ]  # fmt: skip
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            try:
                _wait_healthy(uri, proc, log)
                yield MlflowServer(uri=uri, backend_store_uri=backend, artifacts=artifacts, log=log)
            finally:
                _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
