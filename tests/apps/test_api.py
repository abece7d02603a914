"""The API server through FastAPI's in-process test client: meta routes, limits, auth and errors that
are not the client's fault (the inventory order routes are the vehicle; their own tests live in
tests/domains/inventory/)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from request_helpers import LEAD2, ORDERS, post_orders, states

from decisionlab.apps.api import BodySizeLimitMiddleware, create_app, field_path
from decisionlab.core.errors import DecisionlabError
from decisionlab.domains.inventory import SPEC

# --- meta routes ------------------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["device"] in {"cpu"} or body["device"].startswith("cuda")


def test_domains_lists_inventory(client: TestClient) -> None:
    response = client.get("/v1/domains")
    assert response.status_code == 200
    inventory = next(d for d in response.json() if d["name"] == "inventory")
    assert "optimal" in inventory["policies"]
    assert "lost_sales" in inventory["scenarios"]


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/domains", "/v1/policies", ORDERS, "/v1/inventory/policies"} <= set(paths)


def test_inventory_policies_lists_baselines(client: TestClient) -> None:
    body = client.get("/v1/inventory/policies").json()
    assert set(SPEC.policies) == set(body["baselines"])
    assert body["registered"] == []


def test_unknown_domain_filter_is_404(client: TestClient) -> None:
    response = client.get("/v1/policies", params={"domain": "nowhere"})
    assert response.status_code == 404
    assert "inventory" in response.json()["detail"]
    # the URL form of a domain's name (/v1/market-making/...) names it too
    for name in ("market-making", "market_making"):
        response = client.get("/v1/policies", params={"domain": name})
        assert response.status_code == 200 and response.json() == [], response.text


# --- body size --------------------------------------------------------------------------------


def test_oversized_body_is_413(client: TestClient) -> None:
    """The default limit (16 MiB) holds a full batch of states; a body past it is refused unread."""
    from decisionlab.apps.api import DEFAULT_MAX_BODY_BYTES

    full = [{"on_hand": 123456.789, "pipeline": [12345.678, 12345.678]}] * 10_000
    assert len(json.dumps({"policy": "myopic", "states": full})) < DEFAULT_MAX_BODY_BYTES
    padding = "x" * (DEFAULT_MAX_BODY_BYTES + 1)
    response = client.post(ORDERS, json={"states": [], "policy": padding})
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_body_limit_comes_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_API_MAX_BODY_BYTES", "200")
    client = TestClient(create_app())
    rows = states(*[(1, [0, 0])] * 20)
    assert post_orders(client, states=rows).status_code == 413
    assert post_orders(client).status_code == 200


def test_bad_body_limit_setting_fails_at_startup(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_API_MAX_BODY_BYTES", "lots")
    with pytest.raises(DecisionlabError, match="DECISIONLAB_API_MAX_BODY_BYTES"):
        create_app()


async def _run_asgi(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict]:
    """Drive an ASGI app by hand: the body arrives in ``chunks``; returns what it sent."""
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await app(scope, receive, send)
    return sent


def _echo_length_app():
    """An ASGI app that answers with the number of body bytes it read."""

    async def app(scope, receive, send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    return app


def test_streamed_body_without_length_is_cut_off() -> None:
    guarded = BodySizeLimitMiddleware(_echo_length_app(), max_bytes=100)
    sent = asyncio.run(_run_asgi(guarded, [], [b"a" * 60, b"b" * 60, b"c" * 60]))
    assert sent[0]["status"] == 413
    assert b"too large" in sent[1]["body"]
    sent = asyncio.run(_run_asgi(guarded, [], [b"a" * 50, b"b" * 50]))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100"


def test_declared_length_is_checked_before_reading() -> None:
    guarded = BodySizeLimitMiddleware(_echo_length_app(), max_bytes=100)
    sent = asyncio.run(_run_asgi(guarded, [(b"content-length", b"5000")], []))
    assert sent[0]["status"] == 413
    assert b"5,000 bytes" in sent[1]["body"]


# --- errors that are not the client's fault ---------------------------------------------------


def test_unexpected_errors_are_generic_500(home: Path) -> None:
    app = create_app()

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    response = TestClient(app, raise_server_exceptions=False).get("/v1/boom")
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.json()["detail"]


def test_field_path() -> None:
    assert field_path(("body", "states", 3, "pipeline", 0)) == "states[3].pipeline[0]"
    assert field_path(("body",)) == "(body)"
    assert field_path(("query", "domain")) == "query.domain"


# --- auth -------------------------------------------------------------------------------------


def test_bearer_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_API_TOKEN", "s3cret")
    client = TestClient(create_app())
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/health").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        response = client.get("/v1/domains", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]
    assert client.post(ORDERS, json={"states": states((0, [0, 0]))}).status_code == 401
    assert client.get("/v1/domains", headers=good).status_code == 200
    response = client.post(ORDERS, json={"parameters": LEAD2, "states": states((0, [0, 0]))}, headers=good)
    assert response.status_code == 200


