"""The API's ASGI middleware (pure ASGI: no per-request task or body copy beyond what each needs).

Outermost first:
- :class:`RequestContextMiddleware`: a request id (the client's ``X-Request-ID`` when it is sane,
  else a new one) on ``request.state`` and the response, Prometheus request metrics by route
  template, and one JSON log line per request (never a header, so never the token);
- :class:`BearerTokenMiddleware`: 401 without the server's bearer token, except on public paths;
- :class:`BodySizeLimitMiddleware`: 413 over the body limit; integers too long for any field are
  read as numbers out of range, so the field that holds them is named (instead of a parse error).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decisionlab.core import telemetry

access_log = logging.getLogger("decisionlab.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
LONG_INTEGER = re.compile(rb"\d{300,}")  # far beyond any field's range; Python refuses > 4,300 digits


async def send_json(send: Send, status: int, detail: str, request_id: str | None,
                    headers: dict[str, str] | None = None) -> None:
    """Send a complete error body (see :mod:`decisionlab.apps.errors`) through raw ASGI ``send``."""
    response = JSONResponse(status_code=status, content={"detail": detail, "request_id": request_id},
                            headers=headers)
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


def request_id(scope: Scope) -> str | None:
    return (scope.get("state") or {}).get("request_id")


def route_label(scope: Scope) -> str:
    """The metrics label of a request: the path of the route that answered it (routes here take no
    path parameters, so it is the request path), the mount for static files, or ``unmatched``
    (unknown paths must not grow the number of series)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return "unmatched"
    if isinstance(route, Mount) or "{" in template:
        return template
    return route_path(scope)


class RequestContextMiddleware:
    """Request id, metrics and a JSON access log line per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id")
        rid = given if given is not None and REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            elapsed = time.perf_counter() - started
            template = route_label(scope)
            method = scope.get("method", "")
            telemetry.REQUESTS.labels(method, template, str(status)).inc()
            telemetry.LATENCY.labels(method, template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "request_id": rid, "method": method, "path": route_path(scope), "route": template,
                    "status": status, "ms": round(elapsed * 1000, 3), "client": (scope.get("client") or ("",))[0],
                })

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last byte leaves: a client that has its answer (and then asks
                # another worker for /metrics) must already find the request counted.
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record()


class BearerTokenMiddleware:
    """Reject requests without ``Authorization: Bearer <token>`` (401), except on public paths
    (exact paths, or prefixes ending in ``/``)."""

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str]) -> None:
        self.app, self.token = app, token.encode()
        self.exact = frozenset(p for p in public if not p.endswith("/"))
        self.prefixes = tuple(p for p in public if p.endswith("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in self.exact or path.startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        problem = self.problem(header(scope, b"authorization"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, problem, request_id(scope), {"WWW-Authenticate": "Bearer"})

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

    def __init__(self, app: ASGIApp, max_bytes: int, env_name: str = "DECISIONLAB_API_MAX_BODY_BYTES") -> None:
        self.app, self.max_bytes, self.env_name = app, max_bytes, env_name

    def too_large(self, size: int | None = None) -> str:
        got = f"{size:,} bytes" if size is not None else "it"
        return (f"request body too large: {got} exceeds the limit of {self.max_bytes:,} bytes "
                f"(set {self.env_name} to change it)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self.too_large(int(declared)), request_id(scope))
            return
        messages = await self.read_body(receive)
        if messages is None:
            await send_json(send, 413, self.too_large(), request_id(scope))
            return
        await self.app(scope, replay(without_long_integers(messages), receive), send)

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


def without_long_integers(messages: list[Message]) -> list[Message]:
    """The body with integer literals of 300+ digits read as (infinite) floats, so validation names
    the field that holds one ("a finite number", "a valid integer") instead of failing to parse."""
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    if not LONG_INTEGER.search(body):
        return messages
    try:
        value: Any = json.loads(body, parse_int=lambda text: float(text) if len(text) >= 300 else int(text))
    except (ValueError, RecursionError):
        return messages  # not JSON, or nested too deeply: the app reports the parse error
    rewritten = json.dumps(value).encode()
    return [{"type": "http.request", "body": rewritten, "more_body": False}]


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that yields ``messages`` first, then defers to the real one."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
