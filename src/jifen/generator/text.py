"""Numbers as text, vectorised with Arrow: exact decimals from integer cents, zero-padded
ids, and CSV rows exactly as Python's csv module writes them (RFC 4180)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]


def decimal_text(units: Ints, places: int) -> pa.Array:
    """Non-negative integers of 10**-places as decimals with exactly `places` places
    (1234 with 2 places is "12.34", 5 is "0.05")."""
    scale = 10**places
    whole = pc.cast(pa.array(units // scale), pa.string())
    fraction = pc.utf8_lpad(pc.cast(pa.array(units % scale), pa.string()), places, "0")
    return pc.binary_join_element_wise(whole, fraction, ".")


def quantity_text(milli: Ints, by_weight: npt.NDArray[np.bool_]) -> pa.Array:
    """Quantities in thousandths: goods sold by weight with 3 places ("0.525"), pieces as
    whole numbers ("2")."""
    pieces = pc.cast(pa.array(milli // 1000), pa.string())
    return pc.if_else(pa.array(by_weight), decimal_text(milli, 3), pieces)


def numbered(prefix: str, numbers: Ints, width: int) -> pa.Array:
    """`prefix` and each number zero-padded to `width` digits: M00000042."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def id_width(count: int) -> int:
    """Digits of the ids of `count` things: at least 8, so ids look alike at every size."""
    return max(8, len(str(max(count, 1))))


_SPECIAL = np.frombuffer(b',"\r\n', dtype=np.uint8)


def _csv_field(column: pa.Array) -> pa.Array:
    # the csv module's QUOTE_MINIMAL: quote a field holding the delimiter, the quote
    # character or a line break, doubling the quotes inside. Most columns hold none of
    # them anywhere: one pass over their bytes says so.
    text = np.frombuffer(_value_bytes(column), dtype=np.uint8)
    if not np.isin(text, _SPECIAL).any():
        return column
    special = pc.match_substring_regex(column, r'[,"\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
    return pc.if_else(special, quoted, column)


def csv_rows(table: pa.Table, header: bool) -> bytes:
    """`table` (string columns) as CSV: UTF-8, comma separated, CRLF line ends, fields
    quoted only where needed: byte for byte what `csv.writer` writes."""
    parts: list[bytes] = []
    if header:
        names = pa.array(table.column_names, pa.string())
        parts.append(",".join(_csv_field(names).to_pylist()).encode() + b"\r\n")
    if table.num_rows:
        fields = [_csv_field(column.combine_chunks()) for column in table.columns]
        joined = pc.binary_join_element_wise(*fields, ",")
        with_end = pc.binary_join_element_wise(joined, "\r\n", "")
        parts.append(_value_bytes(with_end))
    return b"".join(parts)


def _value_bytes(strings: pa.Array) -> bytes:
    """The concatenated values of a string array without copying them one by one."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)
    first = int(offsets[strings.offset])
    last = int(offsets[strings.offset + len(strings)])
    data = strings.buffers()[2]
    return bytes(memoryview(data)[first:last]) if data is not None else b""
