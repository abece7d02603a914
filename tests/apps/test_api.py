"""The API server through FastAPI's in-process test client: routes, errors, limits and auth."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from decisionlab.apps.api import BodySizeLimitMiddleware, create_app, field_path
from decisionlab.core.errors import DecisionlabError
from decisionlab.core.serving import cached_baseline
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.api import MAX_BATCH
from decisionlab.domains.inventory.policies import OrderMLP
from decisionlab.domains.inventory.search import best_base_stock

ORDERS = "/v1/inventory/orders"
LEAD2 = {"lead_time": 2, "underage_cost": 9}


def states(*rows: tuple[float, list[float]]) -> list[dict[str, Any]]:
    return [{"on_hand": on_hand, "pipeline": pipeline} for on_hand, pipeline in rows]


def post_orders(client: TestClient, policy: str = "optimal", parameters: dict | None = None, **body: Any):
    payload = {"policy": policy, "parameters": LEAD2 if parameters is None else parameters, **body}
    payload.setdefault("states", states((0, [0, 0])))
    return client.post(ORDERS, json=payload)


def detail_text(response) -> str:
    """The error detail as one string (validation errors are a list of field/message dicts)."""
    return json.dumps(response.json()["detail"])


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


# --- orders -----------------------------------------------------------------------------------


def test_optimal_orders_for_a_batch(client: TestClient) -> None:
    rows = states((0, [0, 0]), (3, [2, 1]), (4, [5, 5]), (30, [10, 10]), (0.4, [1.6, 2.2]))
    response = post_orders(client, states=rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "optimal"
    assert body["scenario"]["lead_time"] == 2 and body["scenario"]["underage_cost"] == 9
    orders = body["orders"]
    assert len(orders) == len(rows)
    assert orders[0] > 0
    assert all(q >= 0 for q in orders)
    assert orders[3] == 0  # far above any sensible position: order nothing
    scenario = SPEC.scenario("lost_sales", LEAD2)
    obs = torch.tensor([[r["on_hand"], *r["pipeline"]] for r in rows])
    expected = SPEC.policy("optimal").build(scenario, torch.device("cpu")).act(obs)
    assert orders == pytest.approx(expected.tolist())


def test_base_stock_orders_follow_the_inventory_position(client: TestClient) -> None:
    # inventory positions 0, 6, 6, 100
    rows = states((0, [0, 0]), (2, [3, 1]), (6, [0, 0]), (100, [0, 0]))
    response = post_orders(client, "base_stock", states=rows)
    assert response.status_code == 200, response.text
    orders = response.json()["orders"]
    level = best_base_stock(SPEC.scenario("lost_sales", LEAD2)).level
    assert level > 6
    assert orders[0] == pytest.approx(level)
    assert orders[1] == orders[2] == pytest.approx(level - 6)
    assert orders[0] - orders[1] == pytest.approx(6)
    assert orders[3] == 0


def test_baselines_are_built_once(client: TestClient) -> None:
    post_orders(client, "myopic")
    before = cached_baseline.cache_info()
    post_orders(client, "myopic", states=states((1, [2, 3])))
    after = cached_baseline.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_full_batch_is_accepted(client: TestClient) -> None:
    rows = [{"on_hand": i % 13, "pipeline": [i % 5, i % 7]} for i in range(MAX_BATCH)]
    response = post_orders(client, "myopic", states=rows)
    assert response.status_code == 200, response.text
    assert len(response.json()["orders"]) == MAX_BATCH


def test_lead_time_zero_takes_an_empty_pipeline(client: TestClient) -> None:
    response = post_orders(client, parameters={"lead_time": 0}, states=[{"on_hand": 0}])
    assert response.status_code == 200, response.text
    assert response.json()["orders"][0] > 0


# --- client mistakes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"states": [', "application/json"),
        (b"not json at all", "application/json"),
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b'{"states": [{"on_hand": 1, "pipeline": [0, 0]}]}', "text/plain"),
    ],
)
def test_malformed_bodies_are_4xx(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post(ORDERS, content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


def test_malformed_json_says_so(client: TestClient) -> None:
    response = client.post(ORDERS, content=b'{"states": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "malformed JSON" in detail_text(response)


def test_unknown_policy_is_404_with_choices(client: TestClient) -> None:
    response = post_orders(client, "no_such_policy")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "no_such_policy" in detail
    assert all(name in detail for name in SPEC.policies)


def test_unknown_scenario_is_404(client: TestClient) -> None:
    response = post_orders(client, scenario="no_such_scenario")
    assert response.status_code == 404
    assert "lost_sales" in response.json()["detail"]


def test_unknown_parameter_is_named(client: TestClient) -> None:
    response = post_orders(client, parameters={"lead_time": 2, "bogus_knob": 3})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "bogus_knob" in detail and "lead_time" in detail


def test_negative_lead_time_is_named(client: TestClient) -> None:
    response = post_orders(client, parameters={"lead_time": -1}, states=[{"on_hand": 0}])
    assert response.status_code == 422
    assert "lead_time" in response.json()["detail"]


def test_wrong_pipeline_length_is_named(client: TestClient) -> None:
    response = post_orders(client, states=states((0, [0, 0]), (1, [1])))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["field"] == "states[1].pipeline"
    assert "expected 2" in problem["message"]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"on_hand": -1, "pipeline": [0, 0]}, "states[0].on_hand"),
        ({"on_hand": 1, "pipeline": [0, -2]}, "states[0].pipeline[1]"),
        ({"on_hand": "lots", "pipeline": [0, 0]}, "states[0].on_hand"),
        ({"pipeline": [0, 0]}, "states[0].on_hand"),
        ({"on_hand": 1, "pipeline": [0, 0], "colour": "red"}, "states[0].colour"),
    ],
)
def test_invalid_states_are_named(client: TestClient, state: dict, field: str) -> None:
    response = post_orders(client, states=[state])
    assert response.status_code == 422
    assert field in [p["field"] for p in response.json()["detail"]]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(client: TestClient, token: str) -> None:
    content = f'{{"states": [{{"on_hand": {token}, "pipeline": [0, 0]}}]}}'.encode()
    response = client.post(ORDERS, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "states[0].on_hand" in detail_text(response)


def test_too_many_states_is_422(client: TestClient) -> None:
    rows = [{"on_hand": 1, "pipeline": [0, 0]}] * (MAX_BATCH + 1)
    response = post_orders(client, states=rows)
    assert response.status_code == 422
    assert "states" in [p["field"] for p in response.json()["detail"]]


def test_no_states_is_422(client: TestClient) -> None:
    response = post_orders(client, states=[])
    assert response.status_code == 422
    assert "states" in detail_text(response)


def test_unknown_top_level_field_is_422(client: TestClient) -> None:
    response = post_orders(client, horizon=3)
    assert response.status_code == 422
    assert "horizon" in detail_text(response)


@pytest.mark.parametrize(
    ("parameters", "pipeline"),
    [({"lead_time": 2, "demand_distribution": "normal"}, [0, 0]), ({"lead_time": 5}, [0] * 5)],
)
def test_intractable_optimal_is_422(client: TestClient, parameters: dict, pipeline: list[float]) -> None:
    response = post_orders(client, "optimal", parameters=parameters, states=[{"on_hand": 0, "pipeline": pipeline}])
    assert response.status_code == 422
    assert "exact DP" in response.json()["detail"]


# --- body size --------------------------------------------------------------------------------


def test_oversized_body_is_413(client: TestClient) -> None:
    padding = "x" * 1_100_000
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


# --- registered policies ----------------------------------------------------------------------


@pytest.fixture
def tiny(home: Path) -> OrderMLP:
    """A small untrained order network registered as ``inventory/tiny@1``."""
    torch.manual_seed(0)
    net = OrderMLP(lead_time=2, demand_scale=5.0, hidden=(8,))
    card = {"policy_config": net.config(), "algo": "hdpo", "scenario": {"lead_time": 2}, "metrics": {}}
    PolicyRegistry(home).save("inventory", "tiny", net.state_dict(), card)
    return net.eval()


def test_registered_policy_serves_orders(client: TestClient, tiny: OrderMLP) -> None:
    rows = states((0, [0, 0]), (7, [3, 4]))
    with torch.no_grad():
        expected = tiny.act(torch.tensor([[0.0, 0.0, 0.0], [7.0, 3.0, 4.0]])).tolist()
    for ref in ("inventory/tiny@1", "tiny", "tiny@1"):
        response = post_orders(client, ref, states=rows)
        assert response.status_code == 200, response.text
        assert response.json()["policy"] == "inventory/tiny@1"
        assert response.json()["orders"] == pytest.approx(expected, rel=1e-5)


def test_registered_policy_is_listed(client: TestClient, tiny: OrderMLP) -> None:
    [item] = client.get("/v1/policies").json()
    assert item["ref"] == "inventory/tiny@1"
    assert (item["domain"], item["name"], item["version"], item["algo"]) == ("inventory", "tiny", 1, "hdpo")
    assert item["scenario"] == {"lead_time": 2} and item["metrics"] == {} and item["created"] > 0
    assert client.get("/v1/policies", params={"domain": "inventory"}).json() == [item]
    registered = client.get("/v1/inventory/policies").json()["registered"]
    assert [r["ref"] for r in registered] == ["inventory/tiny@1"]


def test_registered_policy_errors_are_4xx(client: TestClient, tiny: OrderMLP) -> None:
    wrong_lead = post_orders(client, "tiny", parameters={"lead_time": 3}, states=states((0, [0, 0, 0])))
    assert 400 <= wrong_lead.status_code < 500
    assert "lead_time" in wrong_lead.json()["detail"]
    missing = post_orders(client, "inventory/tiny@9")
    assert 400 <= missing.status_code < 500
    assert "tiny@9" in missing.json()["detail"]
    unknown = post_orders(client, "other")
    assert unknown.status_code == 404
    assert "tiny" in unknown.json()["detail"]


def test_registry_home_argument_wins(home: Path, tmp_path_factory: pytest.TempPathFactory, tiny: OrderMLP) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    client = TestClient(create_app(registry_home=elsewhere))
    assert client.get("/v1/policies").json() == []
    assert post_orders(client, "tiny").status_code == 404


def test_orders_names_the_missing_series_state(client) -> None:
    # a real_series state needs its demand window: a lost_sales-style state is refused, naming the field
    response = client.post("/v1/inventory/orders", json={"scenario": "real_series", "policy": "base_stock",
                                                         "states": [{"on_hand": 1, "pipeline": []}]})
    assert response.status_code == 422
    assert "demand_window" in response.text
