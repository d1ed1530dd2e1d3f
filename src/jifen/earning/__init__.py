"""Purchases, behaviour events and returns → rules → ledger (PRODUCT.md E1–E6)."""
