"""``POST /v1/inventory/orders`` for the single store through the in-process test client: orders of
baselines and registered networks, and every client mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from request_helpers import LEAD2, ORDERS, detail_text, post_orders, states

from decisionlab.apps.api import create_app
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.routes import MAX_BATCH
from decisionlab.domains.inventory.single_store.policies import OrderMLP
from decisionlab.domains.inventory.single_store.search import best_base_stock

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


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("decisionlab_policy_cache_total", {"kind": "baseline", "result": result}) or 0.0


def test_baselines_are_built_once(client: TestClient) -> None:
    post_orders(client, "myopic")
    hits, misses = cache_count("hit"), cache_count("miss")
    post_orders(client, "myopic", states=states((1, [2, 3])))
    assert cache_count("hit") == hits + 1 and cache_count("miss") == misses


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
