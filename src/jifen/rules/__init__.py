"""Earning rules as data and their pure evaluator (PRODUCT.md E2, E3): no database, no clock."""
