"""The quick ways in at a peak: `POST /v1/purchases` straight to the group queue, and
`GET /v1/members/{id}/balance` answered with one statement.

At a peak nearly every request is a well-formed purchase, and FastAPI's way of taking one
apart (its dependency tree: the bearer scheme, the key, the `Idempotency-Key` header, the
body, each solved and cached per request) cost about 0.5 ms of CPU per request, a fifth
of all the server's work per purchase once purchases were recorded in groups
(`jifen.api.grouped`). This middleware takes apart the requests that are plainly
well-formed (a bearer key, an `Idempotency-Key`, a body typed `application/json` that
`PurchaseIn` accepts, no query string) itself, in about a tenth of that, and hands them
to the group queue exactly as the route does.

Everything else goes on to the app untouched, with the body read so far given back to
it: a request without a key or with a malformed body gets FastAPI's usual answer (401,
422 …) from the route. What the lane answers itself is what the route would answer for
the same request: the group's 201, or the one-by-one path's response (`alone`), or its
refusal rendered as the same problem details (`jifen.api.problems.problem_response`).
With group commit off (`JIFEN_GROUP_COMMIT=false`) the lane lets everything through.

The balance lane (`BalanceLane`) is the same idea for the busiest read: a plain `GET` of a
balance with one bearer key and no query string is answered by the process's read groups
(`jifen.api.balances.Reads`: the reads that arrive together, in one statement) and
rendered by the route's own `render`; whatever they do not answer plainly (a key they do
not admit, a member they do not find, something fallen due that the route brings up to
date first), and any other request, goes on to the app. With `JIFEN_QUICK_BALANCE=false`
there is no balance lane.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jifen.api.balances import Reads
from jifen.api.deps import MAX_ID, WriteCall, app_call, nul_in, render
from jifen.api.grouped import Groups
from jifen.api.problems import problem_response
from jifen.api.purchases import record_alone
from jifen.core.errors import JifenError
from jifen.earning.schemas import PurchaseIn

PATH = "/v1/purchases"


class PurchaseLane:
    """ASGI middleware (`app.add_middleware(PurchaseLane)`); see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        groups: Groups | None = getattr(state, "groups", None)
        heads = _heads(scope["headers"])
        if groups is None or heads is None:
            await self.app(scope, receive, send)
            return
        token, key = heads
        messages: list[Message] = []
        body = await _body(receive, messages)
        data = _purchase(body) if body is not None else None
        replay = _replaying(messages, receive)
        if data is None:
            await self.app(scope, replay, send)
            return
        parsed, purchase = data
        call = WriteCall(**app_call(state, token, "POST", PATH), idempotency_key=key, body=parsed)
        try:
            response = await groups.record(call, purchase, partial(record_alone, call, purchase))
        except JifenError as exc:  # the one-by-one path's refusal, as the route renders it
            response = problem_response(Request(scope), exc)
        await response(scope, replay, send)


BALANCE = re.compile(r"/v1/members/([1-9][0-9]{0,18})/balance")
"""A balance's path, its member id written plainly (the route takes `007` too; the lane
leaves such paths to it)."""


class BalanceLane:
    """ASGI middleware (`app.add_middleware(BalanceLane)`); see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            BALANCE.fullmatch(scope["path"])
            if scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("query_string")
            and not scope.get("root_path")
            else None
        )
        token = _token(scope["headers"]) if found is not None else None
        member_id = int(found.group(1)) if found is not None else MAX_ID + 1
        if token is None or member_id > MAX_ID:
            await self.app(scope, receive, send)
            return
        reads: Reads = scope["app"].state.reads
        balance = await reads.balance(token, member_id)
        if balance is None:  # the route's to answer (a refusal, or a member to bring up to date)
            await self.app(scope, receive, send)
            return
        await render(balance)(scope, receive, send)


PLAIN = frozenset({b"authorization", b"idempotency-key", b"content-type"})
"""The headers a lane reads: each must come once at most."""


def _plain(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes] | None:
    """The headers a lane reads (`PLAIN`), or None when one of them comes twice."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in PLAIN:
            if name in found:
                return None
            found[name] = value
    return found


def _bearer(value: bytes | None) -> str | None:
    """The key of an `Authorization` header that plainly sends one of ours."""
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith("jf_") or token != token.strip():
        return None
    return token if "\x00" not in token else None  # (PostgreSQL's text cannot hold it)


def _token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key, when it is sent once, plainly."""
    found = _plain(headers)
    return _bearer(found.get(b"authorization")) if found is not None else None


def _heads(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(API key, Idempotency-Key) when each is sent once, plainly, with a body said to be
    JSON (FastAPI takes a body without a JSON content type for bytes, and refuses it)."""
    found = _plain(headers)
    if found is None:
        return None
    token = _bearer(found.get(b"authorization"))
    key = found.get(b"idempotency-key", b"").decode("latin-1")
    kind = found.get(b"content-type", b"").split(b";")[0].strip().lower()
    if not token or not key or "\x00" in key or kind != b"application/json":
        return None
    return token, key


async def _body(receive: Receive, messages: list[Message]) -> bytes | None:
    """The whole body (None if the client left first); every message kept in `messages`."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _purchase(body: bytes) -> tuple[dict[str, Any], PurchaseIn] | None:
    """The parsed body and the purchase, for a body the route would take as they are."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or nul_in(parsed) is not None:
        return None
    try:
        return parsed, PurchaseIn.model_validate(parsed)
    except ValidationError:
        return None


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` as the app would have seen it: the messages already read, then the rest."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
