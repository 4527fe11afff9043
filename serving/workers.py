"""Several API worker processes on one port, the kernel spreading connections over them.

uvicorn's ``--workers N`` binds one listening socket and every worker accepts from it; the worker that
wakes first accepts every connection waiting in the queue. Connections are long-lived (mobile gateways
and load balancers keep them open), so one worker can end up holding all of them while the others
idle: under wrk's 32 connections, one of two workers took all 32 in some runs and the API answered at
half its speed (``benchmarks.serving``). Here each worker binds a socket of its own with
``SO_REUSEPORT`` and the kernel hands each new connection to one of them by its address hash, as
nginx's ``reuseport`` does. Each worker is a plain ``uvicorn.Server`` (its own graceful shutdown on
SIGTERM); the supervisor forwards SIGINT/SIGTERM, restarts a worker that dies and stops everything if
one cannot start (port taken, app failing its start-up).

Run another ASGI app the same way (the serving benchmark runs its floor app so): ``python -m
serving.workers benchmarks.floor_app:create_floor_app --factory --port 8001 --workers 2``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("serving.workers")
BACKLOG = 2048
RESTART_PAUSE_S = 1.0
STOP_WAIT_S = 30.0


def reuse_port_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind as well (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def run_worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One worker: its own socket, one ``uvicorn.Server`` (the entry point of each worker process)."""
    try:
        sock = reuse_port_socket(host, port)
    except OSError as exc:
        logging.getLogger("uvicorn.error").error("cannot listen on %s:%d: %s", host, port, exc)
        raise SystemExit(STARTUP_FAILURE) from exc
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    server.run(sockets=[sock])
    if not server.started:  # start-up failed (the app's lifespan raised): no use restarting it
        raise SystemExit(STARTUP_FAILURE)


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> int:
    """Serve ``app`` (an import string; ``options`` are ``uvicorn.Config``'s) with ``workers`` processes
    until SIGINT/SIGTERM; returns the exit status. One worker, or no SO_REUSEPORT here: ``uvicorn.run``."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return 0
    return _Supervisor(app, host, port, workers, options).run()


class _Supervisor:
    def __init__(self, app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
        self.args = (app, host, port, options)
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.size = workers
        self.stopping = False

    def _start(self) -> BaseProcess:
        process = self.context.Process(target=run_worker, args=self.args, name="offers-api-worker")
        process.start()
        return process

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        """SIGTERM to every worker, for SIGINT too: a terminal's Ctrl-C reached them already, and a second
        SIGINT would make uvicorn drop the requests in flight instead of finishing them."""
        self.stopping = True
        for process in self.workers:
            if process.is_alive():
                process.terminate()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        app, host, port, options = self.args
        uvicorn.Config(app, host=host, port=port, **options)  # the workers' logging configuration, here too
        log.info("serving %s on %s:%d with %d workers (SO_REUSEPORT)", app, host, port, self.size)
        self.workers = [self._start() for _ in range(self.size)]
        status = 0
        while not self.stopping:
            time.sleep(0.2)
            for i, process in enumerate(self.workers):
                if process.is_alive() or self.stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker could not start: stopping the others")
                    status = STARTUP_FAILURE
                    self._stop(signal.SIGTERM, None)
                    break
                log.warning("worker %s exited with %s: starting another", process.pid, process.exitcode)
                time.sleep(RESTART_PAUSE_S)
                self.workers[i] = self._start()
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("app", help="the ASGI app as module:attribute")
    parser.add_argument("--factory", action="store_true", help="the attribute is a factory returning the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loop", default="auto", help="uvicorn's event loop: auto, asyncio, uvloop")
    parser.add_argument("--http", default="auto", help="uvicorn's HTTP parser: auto, h11, httptools")
    parser.add_argument("--no-access-log", action="store_true", help="turn uvicorn's access log off")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    options = {
        "factory": args.factory,
        "loop": args.loop,
        "http": args.http,
        "access_log": not args.no_access_log,
        "log_level": args.log_level,
    }
    return serve(args.app, host=args.host, port=args.port, workers=args.workers, **options)


if __name__ == "__main__":
    raise SystemExit(main())
