"""Database plumbing: base, engines for SQLite and PostgreSQL, units of work, migrations."""
