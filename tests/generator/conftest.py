"""A moderate data set made once per test session (4,000 members, 20,000 orders over
2025, in CSV and Parquet), read back as the importer would read it, and `spec`, the
retail-chain programme's stores and channels as `jifen gen` takes them by default."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jifen.cli.generate import DEFAULT_PROGRAMME, programme_spec
from jifen.generator import Format, Spec, Written, generate
from jifen.programs import examples
from jifen.programs.config import load_program_file

Row = dict[str, str]


def spec(**overrides: Any) -> Spec:
    """A `Spec` for the retail-chain example programme, as `jifen gen` makes it."""
    loaded = load_program_file(examples.text(DEFAULT_PROGRAMME))
    given: dict[str, Any] = {
        "members": 500,
        "purchases": 3000,
        "seed": 1,
        "start": date(2025, 1, 1),
        "end": date(2025, 12, 31),
        **programme_spec(loaded),
    }
    return Spec(**(given | overrides))


def read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def read_parquet(path: Path) -> list[Row]:
    rows: list[Row] = pq.read_table(path).to_pylist()
    return rows


@dataclass(frozen=True)
class DataSet:
    spec: Spec
    written: Written
    members: list[Row]
    purchases: list[Row]
    returns: list[Row]
    parquet: Path

    def orders(self) -> dict[str, list[Row]]:
        """Order id → its lines, in file order."""
        found: dict[str, list[Row]] = {}
        for row in self.purchases:
            found.setdefault(row["order_id"], []).append(row)
        return found


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    made = spec(members=4000, purchases=20_000, seed=7)
    out = tmp_path_factory.mktemp("generated")
    written = generate(made, out / "csv", Format.CSV)
    generate(made, out / "parquet", Format.PARQUET)
    return DataSet(
        spec=made,
        written=written,
        members=read_csv(out / "csv" / "members.csv"),
        purchases=read_csv(out / "csv" / "purchases.csv"),
        returns=read_csv(out / "csv" / "returns.csv"),
        parquet=out / "parquet",
    )
