"""The API's one error body and the handlers that produce it.

Every error response, whatever raised it, is an :class:`ErrorBody`: ``detail`` is a message that
says what to fix, or, for validation errors, one :class:`Problem` per field (``states[2].pipeline``).
``request_id`` repeats the ``X-Request-ID`` header so a client can quote it. The OpenAPI document
declares this body for every status a route can return (:data:`ERROR_RESPONSES`).

Statuses come from the error types (:mod:`decisionlab.core.errors`); a bug is a 500 with a generic
message (the traceback goes to the server log only, never a server path to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from decisionlab.core.errors import DecisionlabError, StateError

log = logging.getLogger("decisionlab.api")


class Problem(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="where: 'states[2].pipeline', 'parameters', '(body)'")
    message: str = Field(description="what is wrong and what is allowed")
    type: str = Field(description="machine-readable kind of problem (pydantic's error type)")


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str | list[Problem] = Field(description="what to fix: a message, or one entry per invalid field")
    request_id: str | None = Field(None, description="the request's X-Request-ID (quote it when reporting)")


def _response(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# What every route may answer besides its success (the OpenAPI document lists them all).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_response("a request that cannot be carried out as given (e.g. a malformed registry reference); a "
                      "request the HTTP server cannot parse at all (e.g. a URL over its size limit) gets a plain-text "
                      "400 from the server before the application sees it"),
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    401: _response("missing or wrong bearer token (when the server has one)"),
    404: _response("unknown domain, scenario or policy (the message lists the choices)"),
    413: _response("request body over the server's limit"),
    422: _response("invalid parameters or states (one problem per field), or a policy that cannot serve them"),
    500: _response("a server bug (details in the server log, quote the request id)"),
    503: _response("a policy's stored artefact cannot be used, or a baseline is still being built "
                   "(Retry-After says when to ask again)"),
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def printable(text: str) -> str:
    """``text`` with control and format characters (NUL, escape, bidirectional overrides...) written as
    escapes: an error message echoes what a client sent, never bytes that rewrite a terminal or a log."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def error_response(request: Request | None, status: int, detail: str | list[dict[str, str]],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON :class:`ErrorBody` response (every text in it :func:`printable`)."""
    request_id = request_id_of(request) if request is not None else None
    if isinstance(detail, str):
        detail = printable(detail)
    else:
        detail = [{key: printable(str(value)) for key, value in item.items()} for item in detail]
    return JSONResponse(status_code=status, content={"detail": detail, "request_id": request_id}, headers=headers)


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "states", 0, "pipeline")`` -> ``"states[0].pipeline"``; the whole body is ``"(body)"``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def shown_input(value: Any, limit: int = 60) -> str:
    """`` (got -1)`` for short scalar inputs; nothing for containers, long strings or huge integers."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f" (got an integer of {len(str(abs(value)))} digits)"
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= limit):
        return f" (got {value!r})"
    return ""


def describe_problem(problem: dict[str, Any]) -> dict[str, str]:
    """One pydantic/FastAPI error as ``{"field", "message", "type"}``."""
    kind = str(problem.get("type", "value_error"))
    if kind == "json_invalid":
        reason = (problem.get("ctx") or {}).get("error", "invalid JSON")
        position = next((p for p in problem.get("loc", ())[1:] if isinstance(p, int)), None)
        where = f" at character {position}" if position is not None else ""
        return {"field": "(body)", "message": f"malformed JSON body: {reason}{where}", "type": kind}
    message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
    return {"field": field_path(problem.get("loc", ())), "message": message + shown_input(problem.get("input")),
            "type": kind}


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing every problem with the field it concerns."""
    return error_response(request, 422, [describe_problem(p) for p in exc.errors()])


async def decisionlab_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A user mistake (4xx) or a named server-side fault (503): its own status and message."""
    status = getattr(exc, "http_status", 400)
    retry_after = getattr(exc, "retry_after", None)  # a build still running, a saturated server
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status >= 500:
        log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    if isinstance(exc, StateError):
        detail = [{"field": field_path(p.loc), "message": p.message + shown_input(p.value), "type": p.kind}
                  for p in exc.problems]
        return error_response(request, status, detail)
    return error_response(request, status, str(exc), headers)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (unknown path 404, wrong method 405) in the same body."""
    return error_response(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug: 500 with a generic message; the traceback goes to the log only."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal server error (see the server log; quote the request id)")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DecisionlabError, decisionlab_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
