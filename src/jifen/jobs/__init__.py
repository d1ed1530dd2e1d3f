"""Scheduled jobs. Each job is a plain function over the database: batched (one write
transaction per batch, so a crash loses at most the batch in flight, which the next run
redoes), idempotent (it only touches what is due), and safe with several workers (row
locks with SKIP LOCKED on PostgreSQL, one writer at a time on SQLite)."""
