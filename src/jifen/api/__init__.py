"""The HTTP API: FastAPI app, one router per domain, auth, problem details, idempotency.

`jifen.api.app.create_app(db, clock)` builds an app on a given store and clock; nothing
is global, so tests, the demo and `jifen serve` each build their own.
"""
