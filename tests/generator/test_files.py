"""The files: byte-identical for the same seed, the fixed columns, CSV as the csv module
writes it, Parquet all strings in row groups of 100,000, and both holding the same data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jifen.generator import Format, generate
from jifen.generator.text import csv_rows
from jifen.generator.writers import ROW_GROUP, ParquetFile

from .conftest import DataSet, read_csv, read_parquet, spec

MEMBERS = (
    "external_id,phone,email,card_number,name,birthday,gender,city,language,"
    "enrolment_channel,enrolled_at"
)
PURCHASES = (
    "order_id,member_external_id,occurred_at,channel,store,payment_method,sku,category,"
    "brand,quantity,unit_price,discount,total"
)
RETURNS = "order_id,return_id,occurred_at,sku,quantity,amount"
NAMES = ("members", "purchases", "returns")


def _files(out: Path, fmt: Format) -> dict[str, bytes]:
    return {name: (out / f"{name}.{fmt.value}").read_bytes() for name in NAMES}


@pytest.mark.parametrize("fmt", list(Format))
def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_data(
    tmp_path: Path, fmt: Format
) -> None:
    generate(spec(seed=5), tmp_path / "a", fmt)
    generate(spec(seed=5), tmp_path / "b", fmt)
    generate(spec(seed=6), tmp_path / "c", fmt)
    first, again, other = (_files(tmp_path / d, fmt) for d in "abc")
    assert first == again
    for name in NAMES:
        assert first[name] != other[name], name
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        f"{name}.{fmt.value}" for name in NAMES
    )


def test_the_members_do_not_change_with_the_number_of_purchases(tmp_path: Path) -> None:
    generate(spec(purchases=100), tmp_path / "few", Format.CSV)
    generate(spec(purchases=5000), tmp_path / "many", Format.CSV)
    assert (tmp_path / "few" / "members.csv").read_bytes() == (
        tmp_path / "many" / "members.csv"
    ).read_bytes()
    assert len(read_csv(tmp_path / "many" / "purchases.csv")) > len(
        read_csv(tmp_path / "few" / "purchases.csv")
    )


def test_csv_files_have_the_fixed_header_and_are_what_the_csv_module_writes(
    dataset: DataSet,
) -> None:
    for name, header in zip(NAMES, (MEMBERS, PURCHASES, RETURNS), strict=True):
        raw = dataset.written.files[name][0].read_bytes()
        assert raw.decode("utf-8").split("\r\n", 1)[0] == header
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        again = io.StringIO(newline="")
        csv.writer(again).writerows(rows)
        assert again.getvalue().encode("utf-8") == raw, name
    assert len(dataset.purchases) == dataset.written.counts.lines
    assert len(dataset.members) == 4000


def test_fields_with_commas_quotes_or_line_breaks_are_quoted_as_rfc_4180_says() -> None:
    values = ["plain", "", "a,b", 'say "hi"', "上海", "two\nlines", "cr\rhere", " space "]
    table = pa.table({"x": values, "y": list(reversed(values))})
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(["x", "y"])
    writer.writerows(zip(values, reversed(values), strict=True))
    assert csv_rows(table, header=True) == expected.getvalue().encode("utf-8")


def test_parquet_holds_the_same_rows_as_csv_all_as_strings(dataset: DataSet) -> None:
    csv_rows_by_name = {
        "members": dataset.members,
        "purchases": dataset.purchases,
        "returns": dataset.returns,
    }
    for name, header in zip(NAMES, (MEMBERS, PURCHASES, RETURNS), strict=True):
        path = dataset.parquet / f"{name}.parquet"
        schema = pq.read_schema(path)
        assert schema.names == header.split(",")
        assert all(field.type == pa.string() for field in schema)
        assert read_parquet(path) == csv_rows_by_name[name], name


def test_parquet_is_written_in_row_groups_of_100_000_rows(tmp_path: Path) -> None:
    target = ParquetFile(tmp_path / "t.parquet", ("a",))
    for start in range(0, 210_000, 70_000):
        target.write(pa.table({"a": [str(i) for i in range(start, start + 70_000)]}))
    size = target.close()
    found = pq.ParquetFile(tmp_path / "t.parquet")
    groups = [found.metadata.row_group(i).num_rows for i in range(found.num_row_groups)]
    assert groups == [ROW_GROUP, ROW_GROUP, 10_000]
    assert found.read().column("a").to_pylist() == [str(i) for i in range(210_000)]
    assert size == (tmp_path / "t.parquet").stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temporary file left


def test_a_run_that_fails_leaves_no_file_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "purchases.csv").mkdir()  # the rename onto it fails once members are written
    with pytest.raises(OSError, match="directory"):
        generate(spec(), out, Format.CSV)
    assert sorted(p.name for p in out.iterdir()) == ["members.csv", "purchases.csv"]
    assert list((out / "purchases.csv").iterdir()) == []
