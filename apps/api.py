"""The HTTP API: health, domain and policy listings, the routes the core generates for every domain
(``POST /v1/<domain>/act``, ``GET /v1/<domain>/schema``, ``GET /v1/<domain>/policies``) and every
domain's own named routes.

Run it with ``uvicorn --factory decisionlab.apps.api:create_app``. Domains are discovered from the
domain registry, so this module never names a domain.

Environment (read when the app is created):
    ``DECISIONLAB_API_TOKEN``: when set, every route but ``/health`` and the docs needs
        ``Authorization: Bearer <token>``.
    ``DECISIONLAB_API_MAX_BODY_BYTES``: largest accepted request body (default 1,000,000 bytes).
    ``DECISIONLAB_HOME``: the policy registry's data folder (unless ``registry_home`` is given).
    ``DECISIONLAB_DEVICE``: the device policies run on (see :mod:`decisionlab.core.device`).

Errors: a user mistake is always a 4xx JSON ``{"detail": ...}`` that names what to fix, with the
status of its error type (one table for every domain: :mod:`decisionlab.core.errors`,
``docs/api.md``); request and state validation errors list ``{"field", "message", "type"}`` per
problem. Anything else is a 500 with a generic message (the traceback goes to the server log,
never to the client).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decisionlab.apps.routes import domain_router
from decisionlab.core.device import configure_threads, get_device
from decisionlab.core.errors import DecisionlabError, StateError
from decisionlab.core.spec import get_domain, list_domains
from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry

log = logging.getLogger(__name__)

TOKEN_ENV = "DECISIONLAB_API_TOKEN"
MAX_BODY_ENV = "DECISIONLAB_API_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1_000_000
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def package_version() -> str:
    """The installed ``decisionlab`` version, or ``"unknown"`` when run from a bare checkout."""
    try:
        return version("decisionlab")
    except PackageNotFoundError:
        return "unknown"


def policy_summary(record: PolicyRecord) -> dict[str, Any]:
    """JSON description of one registered policy (an item of ``GET /v1/policies``)."""
    return record.summary()


# --- errors -----------------------------------------------------------------------------------


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "states", 0, "pipeline")`` -> ``"states[0].pipeline"``; the whole body is ``"(body)"``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def describe_problem(problem: dict[str, Any]) -> dict[str, str]:
    """One pydantic/FastAPI error as ``{"field", "message", "type"}``."""
    kind = str(problem.get("type", "value_error"))
    if kind == "json_invalid":
        reason = (problem.get("ctx") or {}).get("error", "invalid JSON")
        position = next((p for p in problem.get("loc", ())[1:] if isinstance(p, int)), None)
        where = f" at character {position}" if position is not None else ""
        return {"field": "(body)", "message": f"malformed JSON body: {reason}{where}", "type": kind}
    message = str(problem.get("msg", "invalid value")) + shown_input(problem.get("input"))
    return {"field": field_path(problem.get("loc", ())), "message": message, "type": kind}


def shown_input(value: Any, limit: int = 60) -> str:
    """`` (got -1)`` for short scalar inputs; nothing for containers or long strings."""
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= limit):
        return f" (got {value!r})"
    return ""


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing every problem with the field it concerns."""
    return JSONResponse(status_code=422, content={"detail": [describe_problem(p) for p in exc.errors()]})


async def decisionlab_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A user mistake: its own status (4xx) and message; state problems as one entry per field."""
    status = getattr(exc, "http_status", 400)
    if isinstance(exc, StateError):
        detail = [{"field": field_path(p.loc), "message": p.message + shown_input(p.value), "type": p.kind}
                  for p in exc.problems]
        return JSONResponse(status_code=status, content={"detail": detail})
    return JSONResponse(status_code=status, content={"detail": str(exc)})


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug: 500 with a generic message; the traceback goes to the log only."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal server error (see the server log)"})


# --- middleware (pure ASGI) -------------------------------------------------------------------


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON ``{"detail": ...}`` response through raw ASGI ``send``."""
    response = JSONResponse(status_code=status, content={"detail": detail}, headers=headers)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def route_path(scope: Scope) -> str:
    """The request path without the app's ``root_path`` mount prefix."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def header(scope: Scope, name: bytes) -> str | None:
    """First value of header ``name`` (lower-case bytes) or ``None``."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BearerTokenMiddleware:
    """Reject requests without ``Authorization: Bearer <token>`` (401), except on public paths."""

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app, self.token, self.public = app, token.encode(), public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.public:
            await self.app(scope, receive, send)
            return
        problem = self.problem(header(scope, b"authorization"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, problem, {"WWW-Authenticate": "Bearer"})

    def problem(self, authorization: str | None) -> str | None:
        """Why ``authorization`` is not accepted, or ``None`` when it is."""
        if not authorization:
            return "missing bearer token: send the header 'Authorization: Bearer <token>'"
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return "the Authorization header must look like 'Bearer <token>'"
        if not hmac.compare_digest(credentials.strip().encode(), self.token):
            return "invalid bearer token"
        return None


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes``.

    A too-large ``Content-Length`` is refused before reading anything; bodies without one (chunked)
    are read up to the limit and refused as soon as they pass it. Accepted bodies are buffered and
    replayed to the app, so the app never sees a truncated body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def too_large(self, size: int | None = None) -> str:
        got = f"{size:,} bytes" if size is not None else "it"
        return (f"request body too large: {got} exceeds the limit of {self.max_bytes:,} bytes "
                f"(set {MAX_BODY_ENV} to change it)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self.too_large(int(declared)))
            return
        messages = await self.read_body(receive)
        if messages is None:
            await send_json(send, 413, self.too_large())
            return
        await self.app(scope, replay(messages, receive), send)

    async def read_body(self, receive: Receive) -> list[Message] | None:
        """All body messages, or ``None`` as soon as they pass the limit."""
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # e.g. http.disconnect: let the app see it
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that yields ``messages`` first, then defers to the real one."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def max_body_bytes() -> int:
    """``$DECISIONLAB_API_MAX_BODY_BYTES`` or the default; a bad value is a startup error."""
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise DecisionlabError(f"{MAX_BODY_ENV} must be a positive number of bytes, got {raw!r}")
    return value


# --- the app ----------------------------------------------------------------------------------


def add_core_routes(app: FastAPI) -> None:
    """``/health``, ``/v1/domains`` and ``/v1/policies``."""

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness probe (never needs the token)."""
        return {"status": "ok", "version": package_version(), "device": str(app.state.device)}

    @app.get("/v1/domains", tags=["meta"])
    def domains() -> list[dict[str, Any]]:
        """Every installed domain: scenarios, baselines, algorithms and metrics."""
        return [spec.summary() for spec in list_domains()]

    @app.get("/v1/policies", tags=["meta"])
    def policies(
        domain: str | None = Query(None, description="only this domain's policies", max_length=64),
    ) -> list[dict[str, Any]]:
        """Registered (trained) policies, oldest domain/name/version first."""
        if domain is not None:
            domain = get_domain(domain).name  # unknown domain -> 404 listing the domains
        return [policy_summary(r) for r in app.state.registry.list(domain)]


def add_domain_routers(app: FastAPI) -> None:
    """Mount, under ``/v1/<domain>``, the core's routes of each registered domain and its own named routes."""
    for spec in list_domains():
        app.include_router(domain_router(spec), prefix=f"/v1/{spec.name}", tags=[spec.name])
        if spec.routes is not None:
            app.include_router(spec.routes(), prefix=f"/v1/{spec.name}", tags=[spec.name])


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DecisionlabError, decisionlab_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)


def add_bearer_security_to_openapi(app: FastAPI) -> None:
    """Advertise the bearer token in the OpenAPI schema so ``/docs`` offers an Authorize button."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(registry_home: str | Path | None = None) -> FastAPI:
    """Build the API server; ``registry_home`` overrides ``$DECISIONLAB_HOME`` for the registry."""
    configure_threads()
    app = FastAPI(
        title="decisionlab",
        version=package_version(),
        description="Decisions from trained and baseline policies, for every installed domain.",
    )
    app.state.device = get_device()
    app.state.registry = PolicyRegistry(registry_home)
    add_error_handlers(app)
    add_core_routes(app)
    add_domain_routers(app)
    # Starlette runs the last-added middleware first: authenticate before reading any body.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes())
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
        add_bearer_security_to_openapi(app)
    return app
