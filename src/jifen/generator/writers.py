"""Files of string columns: CSV (RFC 4180, as the csv module writes it) or Parquet (one
file, row groups of `ROW_GROUP` rows, every column a string so decimals stay exact).

A file is written under a temporary name and renamed when closed, so a run that fails
half-way never leaves a file that looks complete.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from jifen.generator.text import csv_rows

ROW_GROUP = 100_000


class Format(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


class TableFile(Protocol):
    path: Path

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> int:
        """Finish the file; its size in bytes."""
        ...

    def discard(self) -> None:
        """Give up the file: its temporary file goes."""
        ...


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


class CsvFile:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self._stream: BinaryIO = _partial(path).open("wb")
        self._stream.write(
            csv_rows(pa.table({c: pa.array([], pa.string()) for c in columns}), True)
        )

    def write(self, table: pa.Table) -> None:
        for start in range(0, table.num_rows, ROW_GROUP):  # text of a slice stays < 2 GiB
            self._stream.write(csv_rows(table.slice(start, ROW_GROUP), header=False))

    def close(self) -> int:
        self._stream.close()
        os.replace(_partial(self.path), self.path)
        return self.path.stat().st_size

    def discard(self) -> None:
        self._stream.close()
        _partial(self.path).unlink(missing_ok=True)


class ParquetFile:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self._schema = pa.schema([(c, pa.string()) for c in columns])
        self._writer = pq.ParquetWriter(_partial(path), self._schema, compression="zstd")
        self._pending: list[pa.Table] = []
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._rows += table.num_rows
        if self._rows >= ROW_GROUP:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        joined = pa.concat_tables(self._pending) if self._pending else self._schema.empty_table()
        full = joined.num_rows - (0 if final else joined.num_rows % ROW_GROUP)
        for start in range(0, full, ROW_GROUP):
            group = joined.slice(start, min(ROW_GROUP, full - start))
            self._writer.write_table(group.cast(self._schema), row_group_size=ROW_GROUP)
        rest = joined.slice(full)
        self._pending = [rest] if rest.num_rows else []
        self._rows = rest.num_rows

    def close(self) -> int:
        self._flush(final=True)
        self._writer.close()
        os.replace(_partial(self.path), self.path)
        return self.path.stat().st_size

    def discard(self) -> None:
        self._writer.close()
        _partial(self.path).unlink(missing_ok=True)


def open_table_file(path: Path, fmt: Format, columns: tuple[str, ...]) -> TableFile:
    if fmt is Format.CSV:
        return CsvFile(path, columns)
    return ParquetFile(path, columns)
