"""The routes the API generates for every domain: ``POST /v1/<domain>/act``, ``GET /v1/<domain>/schema``
and ``GET /v1/<domain>/policies``, and the one mapping from error type to status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from decisionlab.core.spec import list_domains
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory.single_store.policies import OrderMLP


def test_every_domain_gets_act_schema_and_policies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for spec in list_domains():
        assert {f"{spec.url_path}/act", f"{spec.url_path}/schema", f"{spec.url_path}/policies"} <= set(paths)


@pytest.mark.parametrize(("path", "scenario"), [(d.url_path, name) for d in list_domains() for name in d.scenarios])
def test_the_schema_example_is_accepted_by_act(client: TestClient, path: str, scenario: str) -> None:
    parameters = {"synthetic_items": 2, "synthetic_stores": 2, "synthetic_days": 400} if scenario == "real_series" \
        else {}
    described = client.get(f"{path}/schema", params={"scenario": scenario, "parameters": json.dumps(parameters)})
    assert described.status_code == 200, described.text
    body = described.json()
    assert body["scenario_name"] == scenario and body["policies"]
    assert body["state_schema"]["type"] == "object" and body["action_schema"]["type"] == "object"
    quick = next(p for p in body["policies"] if p in ("myopic", "newsvendor_echelon", "critical_fractile", "twap",
                                                     "newsvendor_quantile", "avellaneda_stoikov", "nearest", "greedy",
                                                     "free_market", "popularity"))
    response = client.post(f"{path}/act", json={"scenario": scenario, "parameters": parameters,
                                                       "policy": quick, "states": [body["example_state"]]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["setting"] == body["setting"] and answer["policy"] == quick and answer["policy_version"] is None
    assert len(answer["actions"]) == 1


def test_act_names_the_registered_version_that_answered(client: TestClient, home: Path) -> None:
    torch.manual_seed(0)
    net = OrderMLP(2, 5.0, (8,))
    registry = PolicyRegistry(home)
    for _ in range(2):
        registry.save("inventory", "tiny", net.state_dict(), {"policy_config": net.config(), "metrics": {}})
    state = {"on_hand": 1.0, "pipeline": [2.0, 3.0]}
    latest = client.post("/v1/inventory/act", json={"policy": "tiny", "states": [state]}).json()
    assert (latest["policy"], latest["policy_version"]) == ("inventory/tiny@2", 2)
    pinned = client.post("/v1/inventory/act", json={"policy": "tiny@1", "states": [state]}).json()
    assert (pinned["policy"], pinned["policy_version"]) == ("inventory/tiny@1", 1)
    assert pinned["actions"] == latest["actions"]  # the same weights


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"policy": "nope"}, 404, "unknown inventory policy 'nope'"),
        ({"policy": "echelon_stock"}, 422, "policy: 'echelon_stock' cannot serve this scenario"),
        ({"policy": "just_in_time"}, 422, "not admissible"),
        ({"policy": "optimal", "scenario": "nope"}, 404, "unknown inventory scenario 'nope'"),
        ({"policy": "optimal", "parameters": {"lead_time": -1}}, 422, "parameters: invalid scenario: lead_time"),
        ({"policy": "optimal", "parameters": {"lead_time": 9},
          "states": [{"on_hand": 1.0, "pipeline": [1.0] * 9}]}, 422, "exact DP"),
        ({"policy": "optimal", "states": [{"on_hand": 1.0, "pipeline": [1.0]}]}, 422, "states[0].pipeline"),
        ({"policy": "optimal", "states": [{"on_hand": "3", "pipeline": [1.0, 2.0]}]}, 422, "states[0].on_hand"),
        ({"policy": "optimal", "states": [{"on_hand": True, "pipeline": [1.0, 2.0]}]}, 422, "states[0].on_hand"),
        ({"policy": "optimal", "states": []}, 422, "states"),
        ({"policy": "optimal", "extra": 1}, 422, "extra"),
    ],
)
def test_one_mapping_from_error_to_status(client: TestClient, body: dict, status: int, needle: str) -> None:
    payload = {"scenario": "lost_sales", "parameters": {}, "states": [{"on_hand": 1.0, "pipeline": [2.0, 3.0]}],
               **body}
    response = client.post("/v1/inventory/act", json=payload)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_a_registered_policy_of_another_horizon_is_422_in_every_route(client: TestClient, home: Path) -> None:
    from decisionlab.domains.execution.policies import ExecutionMLP

    net = ExecutionMLP(10, 1e6, (8,))
    PolicyRegistry(home).save("execution", "pw", net.state_dict(), {"policy_config": net.config(), "metrics": {}})
    state = {"steps_done": 0, "remaining_shares": 1e6}
    via_act = client.post("/v1/execution/act", json={"scenario": "almgren_chriss", "policy": "pw", "states": [state]})
    via_route = client.post("/v1/execution/next-trade", json={"scenario": "almgren_chriss", "policy": "pw",
                                                               "states": [state]})
    for response in (via_act, via_route):
        assert response.status_code == 422 and "horizon_steps" in response.text


def test_schema_errors_name_the_query(client: TestClient) -> None:
    response = client.get("/v1/inventory/schema", params={"scenario": "lost_sales", "parameters": "[1]"})
    assert response.status_code == 422 and "query.parameters" in response.text
    assert client.get("/v1/inventory/schema", params={"scenario": "nope"}).status_code == 404


def test_policy_listings_name_the_settings(client: TestClient) -> None:
    baselines = client.get("/v1/inventory/policies").json()["baselines"]
    assert baselines["base_stock"]["settings"] == ["single_store", "series", "network"]
    assert baselines["critical_fractile"]["settings"] == ["network"]
    assert baselines["just_in_time"]["admissible"] is False
    assert client.get("/v1/execution/policies").json()["baselines"]["twap"]["static"] is True
