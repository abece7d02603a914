"""``POST /v1/inventory/orders`` and ``GET /v1/inventory/network`` for the network scenarios
(backlog, serial, one_warehouse, transshipment, multi_warehouse), through FastAPI's test client."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from scipy import stats

from decisionlab.core.seeding import make_generator
from decisionlab.core.store.registry import PolicyRegistry
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network.search import best_echelon_stock
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState
from decisionlab.domains.inventory.network.train import NetworkMLP
from decisionlab.domains.inventory.routes import LOST_SALES_EXAMPLE, MAX_BATCH, NETWORK_EXAMPLE, SERIES_EXAMPLE

ORDERS = "/v1/inventory/orders"
NETWORK = "/v1/inventory/network"
BACKLOG = {"lead_time": 2}
SERIAL = {"lead_times": [1, 1], "holding_costs": [0.5, 1.0]}  # supplier -> echelon2 -> store
ONE_WAREHOUSE = {"n_stores": 2}


def post(client: TestClient, scenario: str, networks: list[dict[str, Any]] | None, policy: str = "critical_fractile",
         parameters: dict[str, Any] | None = None, **body: Any):
    payload: dict[str, Any] = {"policy": policy, "scenario": scenario, "parameters": parameters or {}, **body}
    if networks is not None:
        payload["networks"] = networks
    return client.post(ORDERS, json=payload)


def fields(response) -> list[str]:
    return [problem["field"] for problem in response.json()["detail"]]


def messages(response) -> str:
    return json.dumps(response.json()["detail"])


def backlog_state(on_hand: float, pipeline: list[float]) -> dict[str, Any]:
    return {"on_hand": {"store": on_hand}, "in_transit": {"store": {"supplier": pipeline}}}


def one_warehouse_state(**on_hand: float) -> dict[str, Any]:
    """A valid one_warehouse (n_stores=2) state; ``on_hand`` overrides the defaults."""
    return {
        "on_hand": {"warehouse": 20.0, "store0": 3.0, "store1": 4.0, **on_hand},
        "in_transit": {"warehouse": {"supplier": [5.0, 5.0, 5.0]}, "store0": {"warehouse": [1.0, 2.0, 3.0]},
                       "store1": {"warehouse": [2.0, 2.0]}},
    }


def named_state(sim: NetworkSim, state: NetworkState, row: int) -> dict[str, Any]:
    """Row ``row`` of a simulator state in the request's format, by the topology's node names."""
    topo = sim.topology
    names = [node.name for node in topo.nodes]
    in_transit: dict[str, dict[str, list[float]]] = {}
    for k, edge in enumerate(topo.edges):
        in_transit.setdefault(names[edge.dst], {})[names[edge.src]] = state.pipeline[row, k, : edge.lead_time].tolist()
    return {"on_hand": {names[j]: float(state.on_hand[row, j]) for j in topo.held_nodes}, "in_transit": in_transit}


# --- GET /network -----------------------------------------------------------------------------


def test_network_route_describes_the_topology(client: TestClient) -> None:
    response = client.get(NETWORK, params={"scenario": "one_warehouse", "parameters": json.dumps(ONE_WAREHOUSE)})
    assert response.status_code == 200, response.text
    body = response.json()
    topo = SPEC.scenario("one_warehouse", ONE_WAREHOUSE).topology()
    assert body["scenario"]["n_stores"] == 2 and body["lost_sales"] is True
    assert [(n["name"], n["kind"]) for n in body["nodes"]] == [
        ("supplier", "supplier"), ("warehouse", "warehouse"), ("store0", "store"), ("store1", "store")]
    for node, expected in zip(body["nodes"], topo.nodes, strict=True):
        assert node["holding_cost"] == pytest.approx(expected.holding_cost)
        assert node["underage_cost"] == pytest.approx(expected.underage_cost)
        assert node["holds_stock"] is (expected.kind in ("warehouse", "store"))
        assert node["may_be_negative"] is False  # lost sales
    names = [n.name for n in topo.nodes]
    assert body["links"] == [{"from": names[e.src], "to": names[e.dst], "lead_time": e.lead_time} for e in topo.edges]
    example = body["example"]
    assert set(example["on_hand"]) == {"warehouse", "store0", "store1"}
    assert {(dst, src): len(v) for dst, by in example["in_transit"].items() for src, v in by.items()} == {
        (names[e.dst], names[e.src]): e.lead_time for e in topo.edges}


def test_network_route_example_is_a_valid_request(client: TestClient) -> None:
    described = client.get(NETWORK, params={"scenario": "backlog", "parameters": json.dumps(BACKLOG)}).json()
    assert [n["may_be_negative"] for n in described["nodes"]] == [False, True]  # the store backlogs
    response = post(client, "backlog", [described["example"]], parameters=BACKLOG)
    assert response.status_code == 200, response.text


def test_network_route_transshipment_centre_holds_nothing(client: TestClient) -> None:
    body = client.get(NETWORK, params={"scenario": "transshipment"}).json()
    centre = next(n for n in body["nodes"] if n["name"] == "centre")
    assert centre["kind"] == "centre" and centre["holds_stock"] is False
    assert "centre" not in body["example"]["on_hand"]
    assert "centre" in body["example"]["in_transit"]


@pytest.mark.parametrize(
    ("params", "status", "field_or_text"),
    [
        ({"scenario": "lost_sales"}, 422, "not a network scenario"),
        ({"scenario": "nowhere"}, 404, "one_warehouse"),
        ({"scenario": "one_warehouse", "parameters": "{n_stores: 2"}, 422, "query.parameters"),
        ({"scenario": "one_warehouse", "parameters": "[2]"}, 422, "query.parameters"),
        ({"scenario": "one_warehouse", "parameters": '{"n_shops": 2}'}, 422, "n_shops"),
        ({"scenario": "one_warehouse", "parameters": '{"n_stores": 0}'}, 422, "n_stores"),
        # these used to be 500s: a store without a warehouse, a range past any float, zero costs
        ({"scenario": "multi_warehouse", "parameters": '{"n_stores": 1, "n_warehouses": 1, "adjacency": [[0]]}'}, 422,
         "adjacency"),
        ({"scenario": "one_warehouse", "parameters": '{"demand_mean_range": [1, 1e300]}'}, 422, "demand_mean_range"),
        ({"scenario": "one_warehouse", "parameters": '{"store_underage_range": [0, 0], "store_holding_range": [0, 0]}'},
         422, "store_holding_range"),
        ({"scenario": "serial", "parameters": '{"lead_times": [0], "holding_costs": [0]}'}, 422, "holding_costs"),
        ({}, 422, "query.scenario"),
    ],
)
def test_network_route_errors(client: TestClient, params: dict, status: int, field_or_text: str) -> None:
    response = client.get(NETWORK, params=params)
    assert response.status_code == status
    assert field_or_text in response.text


# --- orders -------------------------------------------------------------------------------------


def test_backlog_critical_fractile_is_the_closed_form(client: TestClient) -> None:
    rows = [(0.0, [0.0, 0.0]), (0.0, [5.0, 6.0]), (-3.0, [5.0, 6.0]), (12.0, [0.0, 4.0]), (2.5, [7.25, 1.0]),
            (40.0, [10.0, 10.0])]
    response = post(client, "backlog", [backlog_state(o, p) for o, p in rows], parameters=BACKLOG)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "critical_fractile" and body["scenario"]["lead_time"] == 2
    # S* = mu (L+1) + z sigma sqrt(L+1), z = Phi^-1(p / (p + h)); preset mu = 5, cv = 0.32, p = 9, h = 1
    mu, sigma, periods = 5.0, 5.0 * 0.32, 3
    level = mu * periods + stats.norm.ppf(9 / 10) * sigma * math.sqrt(periods)
    expected = [max(0.0, level - (on_hand + sum(pipeline))) for on_hand, pipeline in rows]
    assert expected[-1] == 0.0 and expected[0] > expected[1] > 0
    got = [network["orders"] for network in body["networks"]]
    assert all(set(orders) == {"store"} and set(orders["store"]) == {"supplier"} for orders in got)
    quantities = [orders["store"]["supplier"] for orders in got]
    assert quantities == pytest.approx(expected, rel=1e-5, abs=1e-4)
    assert quantities[2] - quantities[1] == pytest.approx(3.0, abs=1e-4)  # a backlog of 3 is ordered back


def test_serial_echelon_stock_orders_up_to_echelon_levels(client: TestClient) -> None:
    networks = [
        {"on_hand": {"echelon2": 4.0, "store": -2.0}, "in_transit": {"echelon2": {"supplier": [6.0]},
                                                                      "store": {"echelon2": [3.0]}}},
        {"on_hand": {"echelon2": 0.0, "store": 0.0}, "in_transit": {"echelon2": {"supplier": [0.0]},
                                                                     "store": {"echelon2": [0.0]}}},
        {"on_hand": {"echelon2": 80.0, "store": 50.0}, "in_transit": {"echelon2": {"supplier": [0.0]},
                                                                       "store": {"echelon2": [0.0]}}},
    ]
    response = post(client, "serial", networks, policy="echelon_stock", parameters=SERIAL)
    assert response.status_code == 200, response.text
    levels = best_echelon_stock(SPEC.scenario("serial", SERIAL)).levels.tolist()  # nodes: supplier, echelon2, store
    for network, answer in zip(networks, response.json()["networks"], strict=True):
        on_hand, transit = network["on_hand"], network["in_transit"]
        store_position = on_hand["store"] + sum(transit["store"]["echelon2"])
        echelon_position = on_hand["echelon2"] + sum(transit["echelon2"]["supplier"]) + store_position
        assert answer["orders"] == {
            "echelon2": {"supplier": pytest.approx(max(0.0, levels[1] - echelon_position), abs=1e-4)},
            "store": {"echelon2": pytest.approx(max(0.0, levels[2] - store_position), abs=1e-4)},
        }
    assert response.json()["networks"][2]["orders"]["store"]["echelon2"] == 0.0


def _register_network(home: Path, name: str, scenario_name: str, parameters: dict) -> tuple[NetworkSim, NetworkMLP]:
    """An untrained network policy for the scenario, registered as ``inventory/<name>@1``."""
    scenario = SPEC.scenario(scenario_name, parameters)
    sim = NetworkSim(scenario)
    torch.manual_seed(0)
    net = NetworkMLP.for_simulator(sim, hidden=(8,))
    card = {"policy_config": net.config(), "algo": "hdpo", "scenario": scenario.describe(), "metrics": {}}
    PolicyRegistry(home).save("inventory", name, net.state_dict(), card)
    return sim, net.eval()


@pytest.mark.parametrize(
    ("scenario_name", "parameters"),
    [("one_warehouse", ONE_WAREHOUSE), ("transshipment", {"n_stores": 2}), ("multi_warehouse", {})],
)
def test_registered_network_matches_the_simulator(
    client: TestClient, home: Path, scenario_name: str, parameters: dict
) -> None:
    sim, net = _register_network(home, "net", scenario_name, parameters)
    state = sim.random_state(4, make_generator(7))
    state = NetworkState(state.on_hand.round(decimals=2), state.pipeline.round(decimals=2))
    with torch.no_grad():
        expected = net.act(sim.observe(state))  # [4, n_edges]
    networks = [named_state(sim, state, b) for b in range(4)]
    response = post(client, scenario_name, networks, policy="net", parameters=parameters)
    assert response.status_code == 200, response.text
    assert response.json()["policy"] == "inventory/net@1"
    names = [node.name for node in sim.topology.nodes]
    for b, answer in enumerate(response.json()["networks"]):
        flat = {(dst, src): q for dst, by in answer["orders"].items() for src, q in by.items()}
        wanted = {(names[e.dst], names[e.src]): float(expected[b, k]) for k, e in enumerate(sim.topology.edges)}
        assert flat == pytest.approx(wanted, rel=1e-5)
    if scenario_name == "multi_warehouse":  # a store with two suppliers orders on each link
        assert any(len(by) == 2 for by in response.json()["networks"][0]["orders"].values())


def test_registered_network_for_another_network_is_refused(client: TestClient, home: Path) -> None:
    _register_network(home, "small", "one_warehouse", ONE_WAREHOUSE)
    bigger = {"n_stores": 3}
    described = client.get(NETWORK, params={"scenario": "one_warehouse", "parameters": json.dumps(bigger)}).json()
    state = described["example"]
    response = post(client, "one_warehouse", [state], policy="small", parameters=bigger)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("policy:")


def test_registered_gnn_serves_a_network_of_another_size(client: TestClient, home: Path) -> None:
    from decisionlab.domains.inventory.network.graph_policies import GNNPolicy

    torch.manual_seed(0)
    gnn = GNNPolicy(hidden=8)
    trained_on = SPEC.scenario("one_warehouse", ONE_WAREHOUSE)
    card = {"policy_config": gnn.config(), "algo": "hdpo", "scenario": trained_on.describe(), "metrics": {}}
    PolicyRegistry(home).save("inventory", "gnn", gnn.state_dict(), card)
    bigger = {"n_stores": 4}
    sim = NetworkSim(SPEC.scenario("one_warehouse", bigger))
    state = sim.random_state(2, make_generator(3))
    state = NetworkState(state.on_hand.round(decimals=2), state.pipeline.round(decimals=2))
    with torch.no_grad():
        expected = gnn.bind(sim).eval().act(sim.observe(state))  # [2, 5]
    response = post(client, "one_warehouse", [named_state(sim, state, b) for b in range(2)], policy="gnn",
                    parameters=bigger)
    assert response.status_code == 200, response.text
    orders = response.json()["networks"][1]["orders"]
    assert len(orders) == 5  # the warehouse and four stores, though the policy was trained on two
    assert orders["store3"]["warehouse"] == pytest.approx(float(expected[1, 4]), rel=1e-5)


def test_full_batch_is_accepted(client: TestClient) -> None:
    networks = [backlog_state(i % 11 - 3, [i % 5, i % 7]) for i in range(MAX_BATCH)]
    response = post(client, "backlog", networks, parameters=BACKLOG)
    assert response.status_code == 200, response.text
    assert len(response.json()["networks"]) == MAX_BATCH


# --- policy mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "scenario", "parameters", "networks"),
    [
        ("just_in_time", "backlog", BACKLOG, [backlog_state(0, [0, 0])]),  # reads the future
        ("optimal", "backlog", BACKLOG, [backlog_state(0, [0, 0])]),  # lost_sales only
        ("critical_fractile", "one_warehouse", ONE_WAREHOUSE, [one_warehouse_state()]),  # backlog only
        ("capped_echelon_stock", "serial", SERIAL, None),  # one/multi warehouse only
        ("newsvendor_quantile", "backlog", BACKLOG, [backlog_state(0, [0, 0])]),  # real_series only
    ],
)
def test_policies_that_cannot_serve_are_422_naming_policy(
    client: TestClient, policy: str, scenario: str, parameters: dict, networks: list | None
) -> None:
    if networks is None:
        networks = [{"on_hand": {"echelon2": 0, "store": 0},
                     "in_transit": {"echelon2": {"supplier": [0]}, "store": {"echelon2": [0]}}}]
    response = post(client, scenario, networks, policy=policy, parameters=parameters)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("policy:")
    assert policy in response.json()["detail"]


def test_non_admissible_policy_is_refused_before_the_states_are_read(client: TestClient) -> None:
    response = post(client, "backlog", [{"on_hand": {"nowhere": 1}}], policy="just_in_time")
    assert response.status_code == 422
    assert "not admissible" in response.json()["detail"]


def test_unknown_policy_is_404(client: TestClient) -> None:
    response = post(client, "backlog", [backlog_state(0, [0, 0])], policy="no_such_policy", parameters=BACKLOG)
    assert response.status_code == 404
    assert "echelon_stock" in response.json()["detail"]


# --- state mistakes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "field", "text"),
    [
        ({**one_warehouse_state(), "on_hand": {"warehouse": 1, "store0": 1, "store1": 1, "store7": 2}},
         "networks[0].on_hand.store7", "unknown node"),
        ({**one_warehouse_state(), "on_hand": {"warehouse": 1, "store0": 1}}, "networks[0].on_hand", "store1"),
        (one_warehouse_state(store0=-1.0), "networks[0].on_hand.store0", "lost-sales store"),
        (one_warehouse_state(warehouse=-5.0), "networks[0].on_hand.warehouse", "warehouse must be >= 0"),
        (one_warehouse_state(supplier=3.0), "networks[0].on_hand.supplier", "holds no stock"),
        ({**one_warehouse_state(), "in_transit": {**one_warehouse_state()["in_transit"],
                                                  "store0": {"warehouse": [1.0, 2.0]}}},
         "networks[0].in_transit.store0.warehouse", "expected 3 value(s)"),
        ({**one_warehouse_state(), "in_transit": {**one_warehouse_state()["in_transit"],
                                                  "store1": {"supplier": [1.0, 2.0]}}},
         "networks[0].in_transit.store1.supplier", "no supply link supplier -> store1"),
        ({**one_warehouse_state(), "in_transit": {"warehouse": {"supplier": [5.0, 5.0, 5.0]}}},
         "networks[0].in_transit", "warehouse -> store0"),
        ({**one_warehouse_state(), "in_transit": {**one_warehouse_state()["in_transit"], "depot": {"a": [1]}}},
         "networks[0].in_transit.depot", "unknown node"),
        ({**one_warehouse_state(), "in_transit": {**one_warehouse_state()["in_transit"],
                                                  "store0": {"warehouse": [1.0, -2.0, 0.0]}}},
         "networks[0].in_transit.store0.warehouse[1]", "greater than or equal to 0"),
        ({**one_warehouse_state(), "colour": "red"}, "networks[0].colour", "Extra inputs"),
        ({"in_transit": {}}, "networks[0].on_hand", "Field required"),
        ({**one_warehouse_state(), "on_hand": {"warehouse": "lots", "store0": 1, "store1": 1}},
         "networks[0].on_hand.warehouse", "valid number"),
    ],
)
def test_invalid_networks_name_the_field(client: TestClient, network: dict, field: str, text: str) -> None:
    response = post(client, "one_warehouse", [one_warehouse_state(), network], parameters=ONE_WAREHOUSE)
    assert response.status_code == 422, response.text
    field = field.replace("networks[0]", "networks[1]")
    problems = {p["field"]: p["message"] for p in response.json()["detail"]}
    assert field in problems, problems
    assert text in problems[field]


def test_transshipment_centre_on_hand_is_refused(client: TestClient) -> None:
    body = client.get(NETWORK, params={"scenario": "transshipment"}).json()
    state = body["example"]
    state["on_hand"]["centre"] = 2.0
    response = post(client, "transshipment", [state], policy="echelon_stock")
    assert response.status_code == 422
    assert fields(response) == ["networks[0].on_hand.centre"]


def test_backlog_store_may_be_negative_but_not_infinite(client: TestClient) -> None:
    assert post(client, "backlog", [backlog_state(-1e6, [0, 0])], parameters=BACKLOG).status_code == 200
    for token, where in (("NaN", "on_hand.store"), ("-Infinity", "on_hand.store"), ("Infinity", "in_transit")):
        state = (f'{{"on_hand": {{"store": {token}}}, "in_transit": {{"store": {{"supplier": [0, 0]}}}}}}'
                 if where == "on_hand.store" else
                 f'{{"on_hand": {{"store": 0}}, "in_transit": {{"store": {{"supplier": [0, {token}]}}}}}}')
        content = (f'{{"policy": "critical_fractile", "scenario": "backlog", "parameters": {{"lead_time": 2}}, '
                   f'"networks": [{state}]}}').encode()
        response = client.post(ORDERS, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert f"networks[0].{where}" in messages(response)


def test_too_many_networks_is_422(client: TestClient) -> None:
    response = post(client, "backlog", [backlog_state(0, [0, 0])] * (MAX_BATCH + 1), parameters=BACKLOG)
    assert response.status_code == 422
    assert "networks" in fields(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scenario": "backlog", "states": [{"on_hand": 1, "pipeline": [0, 0]}]}, "states"),
        ({"scenario": "backlog"}, "networks"),
        ({"scenario": "backlog", "networks": []}, "networks"),
        ({"scenario": "lost_sales", "networks": [backlog_state(0, [0, 0])],
          "states": [{"on_hand": 1, "pipeline": [0, 0]}]}, "networks"),
    ],
)
def test_wrong_kind_of_state_is_named(client: TestClient, body: dict, field: str) -> None:
    response = client.post(ORDERS, json={"policy": "critical_fractile", **body})
    assert response.status_code == 422
    assert field in fields(response)


def test_problems_of_many_networks_are_capped(client: TestClient) -> None:
    networks = [backlog_state(0, [0])] * 100  # every pipeline one value short
    response = post(client, "backlog", networks, parameters=BACKLOG)
    assert response.status_code == 422
    assert 1 <= len(response.json()["detail"]) <= 20


@pytest.mark.parametrize("example", [LOST_SALES_EXAMPLE, NETWORK_EXAMPLE, SERIES_EXAMPLE])
def test_documented_examples_are_served(client: TestClient, example: dict) -> None:
    response = client.post(ORDERS, json=example)
    assert response.status_code == 200, response.text
    assert {"orders", "networks"} & set(response.json())
