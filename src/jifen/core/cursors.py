"""Opaque page cursors: a list's position (the last row id shown) as a short string.

A cursor carries a letter naming the list it belongs to, so a cursor of one list handed
to another is refused rather than silently misread.
"""

from __future__ import annotations

import base64

from jifen.core.errors import InvalidInput

MAX_ID = 2**63 - 1


def encode_cursor(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}{row_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The row id in `cursor`, or 422 invalid-input for anything this API did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(kind) or not raw[len(kind) :].isdigit():
            raise ValueError(raw)
        row_id = int(raw[len(kind) :])
        if not 0 < row_id <= MAX_ID:  # ids are 64-bit; a bigger one overflows the store
            raise ValueError(raw)
        return row_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(field="cursor", reason="not a cursor this API gave out") from exc
