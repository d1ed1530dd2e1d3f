"""TCP_NODELAY on the connections `jifen serve` accepts, also on a socket bound the way
uvicorn's multi-worker supervisor binds it (jifen.api.protocol)."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from jifen.api.protocol import HTTP_PROTOCOL


async def hello(_request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", hello)])


@contextmanager
def serving(http: str) -> Iterator[uvicorn.Server]:
    """A uvicorn server on a socket from `Config.bind_socket()` (what `--workers N` hands
    each worker), in a thread."""
    config = uvicorn.Config(APP, host="127.0.0.1", port=0, http=http, log_level="warning")
    sock = config.bind_socket()
    config.port = sock.getsockname()[1]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server stopped before it started"
            assert time.monotonic() < deadline, "the server did not start in 30 s"
            time.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def accepted_no_delay(http: str) -> list[int]:
    """TCP_NODELAY of the server's end of each open connection, after one request."""
    with serving(http) as server:
        client = http_client(server)
        try:
            client.request("GET", "/")
            response = client.getresponse()
            assert (response.status, response.read()) == (200, b"hello")
            return [
                connection.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                for connection in server.server_state.connections  # type: ignore[attr-defined]
            ]
        finally:
            client.close()


def http_client(server: uvicorn.Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=10)


@pytest.mark.skipif(not hasattr(socket, "TCP_NODELAY"), reason="no TCP_NODELAY here")
def test_a_connection_accepted_on_the_workers_socket_sends_without_delay() -> None:
    assert accepted_no_delay(HTTP_PROTOCOL) == [1]


@pytest.mark.skipif(not hasattr(socket, "TCP_NODELAY"), reason="no TCP_NODELAY here")
def test_uvicorns_own_protocol_leaves_nagle_on_there() -> None:
    """Why jifen.api.protocol exists. When this fails, uvicorn sets the option itself
    (issue #3149 fixed): the protocol can go."""
    assert accepted_no_delay("h11") == [0]
