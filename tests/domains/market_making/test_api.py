"""``POST /v1/market-making/quotes`` through TestClient: the closed forms' quotes, the inventory bound,
errors that name the field, and a registered policy answering with its version."""

from __future__ import annotations

import math
import time

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from decisionlab.apps.api import add_error_handlers
from decisionlab.apps.routes import domain_router
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.market_making import SPEC
from decisionlab.domains.market_making.learned import QuoteNet
from decisionlab.domains.market_making.model.scenario import PRESETS
from decisionlab.domains.market_making.routes import build_router

QUOTES = "/v1/market-making/quotes"


@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    add_error_handlers(app)
    app.include_router(domain_router(SPEC), prefix=SPEC.url_path)
    app.include_router(build_router(), prefix=SPEC.url_path)
    return TestClient(app)


def test_avellaneda_stoikov_quotes_match_the_closed_form(client: TestClient) -> None:
    states = [{"mid": 101.0, "inventory": q, "time_left": tau} for q, tau in ((0, 1.0), (3, 0.5), (-2, 0.2))]
    response = client.post(QUOTES, json={"policy": "avellaneda_stoikov", "states": states})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "avellaneda_stoikov" and body["policy_version"] is None and body["scenario_hash"]
    gamma, sigma, k = 0.1, 2.0, 1.5
    for i, state in enumerate(states):
        q, tau = state["inventory"], state["time_left"]
        reservation = 101.0 - q * gamma * sigma**2 * tau
        half = (gamma * sigma**2 * tau + 2 / gamma * math.log(1 + gamma / k)) / 2
        assert body["bid_prices"][i] == pytest.approx(reservation - half, abs=1e-4)
        assert body["ask_prices"][i] == pytest.approx(reservation + half, abs=1e-4)
        assert body["bid_sizes"][i] == body["ask_sizes"][i] == 1


def test_glft_closes_the_side_at_the_bound_and_needs_one(client: TestClient) -> None:
    states = [{"mid": 100.0, "inventory": 10, "time_left": 0.5}, {"mid": 100.0, "inventory": -10, "time_left": 0.5},
              {"mid": 100.0, "inventory": 0, "time_left": 0.5}]
    body = client.post(QUOTES, json={"policy": "glft", "scenario": "glft_bounded", "states": states}).json()
    assert body["bid_sizes"] == [0, 1, 1] and body["ask_sizes"] == [1, 0, 1]
    # symmetric at q = 0: the ask as far above the mid as the bid below
    assert body["ask_prices"][2] - 100.0 == pytest.approx(100.0 - body["bid_prices"][2], abs=1e-5)

    unbounded = client.post(QUOTES, json={"policy": "glft", "states": states[2:]})
    assert unbounded.status_code == 422
    assert "max_inventory" in str(unbounded.json()["detail"])


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"mid": 100.0, "inventory": 11, "time_left": 0.5}, "inventory"),  # beyond max_inventory=10
        ({"mid": 100.0, "inventory": 0, "time_left": 1.5}, "time_left"),  # beyond the horizon
        ({"mid": -1.0, "inventory": 0, "time_left": 0.5}, "mid"),
        ({"mid": 100.0, "inventory": "3", "time_left": 0.5}, "inventory"),
        ({"mid": 100.0, "inventory": 1.5, "time_left": 0.5}, "inventory"),
        ({"mid": 100.0, "inventory": 0, "time_left": 0.5, "flow_imbalance": 2}, "flow_imbalance"),
        ({"mid": 100.0, "inventory": 0, "time_left": 0.5, "spread": 1}, "spread"),
    ],
)
def test_bad_states_are_422_naming_the_field(client: TestClient, state: dict, field: str) -> None:
    response = client.post(QUOTES, json={"policy": "glft", "scenario": "glft_bounded", "states": [state]})
    assert response.status_code == 422, response.text
    assert field in str(response.json()["detail"])


def test_registered_policy_answers_with_its_version(client: TestClient) -> None:
    scenario = PRESETS["glft_bounded"]
    net = QuoteNet.initial(scenario, torch.device("cpu"))
    card = {"setting": "model", "scenario_name": "glft_bounded", "scenario": scenario.describe(),
            "policy_kind": net.kind, "policy_config": net.config()}
    record = PolicyRegistry().save("market_making", "quoter", net.state_dict(), card)
    state = {"mid": 100.0, "inventory": 2, "time_left": 0.5}
    body = client.post(QUOTES, json={"policy": "quoter", "scenario": "glft_bounded", "states": [state]}).json()
    assert body["policy"] == str(record.ref) or body["policy_version"] == record.ref.version
    with torch.no_grad():
        expected = net.act(torch.tensor([[0.5, 2.0, 0.0, 0.0, 0.0, 0.0]]))[0].tolist()
    assert body["bid_prices"][0] == pytest.approx(100.0 - expected[0], abs=1e-4)
    assert body["ask_prices"][0] == pytest.approx(100.0 + expected[1], abs=1e-4)


def test_the_api_reads_no_server_files(client: TestClient) -> None:
    state = {"mid": 100.0, "inventory": 0, "time_left": 30.0}
    response = client.post(QUOTES, json={"policy": "avellaneda_stoikov", "scenario": "lob_replay",
                                         "parameters": {"data_path": "/etc"}, "states": [state]})
    assert response.status_code == 422
    assert "data_path" in response.json()["detail"] and "/etc" not in response.json()["detail"]
    ok = client.post(QUOTES, json={"policy": "avellaneda_stoikov", "scenario": "lob_replay", "states": [state]})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("state", "bid"), [({"mid": 100.0, "inventory": 1_000_000, "time_left": 0.5}, -199_901),
                                            ({"mid": 0.01, "inventory": 50, "time_left": 0.5}, -10.7354)])
def test_quotes_that_make_no_sense_are_a_422_naming_the_field(client: TestClient, state: dict, bid: float) -> None:
    """Avellaneda–Stoikov at an absurd inventory would quote negative prices: refused, naming the inventory."""
    response = client.post(QUOTES, json={"policy": "avellaneda_stoikov", "states": [state]})
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"] == "states[0].inventory" and "prices must be positive" in problem["message"]
    assert f"{bid:.6g}" in problem["message"]


def test_a_learned_policy_refuses_states_far_outside_its_training_range(client: TestClient) -> None:
    """A quoter trained with |q| <= 10 (glft_bounded), served in the unbounded avellaneda_stoikov market, is not
    served at q = 1e6 unless the caller opts in."""
    from decisionlab.core import TrainContext
    from decisionlab.domains.market_making import _model_sim
    from decisionlab.domains.market_making.train import record_trained_ranges

    scenario = PRESETS["glft_bounded"]
    net = record_trained_ranges(QuoteNet.initial(scenario, torch.device("cpu")), scenario,
                                TrainContext(0, torch.device("cpu"), False), _model_sim)
    assert net.trained_ranges == {"inventory": (-10.0, 10.0), "time_left": (0.0, 1.0)}
    card = {"setting": "model", "scenario_name": "glft_bounded", "scenario": scenario.describe(),
            "policy_kind": net.kind, "policy_config": net.config()}
    PolicyRegistry().save("market_making", "bounded_quoter", net.state_dict(), card)
    body = {"policy": "bounded_quoter", "scenario": "avellaneda_stoikov"}
    inside = client.post(QUOTES, json={**body, "states": [{"mid": 100.0, "inventory": 14, "time_left": 0.5}]})
    assert inside.status_code == 200, inside.text  # within half the range past its end: still interpolation
    far = client.post(QUOTES, json={**body, "states": [{"mid": 100.0, "inventory": 1_000_000, "time_left": 0.5}]})
    assert far.status_code == 422, far.text
    problem = far.json()["detail"][0]
    assert problem["field"] == "states[0].inventory" and "[-10, 10]" in problem["message"]
    assert "allow_extrapolation" in problem["message"]
    opted_in = client.post(QUOTES, json={**body, "allow_extrapolation": True,
                                         "states": [{"mid": 100.0, "inventory": 20, "time_left": 0.5}]})
    assert opted_in.status_code == 200, opted_in.text


def test_the_exact_optimum_and_the_informed_closed_forms_answer(client: TestClient) -> None:
    """``dp_optimal`` serves its table (built off the request path: a 503 with Retry-After until it is
    ready); a mean-reverting mid, where no (t, q) optimum exists, is a 422 naming the policy. The drift-aware
    GLFT leans long on ``trending``: a lower bid than drift-blind GLFT at the same state."""
    from decisionlab.domains.market_making.model.dp import solve

    state = {"mid": 100.0, "inventory": 2, "time_left": 0.5}
    body = None
    for _ in range(100):
        response = client.post(QUOTES, json={"policy": "dp_optimal", "scenario": "glft_bounded", "states": [state]})
        if response.status_code != 503:
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    body = response.json()
    scenario = PRESETS["glft_bounded"]
    table = solve(scenario).depths[scenario.steps // 2, 2 + scenario.max_inventory]
    assert 100.0 - body["bid_prices"][0] == pytest.approx(table[0], abs=1e-4)
    assert body["ask_prices"][0] - 100.0 == pytest.approx(table[1], abs=1e-4)

    refused = client.post(QUOTES, json={"policy": "dp_optimal", "scenario": "mean_reverting", "states": [state]})
    assert refused.status_code == 422 and "mean_reversion" in refused.text

    bids = {name: client.post(QUOTES, json={"policy": name, "scenario": "trending", "states": [state]}).json()
            ["bid_prices"][0] for name in ("glft", "glft_drift")}
    assert bids["glft_drift"] > bids["glft"]  # a higher bid price: it buys more readily
