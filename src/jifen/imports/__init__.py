"""Bulk imports (PRODUCT.md O3): members, purchases and returns from CSV or Parquet files,
checked row by row, booked set-based, safe to re-run (docs/import.md)."""
