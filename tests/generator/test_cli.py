"""`jifen gen`: the files and the one-line summary, a programme file's stores, channels
and time zone, and one-line refusals of bad arguments."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clikit import invoke, ok, refused
from jifen.programs import examples

from .conftest import read_csv, read_parquet


def gen(*args: str) -> str:
    return ok(invoke(None, ["gen", *args]))


def test_gen_writes_the_three_files_and_says_what_it_wrote_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    said = gen("--members", "300", "--purchases", "2000", "--seed", "3", "--out", str(out))
    lines = said.strip().splitlines()
    assert len(lines) == 1
    assert re.match(
        r"wrote 300 members, 2,000 orders in [\d,]+ lines \(\d+ unclaimed\), \d+ returns? of "
        r"\d+ lines?: members\.csv [\d.]+ kB, purchases\.csv [\d.]+ kB, returns\.csv [\d.]+ k?B "
        r"in [\d.]+ s \([\d,]+ rows/s\)$",
        lines[0],
    ), lines[0]
    members = read_csv(out / "members.csv")
    purchases = read_csv(out / "purchases.csv")
    assert len(members) == 300
    assert len({row["order_id"] for row in purchases}) == 2000
    assert f"in {len(purchases):,} lines" in lines[0]
    # the retail-chain example by default, in Shanghai time over the default period
    assert {row["store"] for row in purchases} == {"sh-001", "sh-002", "bj-001", ""}
    assert {row["channel"] for row in purchases} == {"store", "app", "mini_program"}
    first, last = purchases[0]["occurred_at"], purchases[-1]["occurred_at"]
    assert first >= "2024-01-01T00:00:00+08:00"
    assert last < "2026-11-23T00:00:00+08:00"


def test_gen_parquet_holds_what_csv_holds(tmp_path: Path) -> None:
    common = ["--members", "200", "--purchases", "1000", "--start", "2025-06-01"]
    gen(*common, "--out", str(tmp_path / "c"))
    gen(*common, "--out", str(tmp_path / "p"), "--format", "parquet")
    for name in ("members", "purchases", "returns"):
        assert read_parquet(tmp_path / "p" / f"{name}.parquet") == read_csv(
            tmp_path / "c" / f"{name}.csv"
        )


def test_a_programme_file_gives_the_stores_channels_and_time_zone(tmp_path: Path) -> None:
    text = examples.text("retail-chain")
    text = text.replace("timezone: Asia/Shanghai", "timezone: Europe/Berlin")
    text = text.replace("code: bj-001", 'code: bj,"001"')  # a code that CSV must quote
    text = text.replace("code: mini_program\n    name: 乐家小程序\n    kind: mini_program",
                        "code: web-shop\n    name: 网店\n    kind: web")  # fmt: skip
    programme = tmp_path / "berlin.yaml"
    programme.write_text(text, encoding="utf-8")
    gen(
        "--members", "300", "--purchases", "3000", "--start", "2025-03-20", "--end",
        "2025-04-10", "--program-file", str(programme), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    purchases = read_csv(tmp_path / "out" / "purchases.csv")
    assert {row["store"] for row in purchases} == {"sh-001", "sh-002", 'bj,"001"', ""}
    assert {row["channel"] for row in purchases} == {"store", "app", "web-shop"}
    assert '"bj,""001"""' in (tmp_path / "out" / "purchases.csv").read_text(encoding="utf-8")
    # summer time began on 30 March: each instant carries the zone's offset at that instant
    berlin = ZoneInfo("Europe/Berlin")
    offsets = set()
    previous = None
    for row in purchases:
        at = datetime.fromisoformat(row["occurred_at"])
        assert at.utcoffset() == at.astimezone(berlin).utcoffset(), row["occurred_at"]
        assert previous is None or previous <= at
        previous = at
        offsets.add(row["occurred_at"][-6:])
    assert offsets == {"+01:00", "+02:00"}


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--members", "-1"], 2, "--members"),
        (["--purchases", "-5"], 2, "--purchases"),
        (["--format", "xlsx"], 2, "--format"),
        (["--start", "2025-13-01"], 2, "--start"),
        (["--start", "2025-06-01", "--end", "2025-05-31"], 2, "--end 2025-05-31 is before"),
        (["--start", "1960-01-01", "--end", "1960-02-01"], 2, "--start 1960-01-01: give a day"),
        (["--end", "2201-01-01"], 2, "--end 2201-01-01: give a day from 1990-01-01"),
        (["--members", "100000001"], 2, "--members"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(
    tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    refused(invoke(None, ["gen", "--out", str(tmp_path / "out"), *args]), code, fragment)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_directory_or_a_bad_programme_file_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused(invoke(None, ["gen", "--out", str(blocker / "out")]), 1, "a-file")
    refused(invoke(None, ["gen", "--out", str(blocker)]), 1, "a-file is a file, not a directory")
    refused(
        invoke(None, ["gen", "--out", str(tmp_path / "o"), "--program-file", str(tmp_path / "no")]),
        1,
        "No such file",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("program:\n  code: x\n", encoding="utf-8")
    refused(
        invoke(None, ["gen", "--out", str(tmp_path / "o"), "--program-file", str(broken)]),
        1,
        "broken.yaml",
    )
    assert not (tmp_path / "o").exists()
