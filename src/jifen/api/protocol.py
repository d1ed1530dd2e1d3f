"""The HTTP protocol `jifen serve` runs: uvicorn's httptools protocol (the C parser; h11,
pure Python, took about a tenth of the server's CPU per request) with TCP_NODELAY on
every connection.

uvicorn's multi-worker supervisor (`jifen serve --workers N`) binds the listening socket
itself, with `proto` left at 0; accepted sockets inherit it, and asyncio turns Nagle's
algorithm off only on sockets that report IPPROTO_TCP (uvicorn issue #3149, open). With
Nagle on, a response written in two parts (head, then body) waits for the client's
delayed ACK before its second part goes: about 40 ms added to every keep-alive request
after the first. Measured with `bench/earn_load.py --clients 1 --store sqlite`: p50
9.8 ms with one process, 52 ms with `--workers 2`, for the same 10–12 ms of server CPU.
Setting the option on each accepted connection fixes every path (one process, workers,
a socket handed over by a process manager) without depending on how the socket was
made.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once on a TCP connection (no-op for a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in TCP_FAMILIES:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)


HTTP_PROTOCOL = f"{__name__}:{NoDelayHttpToolsProtocol.__name__}"
"""For uvicorn's `http=` (an import string, so worker processes load it themselves)."""
