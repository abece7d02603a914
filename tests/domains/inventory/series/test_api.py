"""``POST /v1/inventory/orders`` and ``GET /v1/inventory/series`` for ``real_series``: a client's
state (on hand, pipeline, demand window, promotions, date, series) must give the orders the policy
gives on the simulator's own observation of the same (series, period, stock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.series.forecast import SeasonalEmpiricalForecaster
from decisionlab.domains.inventory.series.scenario import RealSeriesScenario, series_data
from decisionlab.domains.inventory.series.serve import series_catalog, series_observation
from decisionlab.domains.inventory.series.sim import SeriesObservation, SeriesSim, SeriesState
from decisionlab.domains.inventory.series.train import SeriesOrderNet

ORDERS = "/v1/inventory/orders"
SERIES = "/v1/inventory/series"
SMALL = {"synthetic_items": 2, "synthetic_stores": 2, "synthetic_days": 400}  # 4 series, L = 3, W = 56
ROWS = [(0, 60, 0.0, [0.0, 0.0, 0.0]), (3, 200, 5.0, [2.0, 0.0, 7.5]), (1, 399, 30.0, [1.0, 1.0, 1.0])]


@pytest.fixture(scope="module")
def scenario() -> RealSeriesScenario:
    return SPEC.scenario("real_series", SMALL)


def sim_rows(scenario: RealSeriesScenario) -> tuple[SeriesSim, SeriesState]:
    """The simulator's state at :data:`ROWS` ((series, period, on hand, pipeline) each)."""
    sim = SeriesSim(scenario, "cpu", split="all")
    series = torch.tensor([r[0] for r in ROWS])
    period = torch.tensor([r[1] for r in ROWS])
    state = sim.start_state(series, period, torch.tensor([r[2] for r in ROWS]), torch.tensor([r[3] for r in ROWS]))
    return sim, state


def client_states(scenario: RealSeriesScenario) -> list[dict[str, Any]]:
    """The same rows as a client sends them, cut from the scenario's data."""
    data = series_data(scenario)
    window, ahead = scenario.window_periods, scenario.lead_time + 1
    out = []
    for series, period, on_hand, pipeline in ROWS:
        item, store = data.keys.row(series)
        out.append({
            "on_hand": on_hand,
            "pipeline": pipeline,
            "demand_window": data.demand[series, period - window: period].tolist(),
            "promo_window": data.promo[series, period - window: period].float().tolist(),
            "promo_ahead": data.promo[series, period: period + ahead].float().tolist() + [0.0] * max(
                0, period + ahead - data.periods),
            "date": data.dates[period].isoformat(),
            "item": item,
            "store": store,
        })
    return out


def post(client: TestClient, states: list[dict[str, Any]], policy: str = "newsvendor_quantile",
         parameters: dict[str, Any] | None = None, **body: Any):
    payload = {"policy": policy, "scenario": "real_series", "parameters": SMALL if parameters is None else parameters,
               "states": states, **body}
    return client.post(ORDERS, json=payload)


def fields(response) -> dict[str, str]:
    return {p["field"]: p["message"] for p in response.json()["detail"]}


# --- GET /series --------------------------------------------------------------------------------


def test_series_route_describes_the_state(client: TestClient, scenario: RealSeriesScenario) -> None:
    response = client.get(SERIES, params={"parameters": json.dumps(SMALL)})
    assert response.status_code == 200, response.text
    body = response.json()
    data = series_data(scenario)
    assert (body["lead_time"], body["window_periods"], body["season_length"]) == (3, 56, 7)
    assert body["calendar"]["first_date"] == data.dates[0].isoformat()
    assert body["calendar"]["first_held_out_date"] == data.dates[data.split].isoformat()
    assert [(s["item"], s["store"]) for s in body["series"]] == [tuple(r) for r in data.keys.rows()]
    assert [s["scale"] for s in body["series"]] == pytest.approx(data.scale.tolist())
    assert [s["underage_cost"] for s in body["series"]] == pytest.approx(data.underage_cost.tolist())
    response = post(client, [body["example"]])  # the example is a valid request
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"scenario": "lost_sales"}, 422, "not a real_series scenario"),
        ({"parameters": '{"data_path": "/etc/passwd"}'}, 422, "data_path"),
        ({"parameters": '{"synthetic_items": 2000, "synthetic_stores": 200}'}, 422, "synthetic_items"),
        ({"parameters": "nope"}, 422, "query.parameters"),
    ],
)
def test_series_route_errors(client: TestClient, params: dict, status: int, text: str) -> None:
    response = client.get(SERIES, params=params)
    assert response.status_code == status
    assert text in response.text


# --- the observation ------------------------------------------------------------------------------


def test_observation_is_the_simulators(scenario: RealSeriesScenario) -> None:
    from decisionlab.domains.inventory.series.serve import SeriesStoreState

    sim, state = sim_rows(scenario)
    expected = sim.observe(state)
    states = [SeriesStoreState.model_validate(s) for s in client_states(scenario)]
    policy = SPEC.policy("base_stock").build(scenario, torch.device("cpu"))
    got = series_observation(series_catalog(scenario), states, policy, torch.device("cpu"))
    for name in SeriesObservation.__dataclass_fields__:
        assert torch.equal(getattr(got, name).to(getattr(expected, name).dtype), getattr(expected, name)), name


@pytest.mark.parametrize(
    "policy",
    ["newsvendor_quantile", "fixed_quantile", "transformed_quantile", "myopic", "base_stock", "capped_base_stock"],
)
def test_baseline_orders_match_the_simulator(client: TestClient, scenario: RealSeriesScenario, policy: str) -> None:
    sim, state = sim_rows(scenario)
    with torch.no_grad():
        expected = SPEC.policy(policy).build(scenario, torch.device("cpu")).act(sim.observe(state))
    response = post(client, client_states(scenario), policy)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == policy and body["scenario"]["synthetic_days"] == 400
    assert body["orders"] == pytest.approx(expected.clamp_min(0).tolist(), rel=1e-5, abs=1e-5)
    assert any(q > 0 for q in body["orders"])


@pytest.fixture
def series_net(home: Path, scenario: RealSeriesScenario) -> SeriesOrderNet:
    """A small untrained series network registered as ``inventory/seriesnet@1``."""
    torch.manual_seed(0)
    net = SeriesOrderNet(scenario.lead_time, scenario.window_periods, scenario.season_length, (8,), 4)
    card = {"policy_config": net.config(), "algo": "hdpo", "scenario": scenario.describe(), "metrics": {}}
    PolicyRegistry(home).save("inventory", "seriesnet", net.state_dict(), card)
    return net.eval()


def test_registered_network_matches_the_simulator(
    client: TestClient, scenario: RealSeriesScenario, series_net: SeriesOrderNet
) -> None:
    sim, state = sim_rows(scenario)
    with torch.no_grad():
        expected = series_net.act(sim.observe(state))
    response = post(client, client_states(scenario), "seriesnet")
    assert response.status_code == 200, response.text
    assert response.json()["policy"] == "inventory/seriesnet@1"
    assert response.json()["orders"] == pytest.approx(expected.tolist(), rel=1e-5)
    # the date sets the weekday (daily data, season 7): the same state with that phase acts the same
    by_phase = [{**s, "date": None, "phase": series_data(scenario).dates[r[1]].weekday()}
                for s, r in zip(client_states(scenario), ROWS, strict=True)]
    assert post(client, by_phase, "seriesnet").json()["orders"] == pytest.approx(expected.tolist(), rel=1e-5)


def test_a_series_outside_the_data_uses_its_own_history(
    client: TestClient, scenario: RealSeriesScenario, series_net: SeriesOrderNet
) -> None:
    window = [float(3 + (k % 7)) for k in range(scenario.window_periods)]
    state = {"on_hand": 4.0, "pipeline": [1.0, 2.0, 3.0], "demand_window": window, "phase": 2, "underage_cost": 19.0}
    response = post(client, [state, {**state, "scale": 2.0}], "newsvendor_quantile")
    assert response.status_code == 200, response.text
    forecaster = SeasonalEmpiricalForecaster.for_scenario(scenario)
    obs = SeriesObservation(
        on_hand=torch.tensor([4.0]), pipeline=torch.tensor([[1.0, 2.0, 3.0]]), demand_window=torch.tensor([window]),
        promo_window=torch.zeros(1, len(window)), promo_ahead=torch.zeros(1, 4), phase=torch.tensor([2]),
        scale=torch.tensor([sum(window) / len(window)]), critical_ratio=torch.tensor([19.0 / 20.0]),
        series=torch.tensor([0]), period=torch.tensor([0]),
    )
    expected = float(torch.relu(forecaster.lead_time_quantile(obs, obs.critical_ratio) - 10.0))
    assert response.json()["orders"] == pytest.approx([expected, expected], rel=1e-5)  # the scale is not read here
    assert expected > 0
    # the network reads the scale: the window's mean by default, the given one otherwise
    response = post(client, [state, {**state, "scale": sum(window) / len(window)}, {**state, "scale": 50.0}],
                    "seriesnet")
    assert response.status_code == 200, response.text
    orders = response.json()["orders"]
    assert orders[0] == pytest.approx(orders[1], rel=1e-6) and orders[2] != pytest.approx(orders[0], rel=1e-3)


def test_backlog_series_may_start_negative(client: TestClient) -> None:
    backlog = {**SMALL, "shortage": "backlog"}
    state = {"on_hand": -4.0, "pipeline": [0.0, 0.0, 0.0], "demand_window": [5.0] * 56, "phase": 0}
    short = post(client, [state, {**state, "on_hand": 0.0}], parameters=backlog)
    assert short.status_code == 200, short.text
    assert short.json()["orders"][0] == pytest.approx(short.json()["orders"][1] + 4.0, rel=1e-5)
    lost = post(client, [state])
    assert lost.status_code == 422
    assert "lost_sales" in fields(lost)["states[0].on_hand"]


# --- mistakes -------------------------------------------------------------------------------------


def _valid() -> dict[str, Any]:
    return {"on_hand": 1.0, "pipeline": [0.0, 0.0, 0.0], "demand_window": [2.0] * 56, "date": "2023-06-01",
            "item": "item_1", "store": "store_2"}


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"demand_window": [2.0] * 55}, "states[0].demand_window", "expected 56"),
        ({"pipeline": [0.0]}, "states[0].pipeline", "expected 3"),
        ({"promo_window": [0.0] * 3}, "states[0].promo_window", "expected 56"),
        ({"promo_ahead": [1.0] * 3}, "states[0].promo_ahead", "expected 4"),
        ({"promo_ahead": [0, 0, 2, 0]}, "states[0].promo_ahead[2]", "less than or equal to 1"),
        ({"demand_window": [2.0] * 10 + [-1.0] + [2.0] * 45}, "states[0].demand_window[10]", "greater than"),
        ({"on_hand": -1.0}, "states[0].on_hand", "lost_sales"),
        ({"date": None}, "states[0].date", "season"),
        ({"phase": 3}, "states[0].phase", "not both"),
        ({"date": None, "phase": 7}, "states[0].phase", "season_length=7"),
        ({"date": "June"}, "states[0].date", "valid date"),
        ({"item": "item_9"}, "states[0].item", "no series"),
        ({"store": None}, "states[0].store", "give both"),
        ({"scale": 3.0}, "states[0].scale", "comes from the data"),
        ({"underage_cost": 3.0}, "states[0].underage_cost", "comes from the data"),
        ({"colour": "red"}, "states[0].colour", "Extra inputs"),
    ],
)
def test_invalid_states_name_the_field(client: TestClient, change: dict, field: str, text: str) -> None:
    state = {k: v for k, v in {**_valid(), **change}.items() if v is not None}
    response = post(client, [_valid(), state])
    assert response.status_code == 422, response.text
    problems = fields(response)
    field = field.replace("states[0]", "states[1]")
    assert field in problems, problems
    assert text in problems[field]


def test_nan_in_the_window_is_422(client: TestClient) -> None:
    window = ", ".join(["2"] * 10 + ["NaN"] + ["2"] * 45)
    content = (f'{{"policy": "myopic", "scenario": "real_series", "parameters": {json.dumps(SMALL)}, "states": '
               f'[{{"on_hand": 0, "pipeline": [0, 0, 0], "demand_window": [{window}], "phase": 1}}]}}').encode()
    response = client.post(ORDERS, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "states[0].demand_window[10]" in fields(response)


def test_per_series_policies_need_the_series(client: TestClient) -> None:
    state = {k: v for k, v in _valid().items() if k not in ("item", "store")}
    for policy in ("base_stock", "capped_base_stock"):
        response = post(client, [state], policy)
        assert response.status_code == 422
        assert "item and store" in fields(response)["states[0].item"]
    assert post(client, [state], "myopic").status_code == 200


@pytest.mark.parametrize("policy", ["just_in_time", "optimal", "echelon_stock"])
def test_policies_that_cannot_serve_are_422_naming_policy(client: TestClient, policy: str) -> None:
    response = post(client, [_valid()], policy)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"policy: '{policy}'")


def test_registered_network_for_another_window_is_refused(client: TestClient, series_net: SeriesOrderNet) -> None:
    state = {**_valid(), "demand_window": [2.0] * 28}
    response = post(client, [state], "seriesnet", parameters={**SMALL, "window_periods": 28})
    assert response.status_code == 422
    assert "window_periods" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"networks": [{"on_hand": {"store": 1}}]}, "networks"),
        ({"states": None}, "states"),
        ({"states": [{"on_hand": 1, "pipeline": [0, 0, 0]}]}, "states[0].demand_window"),
    ],
)
def test_wrong_kind_of_state_is_named(client: TestClient, body: dict, field: str) -> None:
    payload = {"policy": "myopic", "scenario": "real_series", "parameters": SMALL, "states": [_valid()], **body}
    response = client.post(ORDERS, json={k: v for k, v in payload.items() if v is not None})
    assert response.status_code == 422
    assert field in fields(response)


@pytest.mark.parametrize(
    ("parameters", "text"),
    [({**SMALL, "data_path": "/etc/passwd"}, "data_path"), ({"synthetic_items": 2000}, "series-days"),
     ({**SMALL, "window_periods": 3}, "window_periods")],
)
def test_scenarios_the_api_does_not_load_are_422(client: TestClient, parameters: dict, text: str) -> None:
    response = post(client, [_valid()], parameters=parameters)
    assert response.status_code == 422
    assert text in response.text
