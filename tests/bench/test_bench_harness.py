"""The benchmark harness's logic that is not timing: percentiles, the response checks,
the load generator's accounting of every answer, the seeded ledger's consistency and the
checks that must catch a broken one, and the tier outcome the jobs benchmark expects."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bench.common import connect, http_request, json_field_check, percentile, prepare, run_load
from bench.jobs import expected_tier
from bench.seed import Shape, check_ledger, seed_ledger

from jifen.jobs.runner import run_job
from jifen.programs import examples
from jifen.programs.config import load_program_file
from jifen.programs.tiers import TierPolicy

NOW = datetime(2027, 3, 20, 4, 0, tzinfo=UTC)


def test_percentile_is_the_nearest_rank():
    hundred = [float(i) for i in range(1, 101)]
    assert percentile(hundred, 50) == 50
    assert percentile(hundred, 99) == 99
    assert percentile(hundred, 100) == 100
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 20
    assert percentile([10.0, 20.0, 30.0, 40.0], 99) == 40
    assert percentile([7.0], 1) == 7


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_refuses_a_rank_outside_0_100(q):
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_the_earn_check_wants_a_created_or_repeated_answer_with_points():
    check = json_field_check((201, 200), "points")
    assert check(201, b'{"points": 12}') is None
    assert check(200, b'{"points": 0}') is None
    assert check(422, b'{"title": "bad"}') == '422 {"title": "bad"}'
    assert check(201, b'{"points": -1}') == "201 points=-1"
    assert check(201, b'{"points": "12"}') == "201 points='12'"
    assert check(201, b'{"id": 3}') == "201 body without points"
    assert check(201, b"<html>") == "201 body without points"


class _Till(BaseHTTPRequestHandler):
    """Answers POST /n: 201 with points n, except every third request (422)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        n = int(self.path.strip("/"))
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = (422, {"title": "refused"}) if n % 3 == 0 else (201, {"points": n})
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def till() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Till)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_load_generator_counts_every_answer_and_reports_every_failure(till):
    host = f"127.0.0.1:{till}"
    requests = [http_request("POST", f"/{n}", host, {}, b"{}") for n in range(1, 31)]
    result = run_load(
        till,
        requests,
        clients=4,
        warmup_s=0,
        duration_s=60,
        check=json_field_check((201,), "points"),
    )
    assert result.exhausted  # all 30 were sent well inside the minute
    assert result.ok == 20
    assert result.failed == 10
    assert result.failures == {'422 {"title": "refused"}': 10}
    assert len(result.latencies) == 20
    assert result.latencies == sorted(result.latencies)
    assert result.summary()["failures"] == {'422 {"title": "refused"}': 10}


@pytest.mark.postgres
def test_a_seeded_ledger_is_consistent_and_stays_so_through_the_jobs(pg_db):
    prepared = prepare(pg_db.url, now=NOW)
    shape = Shape(members=30, expiring=3, pending=2, live=2, growth=3, tier_members=20)
    with connect(pg_db.url) as conn:
        seeded = seed_ledger(conn, prepared.program_id, shape, NOW, chunk=7)
        assert seeded == {
            "members": 30,
            "lots": 210,
            "journal_transactions": 300,
            "journal_entries": 600,
            "member_tiers": 20,
        }
        assert set(check_ledger(conn, prepared.program_id).values()) == {0}
        due = conn.execute(
            "SELECT count(*), sum(remaining) FROM lots WHERE status = 'available' "
            "AND expires_at <= %s",
            [NOW],
        ).fetchone()
        conn.rollback()
        assert due[0] == 90

        expired = run_job(pg_db, "expire", now=NOW, program_id=prepared.program_id)
        released = run_job(pg_db, "release", now=NOW, program_id=prepared.program_id)
        assert (expired.totals.items, expired.totals.points) == (90, due[1])
        assert released.totals.items == 60
        assert set(check_ledger(conn, prepared.program_id).values()) == {0}

        # A balance that no longer matches its entries and lots is caught.
        conn.execute(
            "UPDATE accounts SET available = available + 1 WHERE id = "
            "(SELECT min(id) FROM accounts WHERE kind = 'points' AND member_id IS NOT NULL)"
        )
        conn.commit()
        broken = check_ledger(conn, prepared.program_id)
        assert broken["accounts_differing_from_entries"] == 1
        assert broken["points_balances_differing_from_lots"] == 1
        assert broken["unbalanced_transactions"] == 0


def _retail_policy() -> TierPolicy:
    loaded = load_program_file(examples.text("retail-chain"))
    assert loaded.tiers is not None
    return loaded.tiers


@pytest.mark.parametrize(
    ("growth", "expected"),
    [
        (1499, ("silver", True, False)),  # below 银卡's retain: grace starts
        (1500, ("silver", False, False)),
        (7199, ("silver", False, False)),
        (7200, ("silver", False, True)),  # within 10% of 金卡: a reminder
        (8000, ("gold", False, False)),
        (18000, ("gold", False, True)),  # near 铂金
        (20000, ("platinum", False, False)),
    ],
)
def test_the_jobs_benchmark_expects_each_silver_member_s_outcome_from_the_thresholds(
    growth, expected
):
    assert expected_tier(_retail_policy(), "silver", Decimal(growth)) == expected
