"""Throw-away PostgreSQL clusters for the test suite.

This module has no pytest dependency; fixtures (in ``conftest.py``) wrap it.

Typical use::

    with PgCluster() as cluster:
        url = cluster.create_database("jifen_test")
        ...  # sqlalchemy.create_engine(url)

A cluster lives in a fresh temporary directory (``tempfile.mkdtemp``) holding
``data/`` (the cluster), ``sock/`` (the Unix socket directory) and ``log``
(the server log). The server listens on ``127.0.0.1`` on a free TCP port and
trusts every local connection, with durability switched off for speed.

``initdb`` refuses to run as root, so when the tests run as root (as they do
in CI) ``initdb``, ``pg_ctl`` and the server run as the unprivileged system
user :data:`TEST_USER` (created on first use; ``nobody`` if ``useradd`` is
unavailable), switched to with ``runuser`` or ``setpriv``.

Stopping the cluster (``stop()``, leaving the ``with`` block, or the ``atexit``
hook registered by ``start()``) kills the server and removes the directory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = [
    "TEST_USER",
    "PgCluster",
    "database_url_for",
    "find_pg_bindir",
]

#: Unprivileged system user that owns the cluster when the tests run as root.
TEST_USER = "jifentest"

_FALLBACK_USER = "nobody"
_SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c max_connections=200"
#: Durability off: a throw-away test cluster need not survive a power cut.
_FAST_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
_START_TIMEOUT_S = 60
_COMMAND_TIMEOUT_S = 120
_START_ATTEMPTS = 3  # a free port can be taken between probing and binding
_LOG_TAIL_LINES = 40
# sun_path is 108 bytes on Linux; the socket file is "<sockdir>/.s.PGSQL.<port>".
_MAX_SOCKET_DIR_LEN = 107 - len("/.s.PGSQL.65535")


def _has_server_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def find_pg_bindir() -> Path | None:
    """Return the directory holding PostgreSQL's ``initdb`` and ``pg_ctl``, or None.

    Looked up, in order: ``pg_config --bindir`` (if ``pg_config`` is on PATH
    and that directory has ``initdb``), ``initdb`` on PATH (its directory, or
    the directory its symlink resolves to), and the highest-numbered
    ``/usr/lib/postgresql/<version>/bin`` (Debian/Ubuntu layout).
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                stdin=subprocess.DEVNULL,
                timeout=30,
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)

    initdb = shutil.which("initdb")
    if initdb is not None:
        for candidate in (Path(initdb).parent, Path(initdb).resolve().parent):
            if _has_server_binaries(candidate):
                return candidate

    versioned: list[tuple[tuple[int, ...], Path]] = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if re.fullmatch(r"\d+(\.\d+)*", version) and _has_server_binaries(bindir):
            versioned.append((tuple(int(part) for part in version.split(".")), bindir))
    if versioned:
        return max(versioned)[1]
    return None


def database_url_for(base_url: str, name: str) -> str:
    """Return ``base_url`` with its database name replaced by ``name``.

    >>> database_url_for("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", "x")
    'postgresql+psycopg://postgres@127.0.0.1:5432/x'
    """
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_test_user() -> pwd.struct_passwd:
    """Return the account to run PostgreSQL as when we are root, creating it if needed."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(TEST_USER)
    useradd = shutil.which("useradd") or next(
        (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if os.access(p, os.X_OK)), None
    )
    if useradd is not None:
        # May fail harmlessly when a parallel test worker creates the user first.
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=_COMMAND_TIMEOUT_S,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(TEST_USER)
    try:
        return pwd.getpwnam(_FALLBACK_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, but neither user {TEST_USER!r} (useradd failed or is missing) "
            f"nor {_FALLBACK_USER!r} exists to run PostgreSQL as; initdb refuses to run as root"
        ) from None


def _traversable_by_others(directory: Path) -> bool:
    """True if every ancestor of ``directory`` (inclusive) is world-searchable."""
    for part in (directory, *directory.parents):
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(server log is empty)"


class PgCluster:
    """A private, disposable PostgreSQL cluster; a context manager.

    ``start()`` runs ``initdb`` and starts the server on a free port of
    127.0.0.1; ``stop()`` kills it (``pg_ctl stop -m immediate``) and deletes
    every file. Both are idempotent. Connections need no password as user
    ``postgres``.
    """

    def __init__(self, bindir: Path | str | None = None, *, durable: bool = False) -> None:
        """Prepare a cluster using the binaries in ``bindir`` (default: :func:`find_pg_bindir`).

        ``durable=True`` keeps fsync and synchronous commit on (benchmarks); tests turn
        them off."""
        self._durable = durable
        self._bindir = Path(bindir) if bindir is not None else None
        self._base_dir: Path | None = None
        self._port: int | None = None
        self._running = False
        self._run_as: pwd.struct_passwd | None = None
        self._atexit_registered = False
        self._owner_pid = os.getpid()  # a forked child must not stop its parent's cluster
        self._needs_cleanup = False

    # -- public API -------------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        """Directory of the PostgreSQL binaries in use."""
        if self._bindir is None:
            found = find_pg_bindir()
            if found is None:
                raise RuntimeError(
                    "PostgreSQL server binaries (initdb, pg_ctl) not found: looked at "
                    "`pg_config --bindir`, `initdb` on PATH and /usr/lib/postgresql/*/bin"
                )
            self._bindir = found
        return self._bindir

    @property
    def base_dir(self) -> Path:
        """The temporary directory holding ``data/``, ``sock/`` and ``log``.

        Still answers after ``stop()`` (naming the removed directory).
        """
        if self._base_dir is None:
            raise RuntimeError("PgCluster has never been started")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (``PGDATA``); removed by ``stop()``."""
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's Unix-domain socket."""
        return self.base_dir / "sock"

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self.base_dir / "log"

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None or not self._running:
            raise RuntimeError("PgCluster is not running")
        return self._port

    @property
    def running(self) -> bool:
        """Whether ``start()`` succeeded and ``stop()`` has not been called since."""
        return self._running

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def start(self) -> PgCluster:
        """Create the cluster and start the server; return ``self``.

        Raises RuntimeError (with the tail of the server log) if it cannot start;
        nothing is left behind in that case.
        """
        if self._running:
            return self
        bindir = self.bindir
        self._owner_pid = os.getpid()
        self._run_as = _ensure_test_user() if os.geteuid() == 0 else None
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._make_base_dir()
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-instructions",
                    "--no-sync",  # a throw-away cluster needs no durability
                ],
                what="initdb",
            )
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server immediately and remove the temporary directory. Idempotent."""
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if os.getpid() != self._owner_pid:
            return
        self._running = False
        base_dir = self._base_dir
        if base_dir is None or not self._needs_cleanup:
            return
        self._needs_cleanup = False
        data_dir = base_dir / "data"
        if (data_dir / "postmaster.pid").exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._exec(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(data_dir),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                    ],
                    base_dir,
                )
            self._kill_leftover_postmaster(data_dir)
        shutil.rmtree(base_dir, ignore_errors=True)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit psycopg connection to ``dbname`` as ``postgres``."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create the new database ``name``; return its SQLAlchemy URL.

        The database is empty unless ``template`` names a database to copy (which is
        much faster than re-running migrations; the template must have no sessions).
        """
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(query)
        return database_url_for(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions (``WITH (FORCE)``)."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._running else "stopped"
        return f"<PgCluster {state} dir={self._base_dir}>"

    # -- internals --------------------------------------------------------------------------

    def _make_base_dir(self) -> None:
        parent: str | None = None
        if self._run_as is not None and not _traversable_by_others(Path(tempfile.gettempdir())):
            parent = "/tmp"  # the server user must be able to reach the directory
        base_dir = Path(tempfile.mkdtemp(prefix="jifen-pg-", dir=parent))
        self._base_dir = base_dir
        self._needs_cleanup = True
        if len(str(base_dir / "sock")) > _MAX_SOCKET_DIR_LEN:
            raise RuntimeError(f"temporary directory path too long for a Unix socket: {base_dir}")
        (base_dir / "sock").mkdir()
        if self._run_as is not None:
            for path in (base_dir, base_dir / "sock"):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _start_server(self) -> None:
        pg_ctl = str(self.bindir / "pg_ctl")
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            options = f"-p {port} -k {shlex.quote(str(self.socket_dir))} {_SERVER_OPTIONS}"
            if not self._durable:
                options += f" {_FAST_OPTIONS}"
            result = self._exec(
                [
                    pg_ctl,
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-l",
                    str(self.log_path),
                ],
                self.base_dir,
            )
            if result.returncode == 0:
                self._port = port
                self._running = True
                return
            log_tail = _tail(self.log_path)
            self._kill_leftover_postmaster(self.data_dir)
            if attempt < _START_ATTEMPTS and "could not bind" in log_tail:
                self.log_path.unlink(missing_ok=True)
                continue  # somebody took the port in the meantime; try another one
            raise RuntimeError(
                f"PostgreSQL failed to start (pg_ctl exit status {result.returncode}, "
                f"port {port}, binaries {self.bindir})\n"
                f"pg_ctl output:\n{result.stdout.strip()}\n"
                f"server log {self.log_path} (tail; the directory is removed):\n{log_tail}"
            )

    def _command(self, argv: Sequence[str]) -> list[str]:
        """``argv``, wrapped to run as the unprivileged user when we are root."""
        user = self._run_as
        if user is None:
            return list(argv)
        if runuser := shutil.which("runuser") or _sbin("runuser"):
            return [runuser, "-u", user.pw_name, "--", *argv]
        if setpriv := shutil.which("setpriv") or _sbin("setpriv"):
            return [
                setpriv,
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
                *argv,
            ]
        raise RuntimeError("running as root, but neither runuser nor setpriv is available")

    def _exec(self, argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool (as the server user) with a clean env; output is captured."""
        env = {
            "PATH": os.pathsep.join([str(self.bindir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(cwd),
            "LC_ALL": "C",
            "TZ": "UTC",
        }
        # cwd must be enterable by the server user: pg_ctl/initdb fail in an unreadable cwd.
        return subprocess.run(
            self._command(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )

    def _run(self, argv: Sequence[str], *, what: str) -> None:
        result = self._exec(argv, self.base_dir)
        if result.returncode != 0:
            raise RuntimeError(
                f"{what} failed (exit status {result.returncode}): {shlex.join(argv)}\n"
                f"{result.stdout.strip()}"
            )

    @staticmethod
    def _kill_leftover_postmaster(data_dir: Path) -> None:
        """Kill the postmaster recorded in ``data_dir/postmaster.pid`` if it is still alive.

        Fallback for when ``pg_ctl`` could not stop it: SIGQUIT (immediate shutdown,
        which also ends the server's children), then SIGKILL.
        """
        try:
            pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return  # no pid file, or the process is gone
        if b"postgres" not in cmdline and b"postmaster" not in cmdline:
            return  # stale pid file; the pid now belongs to something else
        for sig, grace_s in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except OSError:
                return
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                if not _alive(pid):
                    return
                time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a postmaster we are the parent of) counts as gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _sbin(name: str) -> str | None:
    """``name`` from the sbin directories, which are often missing from PATH."""
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
