"""`jifen serve` and `jifen demo`: the HTTP API under uvicorn, the demo seeded first.

`jifen serve --workers N` runs N uvicorn worker processes (on Linux each listening on its
own socket, `jifen.api.workers`; elsewhere on one shared socket). Each builds its app
from the settings (`jifen.api.app.app_from_env`: its own engine and
connection pool of `JIFEN_DB_POOL_SIZE`, the system clock); `--database-url` reaches
them as `JIFEN_DATABASE_URL`. Nothing a request relies on lives in one process only:
idempotency keys, locks and counters are rows in the database, and what a process caches
(compiled rules by content digest, a programme's tier policy by its document, its
account ids) is immutable or checked against the row it came from. On SQLite the
workers share the file: its write lock (`BEGIN IMMEDIATE`, waited for up to 30 s) lets
one writer in at a time across processes, so several workers are safe there too and
help reads, not writes; an in-memory SQLite database would be one per process and is
refused.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from jifen.cli.errors import Failure
from jifen.cli.messages import say
from jifen.cli.output import err, out
from jifen.cli.state import sqlite_file, state_of
from jifen.core.clock import Clock
from jifen.core.settings import Settings
from jifen.db.migrate import upgrade
from jifen.db.uow import Database
from jifen.ledger.posting import Book
from jifen.ledger.queries import EXPIRING_SOON_DAYS, current_balance
from jifen.members import service as members
from jifen.members.models import Member
from jifen.members.schemas import IdentifierField
from jifen.programs.models import Program
from jifen.programs.service import book_for

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Worker processes (each with its own connection pool); about one per CPU "
        "core for throughput. 1 serves in this process.",
    ),
]


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early, in one line, when the address is taken (before seeding or printing)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise Failure(say("port-busy", host=host, port=port, reason=reason)) from exc


def serve_app(database: Database, clock: Clock, settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully and return (exit status 0).

    Uvicorn re-raises the signal that stopped it once it has restored the handlers it
    found; the no-op handlers installed here receive it, so a requested stop is a clean
    exit rather than a KeyboardInterrupt or a death by SIGTERM."""
    import signal

    import uvicorn

    from jifen.api.app import create_app, settle_collector
    from jifen.api.protocol import HTTP_PROTOCOL

    application = create_app(database, clock, settings=settings)
    settle_collector()
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        uvicorn.run(application, host=host, port=port, http=HTTP_PROTOCOL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err().print("jifen: stopped")


WORKER_HEALTHCHECK_S = 60


def in_memory(url: str) -> bool:
    """An in-memory SQLite database (one per process)."""
    try:
        return make_url(url).get_backend_name() == "sqlite" and sqlite_file(url) is None
    except ArgumentError:
        return False  # refused as a bad URL when the database is opened


def serve_workers(url: str, host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes, each building its app from the settings, until
    SIGINT or SIGTERM: on Linux one listening socket per worker (jifen.api.workers, so
    connections spread over them), elsewhere uvicorn's supervisor."""
    from jifen.api.workers import WorkersFailed, balanced, supervise

    os.environ["JIFEN_DATABASE_URL"] = url  # what the workers' settings read
    if balanced():
        try:
            supervise(host, port, workers)
        except WorkersFailed as exc:
            raise Failure(f"{exc}; nothing is served (the workers' errors are above)") from None
    else:
        import uvicorn

        from jifen.api.protocol import HTTP_PROTOCOL

        uvicorn.run(
            "jifen.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # TCP_NODELAY on each connection: the socket uvicorn binds for its workers
            # leaves Nagle's algorithm on (jifen.api.protocol).
            http=HTTP_PROTOCOL,
            # A worker answers the supervisor's health checks from a thread; starting one
            # (a fresh interpreter importing jifen) takes seconds on a busy machine, longer
            # than uvicorn's default 5 s, after which it would be killed and started again.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        )
    err().print("jifen: stopped")


def serve(
    ctx: typer.Context,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: WorkersOption = 1,
) -> None:
    """Serve the HTTP API (and its docs at /docs)."""
    state = state_of(ctx)
    if workers > 1 and in_memory(state.url):
        raise Failure(say("workers-memory", url=state.shown_url))
    database = state.database()
    ensure_port_free(host, port)
    shown = f"{workers} workers, " if workers > 1 else ""
    err().print(f"jifen: serving {state.shown_url} at http://{host}:{port} ({shown}docs: /docs)")
    if workers > 1:
        state.close()  # each worker opens its own engine
        serve_workers(state.url, host, port, workers)
    else:
        serve_app(database, state.clock, state.settings, host, port)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (0600), replacing it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def demo_key(database: Database, clock: Clock, program_id: int, key_file: Path) -> str:
    """The demo's admin key from its file; a new one if the file is gone."""
    from jifen.demo import create_demo_key

    if key_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = database.write(lambda s: create_demo_key(s, program_id, clock.now()))
    write_private(key_file, key + "\n")
    return key


def demo(
    ctx: typer.Context,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo's SQLite database and key live (default: JIFEN_DATA_DIR "
            "or ./.jifen).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Migrate and seed a demo programme on SQLite (once), then serve it."""
    from jifen.demo import seed_demo

    state = state_of(ctx)
    directory = data_dir if data_dir is not None else state.settings.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    state.use_demo_store(directory)
    ensure_port_free(host, port)
    with state.reaching():
        upgrade(state.url)
    database = state.database()
    info = seed_demo(database, state.clock)
    key_file = directory / "demo-key.txt"
    if info.seeded:
        assert info.api_key is not None
        write_private(key_file, info.api_key + "\n")
        (directory / "demo-seed.json").write_text(
            json.dumps(info.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    key = demo_key(database, state.clock, info.program_id, key_file)
    _demo_banner(database, state.clock, info.program_id, info.seeded, key, key_file, host, port)
    serve_app(database, state.clock, state.settings, host, port)


def _demo_banner(
    database: Database,
    clock: Clock,
    program_id: int,
    seeded: bool,
    key: str,
    key_file: Path,
    host: str,
    port: int,
) -> None:
    from jifen.demo import DEMO_PHONES
    from jifen.programs.service import get_program

    def read(session: Session) -> tuple[Program, Book, list[Member]]:
        found = get_program(session, program_id)
        people = [
            members.lookup(session, program_id, IdentifierField.PHONE, p) for p in DEMO_PHONES
        ]
        return found, book_for(session, found), people

    found, book, people = database.read(read)
    now = clock.now()
    console = out()
    base = f"http://{host}:{port}"
    console.print(
        f"jifen demo: {found.name} ({found.code}) — "
        + ("seeded just now" if seeded else "already seeded, reusing it")
    )
    table = Table(
        "id",
        "name",
        "phone",
        "status",
        "available",
        "pending",
        "held",
        f"expiring ≤{EXPIRING_SOON_DAYS}d",
    )
    for member in people:
        balance = current_balance(database, book, member.id, now)
        table.add_row(
            str(member.id),
            member.name or "",
            member.phone or "",
            member.status,
            f"{balance.available:,}",
            f"{balance.pending:,}",
            f"{balance.held:,}",
            f"{sum(item.points for item in balance.expiring_soon):,}",
        )
    console.print(table)
    console.print(f"URL:     {base}")
    console.print(f"API:     {base}/v1   docs: {base}/docs")
    console.print(f"API key: {key}   (admin scope; also in {key_file})")
    console.print(
        f'try:     curl -H "Authorization: Bearer {key}" {base}/v1/members/{people[0].id}/balance'
    )
    sys.stdout.flush()
