"""Rules over HTTP, versioned (PRODUCT.md E2, O2), and the stores and channels they name.

Every change of the rules is a new immutable version; a purchase records the version it
was awarded under. `PUT /v1/rules` replaces the whole rule set: rules equal to the current
ones make no new version. Two editors cannot overwrite each other unknowingly when they
send back the version they read (`ETag` of `GET /v1/rules`) as `If-Match`: a change
based on a version that is no longer current is refused with 412.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse

from jifen.api.deps import ADMIN, ALL, ReadCall, Unit, Write, read, render
from jifen.api.idempotency import write
from jifen.api.problems import AUTH, READ, WRITE, problems
from jifen.core.errors import InvalidInput, NotFound
from jifen.programs.errors import RulesVersionMismatch
from jifen.programs.models import RuleSetVersion
from jifen.programs.rulesets import version_row
from jifen.programs.schemas import ChannelSpec, RulesOut, RulesSaved, StoreSpec
from jifen.programs.service import list_channels, list_stores, replace_rules
from jifen.rules.schemas import RuleSet

router = APIRouter(prefix="/v1")

ETAG = "ETag"
_VERSION_TAG = re.compile(r'(?:W/)?"?([0-9]{1,9})"?')


def _fields(row: RuleSetVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "created_at": row.created_at,
        "actor": row.actor,
        "rules": RuleSet.model_validate(row.document),
    }


def _out(row: RuleSetVersion) -> RulesOut:
    return RulesOut(**_fields(row))


def _tagged(response: JSONResponse, version: int) -> JSONResponse:
    response.headers[ETAG] = f'"{version}"'
    return response


def expected_versions(if_match: str | None) -> frozenset[int] | None:
    """The versions `If-Match` accepts (None: any, when absent or `*`)."""
    if if_match is None or if_match.strip() == "*":
        return None
    found = set()
    for tag in if_match.split(","):
        match = _VERSION_TAG.fullmatch(tag.strip())
        if match is None:
            raise InvalidInput(
                field="If-Match",
                reason='give the rules version your change is based on, as "3" '
                "(the ETag of GET /v1/rules)",
            )
        found.add(int(match[1]))
    return frozenset(found)


@router.get(
    "/rules",
    tags=["rules"],
    response_model=RulesOut,
    summary="The programme's current rules, with their version",
    description='The `ETag` header is the version (`"3"`): send it as `If-Match` with '
    "`PUT /v1/rules`. The `rules` object can be sent back to `PUT` unchanged.",
    responses=problems(*AUTH, NotFound),
)
def current(call: ReadCall) -> JSONResponse:
    found = read(call, ALL, lambda u: _out(version_row(u.session, u.program_id)))
    return _tagged(render(found), found.version)


@router.get(
    "/rules/versions/{version}",
    tags=["rules"],
    response_model=RulesOut,
    summary="One version of the rules, current or earlier (what a purchase was awarded by)",
    responses=problems(*READ),
)
def one_version(
    version: Annotated[int, Path(ge=1, le=2**31 - 1, description="a rules version")],
    call: ReadCall,
) -> JSONResponse:
    found = read(call, ALL, lambda u: _out(version_row(u.session, u.program_id, version)))
    return _tagged(render(found), found.version)


@router.put(
    "/rules",
    tags=["rules"],
    response_model=RulesSaved,
    summary="Replace the programme's rules: a new version, unless they are unchanged (admin)",
    description="The body is the whole rule set (what `GET /v1/rules` answers as `rules`; "
    "a key left out takes its default). Rules equal to the current version's make no new "
    "version (`created: false`). Stores and channels a rule names must exist "
    "(`GET /v1/stores`, `GET /v1/channels`).",
    responses=problems(*WRITE, RulesVersionMismatch),
)
def replace(
    data: RuleSet,
    call: Write,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The version the change is based on, e.g. `"3"` (the `ETag` of '
            "`GET /v1/rules`). If another version is current by now, the change is refused "
            "with 412 and nothing is written.",
        ),
    ] = None,
) -> JSONResponse:
    def save(u: Unit) -> RulesSaved:
        row, created = replace_rules(
            u.session,
            u.program_id,
            data,
            now=u.now,
            actor=u.actor,
            expected=expected_versions(if_match),
        )
        return RulesSaved(**_fields(row), created=created)

    response = write(call, ADMIN, save, status_code=200)
    return _tagged(response, json.loads(bytes(response.body))["version"])


@router.get(
    "/stores",
    tags=["programmes"],
    response_model=list[StoreSpec],
    summary="The programme's stores, inactive ones included (by code)",
    responses=problems(*AUTH),
)
def stores(call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: [StoreSpec.model_validate(s) for s in list_stores(u.session, u.program_id)],
        )
    )


@router.get(
    "/channels",
    tags=["programmes"],
    response_model=list[ChannelSpec],
    summary="The programme's sales channels, inactive ones included (by code)",
    responses=problems(*AUTH),
)
def channels(call: ReadCall) -> JSONResponse:
    return render(
        read(
            call,
            ALL,
            lambda u: [
                ChannelSpec.model_validate(c) for c in list_channels(u.session, u.program_id)
            ],
        )
    )
