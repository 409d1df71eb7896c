"""API errors and their JSON bodies: ``{"detail": message}``, or for a 422 ``{"detail": [{loc, field,
msg, type}, ...]}`` where ``loc`` is pydantic's path (e.g. ["body", "optim", "lr"]) and ``field`` the
dotted path inside the body or query (``optim.lr``). Submitted values are never echoed back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from backend.config_files import ConfigError

_PLACES = ("body", "query", "path", "header", "cookie")


class ApiError(Exception):
    """An error with an HTTP status; ``detail`` is a message or a 422 error list."""

    status = 400

    def __init__(self, detail: str | list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.headers = detail, headers


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


class Unprocessable(ApiError):
    """422 with a list of {loc, field, msg, type} items."""

    status = 422


class Invalid(Unprocessable):
    """422 for one field: ``loc`` like ("body", "model", "path")."""

    def __init__(self, loc: Sequence[str | int], message: str, kind: str = "value_error") -> None:
        super().__init__([error_item(loc, message, kind)])


def error_item(loc: Sequence[str | int], message: str, kind: str) -> dict[str, Any]:
    """One 422 item with its dotted ``field``."""
    inner = loc[1:] if loc and loc[0] in _PLACES else loc
    return {"loc": list(loc), "field": ".".join(str(p) for p in inner), "msg": message, "type": kind}


def error_items(errors: Iterable[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """pydantic error dicts → 422 items (``input`` and ``ctx`` dropped: they may hold NaN or bulk)."""
    return [error_item([*prefix, *error["loc"]], str(error["msg"]), str(error["type"])) for error in errors]


def config_invalid(exc: ValidationError) -> Unprocessable:
    """A RunConfig validated outside FastAPI's body parsing, reported like a bad request body."""
    return Unprocessable(error_items(exc.errors(), ("body",)))


def install(app: FastAPI) -> None:
    """Register the handlers that produce the bodies described above."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_items(exc.errors())}, status_code=422)

    @app.exception_handler(ConfigError)
    async def _config_error(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": [error_item(["body"], str(exc), "config_error")]}, status_code=422)
