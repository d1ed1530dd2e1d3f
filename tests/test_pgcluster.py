"""Tests for the throw-away PostgreSQL cluster helper (tests/pgcluster.py)."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pgcluster import PgCluster, database_url_for, find_pg_bindir

MIN_SERVER_MAJOR = 15


def _require_pg_bindir() -> Path:
    """The PostgreSQL bindir; skip without one, except on CI (CI=true) where that is a failure."""
    bindir = find_pg_bindir()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found "
            "(looked at `pg_config --bindir`, PATH and /usr/lib/postgresql/*/bin)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true, so this is an error, not a skip")
        pytest.skip(message)
    return bindir


def _process_gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (a not-yet-reaped zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_database_url_for_swaps_only_the_database() -> None:
    base = "postgresql+psycopg://postgres:s3cret@127.0.0.1:5433/postgres?sslmode=disable"
    assert database_url_for(base, "jifen_x") == (
        "postgresql+psycopg://postgres:s3cret@127.0.0.1:5433/jifen_x?sslmode=disable"
    )


@pytest.mark.postgres
def test_cluster_lifecycle() -> None:
    bindir = _require_pg_bindir()
    name = "jifen_pgcluster_test"
    # Needs SQL quoting (case, dash, space). Such names are fine for SQLAlchemy URLs but
    # not for libpq URIs (psycopg rejects the unencoded space), hence a plain name above.
    odd_name = "Jifen-PgCluster test"

    with PgCluster(bindir) as cluster:
        assert cluster.url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/postgres"
        data_dir = cluster.data_dir
        base_dir = cluster.base_dir
        assert (data_dir / "PG_VERSION").is_file()
        postmaster_pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

        url = cluster.create_database(name)
        assert url == database_url_for(cluster.url, name)

        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("select version(), current_database()").fetchone()
            assert row is not None
            version, database = row
            assert database == name
            assert conn.info.server_version // 10000 >= MIN_SERVER_MAJOR, version
            major = int(str(version).split()[1].split(".")[0])
            assert major >= MIN_SERVER_MAJOR, version

        assert make_url(cluster.create_database(odd_name)).database == odd_name
        with cluster.connect(odd_name) as conn:
            assert conn.execute("select current_database()").fetchone() == (odd_name,)
            # drop_database uses WITH (FORCE): this open session must not block it.
            cluster.drop_database(odd_name)
        with cluster.connect(name) as conn:
            conn.execute("create table t (x int); insert into t values (42)")
        copy_url = cluster.create_database("jifen_copy", template=name)
        assert make_url(copy_url).database == "jifen_copy"
        with cluster.connect("jifen_copy") as conn:
            assert conn.execute("select x from t").fetchall() == [(42,)]
        cluster.drop_database("jifen_copy")

        cluster.drop_database(name)
        cluster.drop_database(name)  # IF EXISTS: dropping twice is fine
        with cluster.connect() as conn:
            found = conn.execute(
                "select datname from pg_database where datname = any(%s)", ([name, odd_name],)
            )
            assert found.fetchall() == []

    assert not cluster.running
    assert cluster.data_dir == data_dir
    assert not data_dir.exists()
    assert not base_dir.exists()
    assert _process_gone(postmaster_pid)
    cluster.stop()  # idempotent
