"""What to generate (`Spec`), the data as chunks of rows (`SyntheticData`), and writing
it to files (`generate`).

Determinism: the seed is split (numpy `SeedSequence.spawn`) into one stream per part —
the catalogue, the members' enrolments and purchase rates, their profiles, the orders,
the returns — each a `Generator(PCG64)`. The same `Spec` gives the same rows, whatever
consumes them, and the members do not change when only the number of purchases does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa

from jifen.core.errors import InvalidInput
from jifen.generator.calendar import Timeline
from jifen.generator.catalogue import Catalogue, build_catalogue
from jifen.generator.members import (
    MAX_MEMBERS,
    MEMBER_COLUMNS,
    Channels,
    MemberPool,
    build_pool,
    member_tables,
)
from jifen.generator.purchases import PURCHASE_COLUMNS, RETURN_COLUMNS, Counts, Orders
from jifen.generator.shape import Shape
from jifen.generator.writers import Format, TableFile, open_table_file

CHUNK_MEMBERS = 100_000
CHUNK_ORDERS = 50_000
"""Orders per block (whole days, so a block may hold more): about 120,000 rows."""
EARLIEST = date(1990, 1, 1)
"""Members are up to 80 at enrolment, the first enrol two years before the start: their
birthdays stay after 1900-01-01, the earliest a member's profile accepts."""
LATEST = date(2200, 12, 31)


@dataclass(frozen=True)
class Spec:
    """What to generate. Stores and channels come from a programme (the CLI reads them
    from a programme file); `categories` are those its rules name, added to the
    catalogue when it lacks them."""

    members: int
    purchases: int
    seed: int
    start: date
    end: date
    stores: tuple[str, ...]
    channels: tuple[tuple[str, str], ...]
    """(code, kind) of each channel; kinds: store, pos, web, app, mini_program."""
    timezone: str = "Asia/Shanghai"
    categories: tuple[str, ...] = ()
    shape: Shape = field(default_factory=Shape)

    def check(self) -> None:
        """Refuse a spec that cannot be generated, naming the field."""
        if not 0 <= self.members <= MAX_MEMBERS:
            raise InvalidInput(field="members", reason=f"must be 0 … {MAX_MEMBERS:,}")
        if self.purchases < 0:
            raise InvalidInput(field="purchases", reason="must be 0 or more")
        if not 0 <= self.seed < 2**63:
            raise InvalidInput(field="seed", reason="must be 0 … 2**63 - 1")
        if self.end < self.start:
            raise InvalidInput(field="end", reason=f"{self.end} is before the start {self.start}")
        if not EARLIEST <= self.start <= self.end <= LATEST:
            what = "start" if self.start < EARLIEST else "end"
            raise InvalidInput(
                field=what, reason=f"the period must lie within {EARLIEST} … {LATEST}"
            )
        if not self.channels:
            raise InvalidInput(field="channels", reason="the programme has no active channel")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(field="timezone", reason=f"unknown zone {self.timezone!r}") from None

    @property
    def launch(self) -> date:
        """The programme's first day: the first members enrol then."""
        years = self.shape.programme_age_years
        return self.start - timedelta(days=round(years * 365.2425))


class SyntheticData:
    """The data of one `Spec` as chunks of string-column Arrow tables.

    `members()` and `purchases()` may be consumed in either order, each once;
    `returns()` holds the returns of the orders `purchases()` has made, so it comes after.
    """

    def __init__(self, spec: Spec) -> None:
        spec.check()
        self.spec = spec
        streams = np.random.SeedSequence(spec.seed).spawn(5)
        self._rng = [np.random.Generator(np.random.PCG64(s)) for s in streams]
        self.timeline = Timeline(spec.launch, spec.end, ZoneInfo(spec.timezone))
        self.channels = Channels(
            tuple(code for code, _ in spec.channels), tuple(kind for _, kind in spec.channels)
        )
        self.catalogue: Catalogue = build_catalogue(spec.shape, self._rng[0], spec.categories)
        self.pool: MemberPool = build_pool(
            spec.members,
            self.timeline,
            self.channels,
            len(spec.stores),
            spec.shape,
            self._rng[1],
        )
        self.orders = Orders(
            spec.purchases,
            (spec.start - spec.launch).days,
            self.pool,
            self.catalogue,
            self.timeline,
            self.channels,
            spec.stores,
            spec.shape,
            self._rng[3],
            self._rng[4],
        )

    @property
    def counts(self) -> Counts:
        return self.orders.counts

    def members(self) -> Iterator[pa.Table]:
        """Members in enrolment order (columns `MEMBER_COLUMNS`)."""
        shape, rng = self.spec.shape, self._rng[2]
        yield from member_tables(self.pool, self.timeline, self.channels, shape, rng, CHUNK_MEMBERS)

    def purchases(self) -> Iterator[pa.Table]:
        """Order lines in time order, an order's lines together (`PURCHASE_COLUMNS`)."""
        yield from self.orders.tables(CHUNK_ORDERS)

    def returns(self) -> pa.Table:
        """Returned lines in time order (`RETURN_COLUMNS`)."""
        return self.orders.returns_table()


@dataclass(frozen=True)
class Written:
    """What `generate` wrote."""

    files: dict[str, tuple[Path, int]]
    """members/purchases/returns → (path, size in bytes)."""
    members: int
    counts: Counts
    seconds: float


Progress = Callable[[str, int], None]
"""Called with ("members" | "purchases", rows or orders done so far)."""


def generate(spec: Spec, out: Path, fmt: Format, progress: Progress | None = None) -> Written:
    """Write DIR/members.<ext>, DIR/purchases.<ext> and DIR/returns.<ext>."""
    began = time.perf_counter()
    data = SyntheticData(spec)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, int]] = {}

    def write(
        name: str,
        columns: tuple[str, ...],
        tables: Iterator[pa.Table],
        done: Callable[[pa.Table], int] | None,
    ) -> None:
        path = out / f"{name}.{fmt.value}"
        target: TableFile = open_table_file(path, fmt, columns)
        try:
            for table in tables:
                target.write(table)
                if progress is not None and done is not None:
                    progress(name, done(table))
            files[name] = (path, target.close())
        except BaseException:
            target.discard()
            raise

    seen = {"members": 0}

    def members_done(table: pa.Table) -> int:
        seen["members"] += table.num_rows
        return seen["members"]

    write("members", MEMBER_COLUMNS, data.members(), members_done)
    write("purchases", PURCHASE_COLUMNS, data.purchases(), lambda _: data.counts.orders)
    write("returns", RETURN_COLUMNS, iter([data.returns()]), None)
    return Written(files, spec.members, data.counts, time.perf_counter() - began)
