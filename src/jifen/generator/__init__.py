"""Synthetic loyalty data: members, purchases and returns at any size, from a seed.

`SyntheticData(Spec(...))` yields the rows as Arrow tables of string columns, in chunks
(members in enrolment order, purchase lines in time order), for a file writer or an
importer to consume; `generate` writes them as CSV or Parquet files in exactly the
formats `jifen import` reads (docs/generator.md describes the files and the shape).

What it guarantees: the same `Spec` gives the same rows, byte for byte once written;
every order's `total` is the sum of its lines' amounts (quantity × unit price, rounded
half up to cents) less their discounts, and no discount exceeds its line; order ids are
unique and an order's lines are consecutive; a member buys only after enrolling; every
instant lies within the period, in the programme's zone, with its offset. Vectorised
numpy draws (PCG64) keep 10 million orders to minutes; no order is a Python object.

Imports point down: this package uses `jifen.core` only. The stores, channels and time
zone come in as plain values (the CLI reads them from a programme file).
"""

from jifen.generator.service import Spec, SyntheticData, Written, generate
from jifen.generator.writers import Format

__all__ = ["Format", "Spec", "SyntheticData", "Written", "generate"]
