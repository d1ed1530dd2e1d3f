"""The `jifen` command line: database, programmes, keys, members, ledger, jobs, serve, demo.

Every command opens its own units of work through `Database.write`/`read` (which commit
and retry), so the CLI is one more boundary over the same services the HTTP API calls.

Errors are one line on stderr, never a traceback: `error: <what went wrong and what to
do>`, exit status 1 when the request was refused (a `JifenError`, invalid input, an
unreachable or un-migrated database) and 2 when the command line itself could not be
parsed (an unknown option, a missing argument, a malformed value such as `--expiry`).
Messages follow `JIFEN_LANG`, else `LANG` (zh-CN or en). `JIFEN_DEBUG=1` lets an
unexpected exception through with its traceback.

Layout: `root` is the `jifen` command itself (its `--database-url`, the error handling,
the sub-commands put together); `state`, `errors`, `messages` and `output` serve every
command; `db`, `programs`, `keys`, `members`, `ledger`, `jobs` and `serve` (with `demo`)
are one module per command group.
"""

from jifen.cli.root import app, main

__all__ = ["app", "main"]
