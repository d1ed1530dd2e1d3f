"""The supervisor of `jifen serve --workers N` (jifen.api.workers) when a worker cannot
start: an error, not a restart loop."""

from __future__ import annotations

import socket

import pytest

from jifen.api.workers import WorkersFailed, balanced, listening_socket, supervise


@pytest.mark.skipif(not balanced(), reason="one socket per worker is used on Linux only")
def test_workers_that_cannot_listen_stop_the_server_with_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:  # no SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(WorkersFailed, match=r"could not start \(exit status 3\)"):
            supervise("127.0.0.1", port, 2)


@pytest.mark.skipif(not balanced(), reason="one socket per worker is used on Linux only")
def test_worker_sockets_share_one_address() -> None:
    first = listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        first.listen()
        second = listening_socket("127.0.0.1", port)  # would be EADDRINUSE without the group
        second.listen()
        second.close()
    finally:
        first.close()
