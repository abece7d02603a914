"""Serving a changing registry: promotions picked up without a restart, responses that name what
answered, broken artefacts as a 503 naming the policy while others keep serving, up-front cost
checks, metrics and request ids."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from decisionlab.apps.api import create_app
from decisionlab.core.spec import get_domain
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory.single_store.policies import OrderMLP

STATE = {"on_hand": 3.0, "pipeline": [4.0, 5.0]}


def order(client: TestClient, policy: str, parameters: dict | None = None, states: list | None = None):
    return client.post("/v1/inventory/orders", json={"scenario": "lost_sales", "policy": policy,
                                                     "parameters": parameters or {}, "states": states or [STATE]})


def save_net(home: Path, scale: float) -> str:
    """A registered lead-time-2 network whose output layer is scaled (so versions answer apart)."""
    spec = get_domain("inventory")
    torch.manual_seed(0)
    net = OrderMLP(2, 5.0)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(scale)
    card = {"scenario_name": "lost_sales", "scenario": spec.scenario("lost_sales").describe(), "algo": "hdpo",
            "policy_kind": "order_mlp", "policy_config": net.config(), "metrics": {}}
    return str(PolicyRegistry(home).save("inventory", "hdpo_test", net.state_dict(), card).ref)


@pytest.fixture
def server(home: Path) -> TestClient:
    client = TestClient(create_app())
    client.app.state.policies.resolve_ttl_s = 0.0  # see every registry change at once
    return client


def test_promotions_are_served_without_a_restart(home: Path, server: TestClient) -> None:
    first, second = save_net(home, 1.0), save_net(home, 2.0)
    registry = PolicyRegistry(home)
    registry.promote(first, "prod")
    answered = order(server, "inventory/hdpo_test@prod").json()
    assert answered["policy"] == first and answered["policy_version"] == 1
    registry.promote(second, "prod")
    answered = order(server, "hdpo_test@prod").json()
    assert answered["policy"] == second and answered["policy_version"] == 2
    registry.rollback("inventory/hdpo_test", "prod")
    assert order(server, "hdpo_test@prod").json()["policy"] == first


@pytest.mark.parametrize("lifespan", [True, False], ids=["watcher thread", "checked on requests"])
def test_promotions_reach_a_server_within_the_resolution_ttl(home: Path, lifespan: bool) -> None:
    app = create_app()
    assert app.state.policies.resolve_ttl_s <= 1.0
    registry = PolicyRegistry(home)
    first = save_net(home, 1.0)
    registry.promote(first, "prod")
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(TestClient(app)) if lifespan else TestClient(app)
        assert order(client, "hdpo_test@prod").json()["policy"] == first
        second = save_net(home, 2.0)
        registry.promote(second, "prod")
        deadline = time.monotonic() + 10
        while order(client, "hdpo_test@prod").json()["policy"] != second:
            assert time.monotonic() < deadline, "the promotion was not picked up"
            time.sleep(0.2)


def test_every_response_names_what_answered(home: Path, server: TestClient) -> None:
    ref = save_net(home, 1.0)
    registered = order(server, ref).json()
    assert registered["policy"] == ref and len(registered["scenario_hash"]) == 16
    baseline = order(server, "myopic").json()
    assert baseline["policy"] == "myopic" and baseline["policy_version"] is None
    other = order(server, "myopic", {"underage_cost": 4.0}).json()
    assert other["scenario_hash"] != baseline["scenario_hash"]
    assert order(server, "myopic").json()["scenario_hash"] == baseline["scenario_hash"]
    generic = server.post("/v1/inventory/act", json={"scenario": "lost_sales", "policy": "myopic",
                                                      "states": [STATE]}).json()
    assert generic["scenario_hash"] == baseline["scenario_hash"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "shapes", "nan"])
def test_a_broken_artefact_is_a_503_naming_the_policy_and_others_keep_serving(
    damage: str, home: Path, server: TestClient
) -> None:
    good, bad = save_net(home, 1.0), None
    registry = PolicyRegistry(home)
    if damage in ("shapes", "nan"):
        net = OrderMLP(2, 5.0)
        weights = net.state_dict()
        if damage == "shapes":
            weights = {k: torch.zeros(3, 3) for k in weights}
        else:
            weights = {k: torch.full_like(v, float("nan")) for k, v in weights.items()}
        card = {"scenario_name": "lost_sales", "scenario": {}, "algo": "hdpo", "policy_kind": "order_mlp",
                "policy_config": net.config(), "metrics": {}}
        bad = str(registry.save("inventory", "broken", weights, card).ref)
    else:
        bad = save_net(home, 3.0)
        path = registry.find(bad).weights_path
        if damage == "missing":
            path.unlink()
        else:
            path.write_bytes(b"\x00" * 64)
    response = order(server, bad)
    assert response.status_code == 503, response.text
    text = response.text
    assert bad in text and str(home) not in text and ".safetensors" not in text
    assert order(server, good).status_code == 200
    assert order(server, "base_stock").status_code == 200


def test_builds_over_the_memory_budget_are_refused_up_front(server: TestClient) -> None:
    """The exact DP and the myopic table say what they would need, before allocating anything."""
    response = order(server, "optimal", {"lead_time": 0, "demand_mean": 1e6}, [{"on_hand": 1.0, "pipeline": []}])
    assert response.status_code == 422, response.text
    assert "GiB" in response.text and "demand_mean" in response.text and "DECISIONLAB_BUILD_MAX_BYTES" in response.text
    response = order(server, "myopic", {"lead_time": 30, "demand_mean": 1e6},
                     [{"on_hand": 1.0, "pipeline": [0.0] * 30}])
    assert response.status_code == 422, response.text
    assert "GiB" in response.text or "TiB" in response.text


def test_a_build_still_running_is_a_503_with_retry_after(server: TestClient) -> None:
    server.app.state.policies.build_wait_s = 0.0
    response = order(server, "capped_base_stock", {"demand_mean": 4.321})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "still being built" in response.json()["detail"]
    server.app.state.policies.build_wait_s = 600.0
    assert order(server, "capped_base_stock", {"demand_mean": 4.321}).status_code == 200


def test_metrics_count_requests_policies_and_cache_hits(home: Path, server: TestClient) -> None:
    ref = save_net(home, 1.0)
    for _ in range(3):
        assert order(server, ref).status_code == 200
    text = server.get("/metrics").text
    assert 'decisionlab_requests_total{method="POST",route="/v1/inventory/orders",status="200"}' in text
    assert f'decisionlab_policy_requests_total{{domain="inventory",policy="{ref}"}}' in text
    assert 'decisionlab_policy_cache_total{kind="registered",result="hit"}' in text
    assert "decisionlab_request_seconds_bucket" in text and "decisionlab_build_seconds" in text


def test_request_ids_are_returned_and_kept(server: TestClient) -> None:
    response = order(server, "base_stock")
    assert len(response.headers["x-request-id"]) >= 16
    response = server.post("/v1/inventory/orders", json={"policy": "base_stock", "states": [{"on_hand": "x"}]},
                           headers={"X-Request-ID": "client-42"})
    assert response.headers["x-request-id"] == "client-42" and response.json()["request_id"] == "client-42"
    odd = server.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert odd.headers["x-request-id"] != "bad id with spaces"


def test_ready_reports_the_warm_up(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONLAB_WARM", "defaults")
    save_net(home, 1.0)
    with TestClient(create_app()) as client:
        deadline = time.monotonic() + 600
        while (ready := client.get("/ready")).status_code != 200:
            assert ready.status_code == 503 and ready.json()["status"] == "warming"
            assert client.get("/health").status_code == 200
            assert time.monotonic() < deadline
            time.sleep(0.5)
        body = ready.json()
        assert body["builds_done"] == body["builds_total"] > 0


def test_numbers_are_strict(server: TestClient) -> None:
    for bad in ("3", True):
        response = order(server, "base_stock", states=[{"on_hand": bad, "pipeline": [1.0, 2.0]}])
        assert response.status_code == 422 and "states[0].on_hand" in response.text
        response = order(server, "base_stock", {"lead_time": bad})
        assert response.status_code == 422 and "lead_time" in response.text


def test_huge_integers_name_their_field(server: TestClient) -> None:
    body = ('{"scenario": "lost_sales", "policy": "base_stock", "states": [{"on_hand": ' + "9" * 5000
            + ', "pipeline": [1, 2]}]}')
    response = server.post("/v1/inventory/orders", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "states[0].on_hand"
