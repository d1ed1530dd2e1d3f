"""`jifen serve --workers N` on Linux: N worker processes, each listening on its own socket
bound to the same address (SO_REUSEPORT), so the kernel spreads new connections over them.

uvicorn's own supervisor hands every worker one shared listening socket. Whichever worker
wakes first accepts every connection waiting (asyncio accepts up to the backlog per
wake-up), so a burst of keep-alive connections — a till system's or a load balancer's
pool opening at once — lands on one worker while the others idle. Measured with
`bench/earn_load.py --clients 8 --server-args "--workers 2"`: all 8 connections in one
process, 0.96 of the 2 CPUs busy. With one socket per worker in a SO_REUSEPORT group,
Linux hashes each new connection to one of the listening sockets.

The supervisor starts the workers (spawned interpreters; each builds the app from the
settings through `jifen.api.app:app_from_env`), starts a worker again when one dies, and
on SIGINT or SIGTERM stops them all (SIGTERM: uvicorn finishes the requests in flight)
and returns. A worker that fails to start (uvicorn's exit status 3, or an exit within
`SETTLED_S` of its start: the app could not be built, the address is taken) stops the
whole server with an error instead of a restart loop. Elsewhere than on Linux
SO_REUSEPORT does not balance, and uvicorn's supervisor is used.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

APP = "jifen.api.app:app_from_env"
STARTUP_FAILURE = 3  # uvicorn's exit status when a server cannot start
STOP_TIMEOUT_S = 30
SETTLED_S = 10.0
"""A worker that ends sooner than this after its start failed to start: no restart loop."""

log = logging.getLogger("jifen.serve")


class WorkersFailed(Exception):
    """A worker could not start; the server stopped."""


def balanced() -> bool:
    """Whether this system spreads connections over SO_REUSEPORT sockets (Linux does)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) in a SO_REUSEPORT group, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve_one(host: str, port: int) -> None:
    """A worker: its own socket, the app from the settings, uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    from jifen.api.protocol import HTTP_PROTOCOL

    config = uvicorn.Config(APP, factory=True, host=host, port=port, http=HTTP_PROTOCOL)
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"jifen: worker cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    uvicorn.Server(config).run(sockets=[sock])


def supervise(host: str, port: int, workers: int) -> None:
    """Run `workers` worker processes until SIGINT or SIGTERM (see the module's docstring).
    Raises WorkersFailed when a worker could not start."""
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    failed: list[str] = []

    started: dict[int, float] = {}

    def start() -> BaseProcess:
        process = context.Process(target=serve_one, args=(host, port), name="jifen-worker")
        process.start()
        started[id(process)] = time.monotonic()
        return process

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: list[BaseProcess] = []
    try:
        running = [start() for _ in range(workers)]
        while not stop.wait(0.2):
            for n, process in enumerate(running):
                if process.is_alive():
                    continue
                lived = time.monotonic() - started.pop(id(process))
                if process.exitcode == STARTUP_FAILURE or lived < SETTLED_S:
                    failed.append(f"a worker could not start (exit status {process.exitcode})")
                    stop.set()
                    break
                log.warning(
                    "worker %s exited (%s); starting another", process.pid, process.exitcode
                )
                running[n] = start()
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()
        for process in running:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise WorkersFailed("; ".join(failed))
