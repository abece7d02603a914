"""HTTP routes of the execution domain through TestClient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.execution import SPEC
from decisionlab.domains.execution.policies import ExecutionMLP
from decisionlab.domains.execution.routes import build_router

PAPER_HOLDINGS = [1e6, 541956, 289854, 147897, 62142, 0]


@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix="/v1/execution")
    app.include_router(build_router(), prefix="/v1/execution")
    return TestClient(app)


def test_schedule_of_the_paper_example(client: TestClient) -> None:
    response = client.post("/v1/execution/schedule", json={
        "scenario": "almgren_chriss", "shares": 1e6, "horizon_steps": 5, "policy": "ac_optimal",
        "parameters": {"risk_aversion": 1e-6}})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["holdings"], PAPER_HOLDINGS, atol=1.0)
    assert sum(body["trades"]) == pytest.approx(1e6)
    assert body["expected_shortfall"] == pytest.approx(911_227, abs=1)
    assert body["variance"] == pytest.approx(3.641e11, rel=2e-4)
    assert body["mean_variance_objective"] == pytest.approx(911_227 + 3.641e5, rel=1e-4)
    twap = client.post("/v1/execution/schedule", json={"policy": "twap"}).json()
    assert twap["expected_shortfall"] == pytest.approx(662_500) and twap["trades"] == [2e5] * 5


def test_schedule_under_latent_liquidity_reports_the_impact_variance(client: TestClient) -> None:
    body = client.post("/v1/execution/schedule", json={"scenario": "latent_liquidity", "side": "buy"}).json()
    assert body["scenario"]["side"] == "buy" and len(body["holdings"]) == 11
    assert body["variance"] > 0.3**2 * sum(x**2 for x in body["holdings"][1:])  # more than the price variance


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"shares": -5}, 422, "shares"),
        ({"horizon_steps": 0}, 422, "horizon_steps"),
        ({"policy": "magic"}, 422, "policy"),
        ({"parameters": {"sigma": -1}}, 422, "sigma"),
        ({"parameters": {"nope": 1}}, 422, "nope"),
        ({"shares": 5e5, "parameters": {"shares": 6e5}}, 422, "shares"),
        ({"scenario": "nope"}, 404, "scenario"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_schedule_errors_name_the_field(client: TestClient, payload: dict, status: int, field: str) -> None:
    response = client.post("/v1/execution/schedule", json=payload)
    assert response.status_code == status, response.text
    assert field in response.text


def test_next_trade_follows_the_schedule_and_forces_completion(client: TestClient) -> None:
    states = [
        {"steps_done": 0, "remaining_shares": 1e6},
        {"steps_done": 1, "remaining_shares": 541956.0},
        {"steps_done": 1, "remaining_shares": 270978.0},  # off schedule: the same fraction of what is left
        {"steps_done": 4, "remaining_shares": 1234.0},  # last step: everything
    ]
    response = client.post("/v1/execution/next-trade", json={"policy": "ac_optimal", "states": states})
    assert response.status_code == 200, response.text
    trades = response.json()["trades"]
    assert trades[0] == pytest.approx(1e6 - 541956, abs=1)
    assert trades[1] == pytest.approx(541956 - 289854, abs=1)
    assert trades[2] == pytest.approx(trades[1] / 2, rel=1e-5)
    assert trades[3] == 1234.0
    assert response.json()["remaining_after"][3] == 0.0


def test_next_trade_with_a_registered_network_reads_fills(client: TestClient) -> None:
    torch.manual_seed(0)
    net = ExecutionMLP(10, 1e6, (8,))
    PolicyRegistry().save("execution", "pw", net.state_dict(), {"policy_config": net.config(), "metrics": {}})
    cheap = {"shares": 1e5, "price": 49.8375, "mid_before": 49.9}  # slippage ε + 0.25·η·n: liquid
    dear = {"shares": 1e5, "price": 48.9, "mid_before": 49.9}  # slippage ε + 3.75·η·n: illiquid
    state = {"steps_done": 3, "remaining_shares": 5e5, "price": 49.7, "previous_price": 49.9}
    response = client.post("/v1/execution/next-trade", json={
        "policy": "pw", "scenario": "latent_liquidity",
        "states": [{**state, "last_fill": cheap}, {**state, "last_fill": dear}, state]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "execution/pw@1"
    trades = body["trades"]
    assert all(0 <= t <= 5e5 for t in trades) and len(set(trades)) == 3  # the fills change the decision
    wrong = client.post("/v1/execution/next-trade", json={"policy": "pw", "states": [state]})  # N = 5
    # a registered policy that cannot serve the scenario is a 422 in every domain (it was 400 here)
    assert wrong.status_code == 422 and "horizon_steps" in wrong.text


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"steps_done": 5, "remaining_shares": 1.0}, "states[0].steps_done"),
        ({"steps_done": 0, "remaining_shares": 2e6}, "states[0].remaining_shares"),
        ({"steps_done": 0, "remaining_shares": -1}, "states[0].remaining_shares"),
        ({"steps_done": 0, "remaining_shares": 1, "last_fill": {"shares": 0, "price": 1, "mid_before": 1}},
         "states[0].last_fill.shares"),
    ],
)
def test_next_trade_errors_name_the_state_field(client: TestClient, state: dict, field: str) -> None:
    response = client.post("/v1/execution/next-trade", json={"states": [state]})
    assert response.status_code == 422, response.text
    assert field in response.text


def test_next_trade_unknown_policy_is_404_and_policies_lists_baselines(client: TestClient) -> None:
    response = client.post("/v1/execution/next-trade",
                           json={"policy": "nope", "states": [{"steps_done": 0, "remaining_shares": 1}]})
    assert response.status_code == 404 and "twap" in response.text
    listing = client.get("/v1/execution/policies").json()
    assert {"ac_optimal", "twap", "vwap", "static_expected"} <= set(listing["baselines"])


def test_the_api_server_mounts_the_execution_router(tmp_path) -> None:
    from decisionlab.apps.api import create_app

    with TestClient(create_app(tmp_path)) as server:
        response = server.post("/v1/execution/schedule", json={"policy": "static_expected"})
        assert response.status_code == 200, response.text
        assert response.json()["policy"] == "static_expected"
