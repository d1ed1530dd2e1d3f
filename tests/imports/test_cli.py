"""`jifen import members|purchases FILE` end to end: the summary, the rejected-rows file
beside the input, a re-run that imports nothing twice, and one-line refusals."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clikit import Run, ok, refused
from jifen.db.uow import Database

from .twins import programme_text, purchase_rows, sample, state, write_members_csv, write_rows


def setup(run: Run, tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "retail.yaml").write_text(programme_text(capped=False), encoding="utf-8")
    ok(run("programs", "apply", str(tmp_path / "retail.yaml")))
    data = sample(datetime.now(UTC), members=8, orders=30, seed=2)
    write_members_csv(tmp_path / "members.csv", data.members)
    rows = purchase_rows(data.orders)
    one = {"quantity": "1", "unit_price": "10.00", "discount": "0", "total": "10.00"}
    rows.append(dict(rows[0], order_id="NOBODY", member_external_id="M404", **one))
    write_rows(tmp_path / "purchases.csv", rows)
    return tmp_path / "members.csv", tmp_path / "purchases.csv"


def test_import_members_then_purchases(run: Run, database: Database, tmp_path: Path) -> None:
    members, purchases = setup(run, tmp_path)
    assert ok(run("import", "members", str(members), "--program", "retail-chain")) == (
        "members: 8 imported, 0 already there, 0 rejected, of 8 rows\n"
    )
    shown = ok(run("import", "purchases", str(purchases), "--program", "retail-chain"))
    lines = shown.splitlines()
    assert lines[0].startswith("purchases: 30 orders imported (")
    assert ", 1 already there, 1 rejected, of 32 orders in " in lines[0]
    rejected = tmp_path / "purchases.rejected.csv"
    assert lines[1] == f"1 rejected rows, each with its reason: {rejected}"
    with rejected.open(encoding="utf-8") as stream:
        (row,) = list(csv.DictReader(stream))
    assert (row["order_id"], row["reason"]) == (
        "NOBODY",
        "No member external_id=M404 in this programme.",
    )
    program_id = 1
    before = state(database, program_id)
    assert len(before["purchases"]) == 30
    # a re-run imports nothing twice
    again = ok(run("import", "purchases", str(purchases), "--program", "retail-chain"))
    assert again.startswith(
        "purchases: 0 orders imported (0 unclaimed), 31 already there, 1 rejected"
    )
    assert state(database, program_id) == before


def test_refusals_are_one_line(run: Run, tmp_path: Path) -> None:
    members, purchases = setup(run, tmp_path)
    refused(
        run("import", "purchases", str(purchases), "--program", "nope"),
        1,
        "no programme with code nope",
    )
    refused(
        run("import", "purchases", str(tmp_path / "missing.csv"), "--program", "retail-chain"),
        2,
        "missing.csv",
    )
    refused(
        run("import", "purchases", str(members), "--program", "retail-chain"),
        1,
        "members.csv: missing column(s) order_id, occurred_at, channel, sku, unit_price",
    )
    (tmp_path / "orders.xlsx").write_bytes(b"PK\x03\x04")
    refused(
        run("import", "purchases", str(tmp_path / "orders.xlsx"), "--program", "retail-chain"),
        1,
        "cannot tell the format of orders.xlsx",
    )
    refused(
        run(
            "import",
            "purchases",
            str(purchases),
            "--program",
            "retail-chain",
            "--format",
            "parquet",
        ),
        1,
        "purchases.csv: is not a Parquet file",
    )
    (tmp_path / "nobody.csv").write_text("name,city\n张三,上海\n", encoding="utf-8")
    refused(
        run("import", "members", str(tmp_path / "nobody.csv"), "--program", "retail-chain"),
        1,
        "nobody.csv: needs one of the columns phone, email, card_number, external_id",
    )


def test_gen_into_a_programme_imports_every_generated_row(
    run: Run, database: Database, tmp_path: Path
) -> None:
    (tmp_path / "retail.yaml").write_text(programme_text(capped=False), encoding="utf-8")
    ok(run("programs", "apply", str(tmp_path / "retail.yaml")))
    # The generator spreads orders over whole local days up to --end; an order later
    # than now would be refused as in the future, so the data ends yesterday.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    shown = ok(
        run(
            "gen",
            "--members",
            "120",
            "--purchases",
            "600",
            "--seed",
            "9",
            "--start",
            (yesterday - timedelta(days=365)).isoformat(),
            "--end",
            yesterday.isoformat(),
            "--into",
            "retail-chain",
        )
    ).splitlines()
    assert shown[1] == "members: 120 imported, 0 already there, 0 rejected, of 120 rows"
    assert shown[2].startswith("purchases: 600 orders imported (")
    assert ", 0 already there, 0 rejected, of 600 orders in " in shown[2]
    assert shown[3].startswith("returns: ")
    assert " imported, 0 already there, 0 rejected, of " in shown[3]
    got = state(database, 1)
    assert len(got["purchases"]) == 600
    assert sum(a[3] for (_, kind), a in got["accounts"].items() if kind == "points") > 0
    refused(run("gen", "--members", "3"), 2, "give --out DIR, or --into PROGRAMME")
