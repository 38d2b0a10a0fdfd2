"""One error shape for both apps: {"message": ..., "details": [...]}, as ETSI GS QKD 014 says.

Validation errors list where and what is wrong but never the rejected value, so that a key,
token or other secret sent by mistake is not echoed back, and so that input that cannot be
encoded (a lone surrogate in a JSON string) cannot turn an answer into a 500: names the
client chose (an unknown field's name) and messages that quote the input (a UUID parser's
"found `x` at 1") are left out. A 405 lists in `Allow` every method the path serves
(RFC 9110 15.5.6), which Starlette does not when methods are separate routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

# pydantic error contexts whose values come from the input (the message quotes them).
_QUOTING_CONTEXT = frozenset({"error", "tag", "input"})


class ErrorBody(BaseModel):
    message: str
    details: list[dict[str, Any]] = []


class ApiError(Exception):
    """An error answered as-is: status, message, and optional details."""

    def __init__(
        self,
        status_code: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.details = details or []
        self.headers = headers


def error_response(
    status_code: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(message=message, details=details or [])
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        kind = str(error.get("type", "invalid"))
        location = list(error.get("loc", ()))
        problem = str(error.get("msg", "invalid"))
        if kind == "extra_forbidden":
            location, problem = location[:-1], "a field the schema does not define"
        elif kind == "value_error":  # the project's own validators, which quote no input
            problem = str((error.get("ctx") or {}).get("error", problem))
        elif _QUOTING_CONTEXT & set(error.get("ctx") or {}):
            problem = f"invalid value ({kind})"
        details.append({"field": ".".join(str(part) for part in location), "problem": problem})
    return details


def _allowed_methods(request: Request) -> str:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "OPTIONS"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI, validation_status: int) -> None:
    """Answer every error in the one shape; bad requests get `validation_status`."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status_code, exc.message, exc.details, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    async def on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: the shape holds, the exception is logged by uvicorn.
        return error_response(500, "internal error")

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        first = f": {details[0]['field']}: {details[0]['problem']}" if details else ""
        return error_response(validation_status, f"invalid request{first}", details)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
