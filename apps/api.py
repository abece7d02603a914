"""The HTTP API: health and readiness, metrics, domain and policy listings, the routes the core
generates for every domain (``POST /v1/<domain>/act``, ``GET /v1/<domain>/schema``,
``GET /v1/<domain>/policies``) and every domain's own named routes.

Run it with ``decisionlab serve [--workers N]`` (or ``uvicorn --factory
decisionlab.apps.api:create_app``). Domains are discovered from the domain registry, so this module
never names a domain.

Environment (read when the app is created):
    ``DECISIONLAB_API_TOKEN``: when set, every route but ``/health``, ``/ready`` and the docs needs
        ``Authorization: Bearer <token>`` (the OpenAPI document then declares the bearer scheme).
    ``DECISIONLAB_API_MAX_BODY_BYTES``: largest accepted request body (default 16 MiB: a full batch of
        10,000 states fits).
    ``DECISIONLAB_HOME`` / ``DECISIONLAB_DB_URL``: the registry's data dir and index database.
    ``DECISIONLAB_DEVICE``: the device policies run on (see :mod:`decisionlab.core.device`).
    ``DECISIONLAB_WARM``: what is built at start-up, in the background: ``defaults`` (each preset's
        default baselines and each domain's default registered policy), ``all`` (every admissible
        baseline of every preset; searches persist in the data dir, so only the first start pays)
        or ``0`` (nothing).
    ``DECISIONLAB_BUILD_WAIT_S``: how long a request waits for a baseline build (default 10 s).

Errors: one body everywhere (:mod:`decisionlab.apps.errors`), with the status of its error type
(one table for every domain: :mod:`decisionlab.core.errors`, ``docs/api.md``).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from decisionlab.apps.errors import ERROR_RESPONSES, add_error_handlers, field_path  # noqa: F401  (re-export)
from decisionlab.apps.middleware import BearerTokenMiddleware, BodySizeLimitMiddleware, RequestContextMiddleware
from decisionlab.apps.routes import domain_router
from decisionlab.core import telemetry
from decisionlab.core.device import configure_threads, get_device
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.policy_cache import PolicyCache, warm_presets
from decisionlab.core.spec import get_domain, list_domains
from decisionlab.core.store.registry import PolicyRecord, PolicyRegistry
from decisionlab.core.workpool import work_pool

TOKEN_ENV = "DECISIONLAB_API_TOKEN"
MAX_BODY_ENV = "DECISIONLAB_API_MAX_BODY_BYTES"
WARM_ENV = "DECISIONLAB_WARM"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
STATIC_DOCS = "/static-offline-docs"
PUBLIC_PATHS = frozenset({"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                          f"{STATIC_DOCS}/"})


def package_version() -> str:
    """The installed ``decisionlab`` version, or ``"unknown"`` when run from a bare checkout."""
    try:
        return version("decisionlab")
    except PackageNotFoundError:
        return "unknown"


def policy_summary(record: PolicyRecord) -> dict[str, Any]:
    """JSON description of one registered policy (an item of ``GET /v1/policies``)."""
    return record.summary()


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


def warm_scope() -> str:
    """``$DECISIONLAB_WARM``: ``defaults`` (the default), ``all`` or ``0``; anything else is a startup error."""
    raw = os.environ.get(WARM_ENV, "").strip() or "defaults"
    if raw not in ("0", "defaults", "all"):
        raise DecisionlabError(f"{WARM_ENV} must be 0, defaults or all, got {raw!r}")
    return raw


def add_core_routes(app: FastAPI) -> None:
    """``/health``, ``/ready``, ``/metrics``, ``/v1/domains`` and ``/v1/policies``."""
    public = {"security": []}  # no token needed (the OpenAPI document says so)

    # async: answered on the event loop, never queued behind policy work in the thread pool
    @app.get("/health", tags=["meta"], openapi_extra=public)
    async def health() -> dict[str, str]:
        """Liveness probe: the process answers (never needs the token, never waits for policy work)."""
        return {"status": "ok", "version": package_version(), "device": str(app.state.device)}

    @app.get("/ready", tags=["meta"], openapi_extra=public,
             responses={503: {"description": "still warming up (the body says how far)"}})
    async def ready() -> JSONResponse:
        """Readiness probe: 200 once the presets' default baselines and the default registered
        policies are built and loaded and the serving pool has room, 503 before or while saturated
        (body: builds done and total, the pool's requests in flight and capacity)."""
        warming = app.state.warming
        done = sum(1 for f in warming if f.done())
        serving = work_pool().status()
        status = "warming" if done < len(warming) else "saturated" if serving["saturated"] else "ready"
        body = {"status": status, "builds_done": done, "builds_total": len(warming), "serving": serving}
        return JSONResponse(body, status_code=200 if status == "ready" else 503)

    @app.get("/metrics", tags=["meta"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})
    async def metrics() -> Response:
        """Prometheus metrics: requests and latencies by route, policies served, cache hits, builds."""
        return Response(telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)

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
        app.include_router(domain_router(spec), prefix=spec.url_path, tags=[spec.name])
        if spec.routes is not None:
            app.include_router(spec.routes(), prefix=spec.url_path, tags=[spec.name])


def add_bearer_security_to_openapi(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI document (``/docs`` gets an Authorize button);
    public routes say they need none."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": f"the server's {TOKEN_ENV}"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Warm the presets' baselines in the background at start-up; stop the build pool at the end."""
    app.state.policies.watch()  # promotions are seen within resolve_ttl_s, off the request path
    scope = warm_scope()
    if scope != "0":
        app.state.warming = warm_presets(app.state.policies, list_domains(), app.state.device,
                                         every_baseline=scope == "all")
    # Everything built so far lives as long as the server: keep it out of the garbage collector's
    # scans, which otherwise grow with the heap and show up as latency spikes under load.
    gc.collect()
    gc.freeze()
    yield
    app.state.policies.close()


def create_app(registry_home: str | Path | None = None) -> FastAPI:
    """Build the API server; ``registry_home`` overrides ``$DECISIONLAB_HOME`` for the registry."""
    configure_threads()
    warm_scope()  # a bad setting fails at start-up, not in the lifespan
    app = FastAPIOffline(
        title="decisionlab",
        version=package_version(),
        description="Decisions from trained and baseline policies, for every installed domain.",
        responses=ERROR_RESPONSES,
        static_url=STATIC_DOCS,
        lifespan=lifespan,
    )
    app.state.device = get_device()
    app.state.registry = PolicyRegistry(registry_home)
    app.state.policies = PolicyCache(app.state.registry)
    app.state.warming = []
    add_error_handlers(app)
    add_core_routes(app)
    add_domain_routers(app)
    # Starlette runs the last-added middleware first: id and log every request, authenticate before
    # reading any body, then read it within the limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes(), env_name=MAX_BODY_ENV)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token, public=PUBLIC_PATHS)
        add_bearer_security_to_openapi(app)
    app.add_middleware(RequestContextMiddleware)
    return app
