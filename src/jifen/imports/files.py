"""Import files: CSV or Parquet in, rows out; rejected rows and their reasons out.

A row is a dict of column → value, where an empty cell is None, with its number in the
file (the header is row 1 in CSV, so the first data row is 2, as a spreadsheet shows it;
Parquet rows count from 1). CSV is read as UTF-8 (a byte-order mark, as spreadsheet
programs write, is skipped); Parquet through pyarrow, a row group at a time, so files of
any size stream in constant memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from jifen.core.errors import InvalidInput


class FileFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class Row:
    number: int
    values: dict[str, Any]


def format_of(path: Path, given: str | None = None) -> FileFormat:
    """The format named by `given`, else by the file's extension."""
    if given is not None:
        try:
            return FileFormat(given.lower())
        except ValueError:
            raise InvalidInput(field="format", reason="must be csv or parquet") from None
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        return FileFormat.CSV
    if suffix in {".parquet", ".pq"}:
        return FileFormat.PARQUET
    raise InvalidInput(
        field="format",
        reason=f"cannot tell the format of {path.name} from its extension "
        "(give --format csv or parquet)",
    )


def read_rows(
    path: Path, fmt: FileFormat, required: Sequence[str], any_of: Sequence[str] = ()
) -> Iterator[Row]:
    """The file's rows; the columns in `required` must all be present, and one of `any_of`
    at least (checked before the first row is read)."""
    if fmt == FileFormat.CSV:
        return _csv_rows(path, required, any_of)
    return _parquet_rows(path, required, any_of)


def _check_columns(
    path: Path, columns: Sequence[str], required: Sequence[str], any_of: Sequence[str]
) -> None:
    if any_of and not any(c in columns for c in any_of):
        raise InvalidInput(field=path.name, reason=f"needs one of the columns {', '.join(any_of)}")
    missing = [c for c in required if c not in columns]
    if missing:
        raise InvalidInput(
            field=path.name,
            reason=f"missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(columns) or 'none'})",
        )


def _csv_rows(path: Path, required: Sequence[str], any_of: Sequence[str]) -> Iterator[Row]:
    stream = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(stream)
    try:
        header = [name.strip() for name in next(reader, [])]
    except UnicodeDecodeError:
        stream.close()
        raise InvalidInput(field=path.name, reason="is not UTF-8 text") from None
    _check_columns(path, header, required, any_of)
    return _csv_iter(stream, reader, header)


def _csv_iter(stream: IO[str], reader: Any, header: list[str]) -> Iterator[Row]:
    with stream:
        for cells in reader:
            if not any(cells):
                continue  # a blank line
            values = {
                name: (cell if cell != "" else None)
                for name, cell in zip(header, cells, strict=False)
            }
            yield Row(reader.line_num, values)


def _parquet_rows(path: Path, required: Sequence[str], any_of: Sequence[str]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own errors for a file that is not Parquet
        raise InvalidInput(field=path.name, reason=f"is not a Parquet file ({exc})") from None
    _check_columns(path, source.schema_arrow.names, required, any_of)
    return _parquet_iter(source)


def _parquet_iter(source: Any) -> Iterator[Row]:
    number = 0
    for batch in source.iter_batches(batch_size=65_536):
        for values in batch.to_pylist():
            number += 1
            yield Row(number, {k: (None if v == "" else v) for k, v in values.items()})


class Rejects:
    """The rejected-rows file: the rows as they were read, with `row` (the row number in
    the imported file) and `reason` first. Created on the first rejection only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.unlink(missing_ok=True)  # a file from an earlier run would mislead
        self.count = 0
        self._writer: Any = None
        self._stream: IO[str] | None = None
        self._columns: list[str] = []

    def add(self, rows: Sequence[Row], reason: str) -> None:
        self.count += len(rows)
        if self.path is None:
            return
        if self._writer is None:
            self._stream = self.path.open("w", newline="", encoding="utf-8")
            self._columns = list(rows[0].values)
            self._writer = csv.writer(self._stream)
            self._writer.writerow(["row", "reason", *self._columns])
        for row in rows:
            self._writer.writerow(
                [
                    row.number,
                    reason,
                    *("" if row.values.get(c) is None else row.values[c] for c in self._columns),
                ]
            )

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
