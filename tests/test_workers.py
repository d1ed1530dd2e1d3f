"""The supervisor of `jifen serve --workers N` (jifen.api.workers) when a worker cannot
start: an error, not a restart loop; and a worker's garbage collector set for serving."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


def test_a_worker_settles_its_collector_once_its_app_is_built(tmp_path: Path) -> None:
    """A worker's app is built with the long-lived objects frozen out of the collector's
    walks and young collections spaced (jifen.api.app.settle_collector)."""
    script = (
        "import gc; from jifen.api.app import YOUNG_COLLECTION, app_from_env; "
        "before = gc.get_freeze_count(); app_from_env(); "
        "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold()[0] == YOUNG_COLLECTION)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
    env["JIFEN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'worker.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0", "True", "True"]
