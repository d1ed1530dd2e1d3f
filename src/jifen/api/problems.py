"""Problem details (RFC 9457): how every refusal and failure leaves the HTTP API.

A body is `application/problem+json` with `type` (`/problems/<code>`, stable, and served by
`GET /problems/<code>`), `title`, `status`, `detail` in the caller's language
(`Accept-Language`: zh-CN or en, default zh-CN), `instance` (the request path) and the
error's parameters as extension members (`needed`, `available`, `member_id`, …).

Four sources, one shape: a `JifenError` (its own code and status); request validation
(422 `invalid-input` with an `errors` list); the router (404 for an unknown path, 405 for
a method the path does not take); anything else, a bug, is logged with its traceback and
answered with a bare 500 `internal-error` that shows none of it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from jifen.core.errors import (
    ConcurrencyExhausted,
    Forbidden,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidInput,
    JifenError,
    NotFound,
    Unauthorized,
    pick_language,
)

log = logging.getLogger("jifen.api")

PROBLEM_JSON = "application/problem+json"
RESERVED = frozenset({"type", "title", "status", "detail", "instance", "errors", "code"})


# -- errors that only the HTTP layer raises ---------------------------------------------


class MethodNotAllowed(JifenError):
    """The path exists but does not take this HTTP method (see the `Allow` header)."""

    code = "method-not-allowed"
    status = 405
    title = {"zh-CN": "不支持的请求方法", "en": "Method not allowed"}
    template = {
        "zh-CN": "{path} 不支持 {method} 请求。",
        "en": "{path} does not accept {method} requests.",
    }


class RouteNotFound(NotFound):
    """No such address in this API (its problem type is `not-found`)."""

    template = {
        "zh-CN": "没有 {path} 这个地址；接口说明见 /docs。",
        "en": "There is no {path} here; the API is described at /docs.",
    }


class RootApiDisabled(JifenError):
    """Programme management over HTTP is off because no root token is configured."""

    code = "root-api-disabled"
    status = 403
    title = {"zh-CN": "未开放计划管理接口", "en": "Programme management disabled"}
    template = {
        "zh-CN": "HTTP 计划管理接口未开启：请用命令行 `jifen programs create` 创建计划，"
        "或设置 JIFEN_ROOT_TOKEN 后以 Bearer 方式传入。",
        "en": "Programme management over HTTP is off: create programmes with the CLI "
        "`jifen programs create`, or set JIFEN_ROOT_TOKEN and pass it as a bearer token.",
    }


class RootTokenRequired(JifenError):
    """Installation-level routes take the root token, not a programme's API key."""

    code = "root-token-required"
    status = 403
    title = {"zh-CN": "需要安装级令牌", "en": "Root token required"}
    template = {
        "zh-CN": "此操作需要安装级令牌 JIFEN_ROOT_TOKEN，计划的 API 密钥不能执行。",
        "en": "This needs the installation's root token (JIFEN_ROOT_TOKEN); "
        "a programme's API key cannot do it.",
    }


class DatabaseUnavailable(JifenError):
    """The database did not answer."""

    code = "database-unavailable"
    status = 503
    title = {"zh-CN": "数据库不可用", "en": "Database unavailable"}
    template = {
        "zh-CN": "数据库暂时无法访问，请稍后重试。",
        "en": "The database cannot be reached right now; retry later.",
    }


class InternalError(JifenError):
    """A bug: the server logged it and answers without details. A write is all or
    nothing, so retrying it with the same Idempotency-Key is safe."""

    code = "internal-error"
    status = 500
    title = {"zh-CN": "服务器内部错误", "en": "Internal server error"}
    template = {
        "zh-CN": "服务器内部错误，已记录日志；请用同一个幂等键重试，或联系管理员。",
        "en": "Something went wrong on our side and was logged; retry with the same "
        "idempotency key, or contact the operator.",
    }


# -- models (for OpenAPI and for tests to read) ------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details; parameters of the error appear as extra members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/insufficient-points"])
    title: str
    status: int
    detail: str
    instance: str


class FieldProblem(BaseModel):
    field: str
    message: str


class ValidationProblem(Problem):
    errors: list[FieldProblem]


class ProblemType(BaseModel):
    """What `GET /problems/<code>` says about a problem type."""

    type: str
    code: str
    status: int
    title: str
    description: str


# -- rendering ---------------------------------------------------------------------------


def language(request: Request) -> str:
    default = getattr(request.app.state.settings, "default_language", "zh-CN")
    return pick_language(request.headers.get("accept-language"), default=default)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def problem_body(error: JifenError, lang: str, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{error.code}",
        "title": error.title_in(lang),
        "status": error.status,
        "detail": error.message(lang),
        "instance": instance,
    }
    for name, value in error.params.items():
        if name not in RESERVED:
            body[name] = _jsonable(value)
    return body


def problem_response(
    request: Request,
    error: JifenError,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    lang = language(request)
    body = problem_body(error, lang, request.url.path)
    if extra:
        body.update(extra)
    return JSONResponse(
        body,
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers={"Content-Language": lang, **(headers or {})},
    )


_UNION_MEMBER = re.compile(r"^[a-z][a-z-]*\[.*\]$")
"""How pydantic names a union's member in an error's location (`str-enum[Period]`,
`literal['ever']`): no field of the request, so left out of the field's name."""


def _field_name(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if not _UNION_MEMBER.match(str(p))]
    if len(parts) > 1 and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _on_jifen_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JifenError)
    return problem_response(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            # a body that is not JSON at all: its loc ends in a character offset, not a field
            "field": "body"
            if err.get("type") == "json_invalid"
            else _field_name(err.get("loc", ())),
            "message": str(err.get("msg", "invalid")),
        }
        for err in exc.errors()
    ] or [{"field": "body", "message": "invalid request"}]
    first = InvalidInput(field=errors[0]["field"], reason=errors[0]["message"])
    return problem_response(request, first, extra={"errors": errors})


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    error: JifenError
    if exc.status_code == 404:
        error = RouteNotFound(path=path)
    elif exc.status_code == 405:
        error = MethodNotAllowed(path=path, method=request.method)
    else:  # nothing of ours raises other HTTPExceptions; keep their status anyway
        log.warning("HTTPException %s on %s %s", exc.status_code, request.method, path)
        error = InternalError()
        body = problem_body(error, language(request), path)
        body.update(status=exc.status_code, title=str(exc.detail), detail=str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON)
    return problem_response(request, error, headers=dict(exc.headers or {}))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, InternalError())


def install(app: FastAPI) -> None:
    app.add_exception_handler(JifenError, _on_jifen_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


# -- the catalogue of problem types ------------------------------------------------------


def _subclasses(cls: type[JifenError]) -> Iterator[type[JifenError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def problem_types() -> dict[str, type[JifenError]]:
    """Every problem type by code; a subclass that reuses its parent's code (such as
    `RouteNotFound`) does not replace it."""
    found: dict[str, type[JifenError]] = {}
    classes: list[type[JifenError]] = [JifenError, *_subclasses(JifenError)]
    for cls in classes:
        found.setdefault(cls.code, cls)
    return found


def describe(cls: type[JifenError], lang: str) -> ProblemType:
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return ProblemType(
        type=f"/problems/{cls.code}",
        code=cls.code,
        status=cls.status,
        title=cls.title.get(lang) or cls.title["en"],
        description=" ".join(doc.split()) or cls.title["en"],
    )


# -- OpenAPI -------------------------------------------------------------------------------

_REF = "#/components/schemas/"


AUTH: tuple[type[JifenError], ...] = (Unauthorized, Forbidden)
"""What any keyed route may answer."""
READ: tuple[type[JifenError], ...] = (*AUTH, NotFound, InvalidInput)
"""What a keyed read of one resource may answer."""
WRITE: tuple[type[JifenError], ...] = (
    *AUTH,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidInput,
    ConcurrencyExhausted,
)
"""What any idempotent write may answer before its own refusals."""


def problems(*errors: type[JifenError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status it may answer with, and which problem
    types, as `application/problem+json`."""
    by_status: dict[int, list[type[JifenError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, [])
        if error not in by_status[error.status]:
            by_status[error.status].append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        schema = "ValidationProblem" if status == 422 else "Problem"
        codes = ", ".join(f"`{cls.code}`" for cls in classes)
        titles = "; ".join(cls.title["en"] for cls in classes)
        responses[status] = {
            "description": f"{titles} ({codes})",
            "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + schema}}},
        }
    return responses


def add_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put the problem models into the document's components (the routes refer to them)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI documents its own 422 body on a route that declares none: ours is a problem
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if _REF + "HTTPValidationError" in json.dumps(answers.get("422", {})):
                answers["422"] = problems(InvalidInput)[422]
    for model in (Problem, ValidationProblem, FieldProblem):
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    if _REF + "HTTPValidationError" not in json.dumps(openapi.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return openapi
