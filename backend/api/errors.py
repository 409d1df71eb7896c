"""API errors and their JSON bodies: ``{"detail": message}``, or for a 422 ``{"detail": [{loc, field,
msg, type}, ...]}`` where ``loc`` is the path as the user wrote it (e.g. ["body", "loss", "beta"]: a
discriminated union's tag is not part of it) and ``field`` the dotted path inside the body or query
(``loss.beta``). Messages come from ``contracts.validation_messages`` (accepted values, "did you
mean", the fix); a malformed JSON body is reported at its line and column. Submitted values are never
echoed back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from backend.config_files import ConfigError
from contracts.config import RunConfig
from contracts.validation_messages import explain

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


def error_items(
    errors: Iterable[Any], prefix: Sequence[str | int] = (), model: type[BaseModel] | None = None
) -> list[dict[str, Any]]:
    """pydantic error dicts of validating ``model`` → 422 items (``input`` and ``ctx`` dropped: they
    may hold NaN or bulk)."""
    return [
        error_item([*prefix, *problem.loc], problem.message, problem.kind)
        for problem in explain(model, errors)
    ]


def config_invalid(exc: ValidationError) -> Unprocessable:
    """A RunConfig validated outside FastAPI's body parsing, reported like a bad request body."""
    return Unprocessable(error_items(exc.errors(), ("body",), RunConfig))


def request_items(errors: Sequence[Any], body: Any, route: Any) -> list[dict[str, Any]]:
    """FastAPI's request errors → 422 items: body errors explained against the route's body model,
    a JSON syntax error placed at its line and column."""
    model = _body_model(route)
    items = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            items.append(_json_syntax_item(error, body))
        elif loc[:1] == ("body",):
            items.extend(error_items([{**error, "loc": loc[1:]}], ("body",), model))
        else:
            items.extend(error_items([error]))
    return items


def _body_model(route: Any) -> type[BaseModel] | None:
    """The pydantic model of a route's whole JSON body, when it has exactly one."""
    field = getattr(route, "body_field", None)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    embedded = len(getattr(getattr(route, "dependant", None), "body_params", ())) != 1
    if embedded or not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    return annotation


def _json_syntax_item(error: dict[str, Any], body: Any) -> dict[str, Any]:
    """``body: invalid JSON at line L, column C: <reason>`` (json's own reason, e.g. "Expecting ','")."""
    position = error["loc"][1] if len(error["loc"]) > 1 and isinstance(error["loc"][1], int) else 0
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    reason = str((error.get("ctx") or {}).get("error", "not valid JSON"))
    message = (
        f"invalid JSON at line {line}, column {column} (character {position + 1}): {reason}; "
        "check the quotes, commas and brackets there (JSON has no trailing commas or comments)"
    )
    return error_item(["body"], message, "json_invalid")


def install(app: FastAPI) -> None:
    """Register the handlers that produce the bodies described above."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = request_items(exc.errors(), exc.body, request.scope.get("route"))
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(ConfigError)
    async def _config_error(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": [error_item(["body"], str(exc), "config_error")]}, status_code=422)
