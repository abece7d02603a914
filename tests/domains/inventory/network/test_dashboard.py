"""The inventory page on network scenarios: node layout, per-node stock over a path, the quick
references, and the page itself (AppTest) drawing the network as a graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from decisionlab.core.dashboard.compare import build_selected, results_key, run_comparison
from decisionlab.core.seeding import make_generator
from decisionlab.core.spec import get_domain
from decisionlab.domains.inventory import SPEC
from decisionlab.domains.inventory.network import efficiency
from decisionlab.domains.inventory.network import view as network_view
from decisionlab.domains.inventory.network.policies import LevelPolicy
from decisionlab.domains.inventory.network.sim import NetworkSim
from decisionlab.domains.inventory.views import decomposition_figure

CPU = torch.device("cpu")
STATE_KEY = results_key(SPEC)


@pytest.fixture(autouse=True)
def no_efficiency_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficiency, "DATA_EFFICIENCY_CSV", tmp_path / "no_data_efficiency.csv")


def _scenario(name: str, **overrides: object):
    return get_domain("inventory").scenario(name, {"horizon_periods": 300, "warmup_periods": 50, **overrides})


def _x(layout: pl.DataFrame, name: str) -> float:
    return float(layout.filter(pl.col("name") == name)["x"][0])


def test_layout_puts_suppliers_left_of_warehouses_left_of_stores() -> None:
    layout = network_view.node_layout(_scenario("one_warehouse").topology())
    assert layout.columns[:6] == ["node", "name", "kind", "depth", "x", "y"]
    assert _x(layout, "supplier") < _x(layout, "warehouse") < _x(layout, "store0")
    stores = layout.filter(pl.col("kind") == "store")
    assert stores["x"].n_unique() == 1 and stores["y"].n_unique() == 3  # one column, spread out
    assert stores["y"].sum() == pytest.approx(0.0)  # centred

    chain = network_view.node_layout(_scenario("serial").topology())
    assert chain["name"].to_list() == ["supplier", "echelon4", "echelon3", "echelon2", "store"]
    assert chain["x"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]

    multi = network_view.node_layout(_scenario("multi_warehouse").topology())
    depth = dict(zip(multi["kind"], multi["depth"], strict=False))
    assert depth == {"supplier": 0, "warehouse": 1, "store": 2}
    assert multi.filter(pl.col("kind") == "warehouse").height == 3


def test_edge_frame_carries_lead_times_and_end_points() -> None:
    topology = _scenario("transshipment").topology()
    layout = network_view.node_layout(topology)
    edges = network_view.edge_frame(topology, layout)
    assert edges.height == topology.n_edges
    assert edges["lead_time"].to_list() == list(topology.lead_times)
    first = edges.row(0, named=True)
    assert (first["x0"], first["x1"]) == (0.0, 1.0)  # supplier -> centre
    figure = network_view.network_figure(layout, edges)
    labels = figure.data[1].text
    assert labels[0] == f"L={topology.edges[0].lead_time}" and len(labels) == topology.n_edges


def test_node_inventories_equal_a_direct_network_rollout() -> None:
    scenario = _scenario("one_warehouse")
    sim = NetworkSim(scenario)
    policy = network_view.quick_policy("newsvendor_echelon", scenario)
    low = LevelPolicy(sim, policy.levels * 0.5, "echelon", name="low")
    frame = network_view.node_inventories(scenario, [("q", policy), ("low", low)], periods=20, warmup=30, seed=4)
    assert frame.height == 2 * 20 * sim.n_nodes
    assert set(frame.columns) >= {"policy", "period", "node", "name", "kind", "on_hand", "backlog"}

    demand = sim.sample_exogenous(1, 50, make_generator(4, sim.device))
    state = sim.reset(1)
    expected = []
    with torch.no_grad():
        for t in range(50):
            state = sim.step(state, policy.act(sim.observe(state)), demand[:, t]).state
            if t >= 30:
                expected.append(state.on_hand[0].numpy())
    mine = frame.filter(pl.col("policy") == "q").sort("period", "node")
    np.testing.assert_allclose(mine["on_hand"].to_numpy().reshape(20, -1), np.stack(expected), atol=1e-5)
    assert (frame.filter(pl.col("kind") == "supplier")["on_hand"] == 0).all()

    summary = network_view.node_summary(frame, "q")
    assert summary["node"].to_list() == list(range(sim.n_nodes))
    np.testing.assert_allclose(summary["on_hand"].to_numpy(), np.stack(expected).mean(axis=0), atol=1e-5)
    at_five = network_view.node_summary(frame, "q", period=5)
    np.testing.assert_allclose(at_five["on_hand"].to_numpy(), expected[4], atol=1e-5)
    # Lower levels keep less stock on the same demand path.
    assert network_view.node_summary(frame, "low")["on_hand"].sum() < summary["on_hand"].sum()

    figure = network_view.network_figure(network_view.node_layout(sim.topology),
                                         network_view.edge_frame(sim.topology, network_view.node_layout(sim.topology)),
                                         summary)
    nodes = figure.data[-1]
    assert list(nodes.marker.color) == pytest.approx(summary["on_hand"].to_list())
    assert len(network_view.inventory_figure(frame, "q").data) == sim.n_nodes - 1  # warehouse + stores


def test_backlog_shows_as_backlog_and_quick_references_are_network_only() -> None:
    scenario = _scenario("backlog")

    class NeverOrders:
        def act(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.zeros(obs.shape[0], 1)

    frame = network_view.node_inventories(scenario, [("none", NeverOrders())], periods=5, warmup=5)
    store = frame.filter(pl.col("kind") == "store")
    assert (store["on_hand"] == 0).all() and (store["backlog"] > 0).all()
    assert np.all(np.diff(store["backlog"].to_numpy()) >= 0)

    spec = get_domain("inventory")
    lost = spec.scenario("lost_sales")
    built, skipped = build_selected(spec, lost, ["newsvendor_local", "myopic"], CPU)
    assert [label for label, _ in built] == ["myopic"] and "network" in skipped["newsvendor_local"]


def test_quick_references_beat_nothing_and_echelon_is_cheaper_than_local() -> None:
    result = run_comparison(SPEC, "one_warehouse", {"horizon_periods": 400, "warmup_periods": 100},
                            ["newsvendor_echelon", "newsvendor_local"], episodes=8, device=CPU)
    table = result.table
    assert table["policy"].to_list() == ["newsvendor_echelon", "newsvendor_local"]
    assert {"holding_cost_per_period", "shortage_cost_per_period", "backlog_cost_per_period"} <= set(table.columns)
    parts = table["holding_cost_per_period"] + table["shortage_cost_per_period"] + table["backlog_cost_per_period"]
    np.testing.assert_allclose(parts.to_numpy(), table["cost_per_period"].to_numpy(), rtol=1e-6)
    assert (table["backlog_cost_per_period"] == 0).all()  # lost sales at the stores
    assert table["diff_vs_first"][1] > 0  # the local rule over-stocks the stores (paired on the same paths)
    assert result.setting == "network" and not result.cache  # the tabs compute their frames when drawn
    figure = decomposition_figure(table)
    assert [bar.name for bar in figure.data] == ["holding", "lost sales"]  # zero backlog left out


def test_network_page_draws_the_graph_and_compares_policies(domain_page) -> None:
    at = domain_page("inventory").run()
    at.selectbox(key="inventory_preset").set_value("multi_warehouse").run(timeout=60)
    assert not at.exception, at.exception
    assert at.number_input(key="inventory_n_warehouses").value == 3
    assert at.checkbox(key="inventory_lost_sales").value is True
    assert at.text_input(key="inventory_store_lead_times").value == "[2, 3]"
    policies = at.multiselect(key="inventory_policies")
    assert policies.value == list(network_view.QUICK_POLICIES)
    assert "capped_echelon_stock" in policies.options and "optimal" not in policies.options
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # the network before any run

    at.number_input(key="inventory_horizon_periods").set_value(300)
    at.number_input(key="inventory_warmup_periods").set_value(60)
    at.number_input(key="inventory_episodes").set_value(4)
    at.number_input(key="inventory_n_stores").set_value(4)
    at.button(key="inventory_run").click().run(timeout=120)
    assert not at.exception, at.exception
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["policy"]) == list(network_view.QUICK_POLICIES)
    assert len(at.get("plotly_chart")) == 4  # paired difference, network graph, stock per node, decomposition
    result = at.session_state[STATE_KEY]
    assert len(result.scenario.topology().stores) == 4

    at.selectbox(key="inventory_graph_policy").set_value("newsvendor_local")
    at.slider(key="inventory_graph_period").set_value(10).run(timeout=60)
    assert not at.exception, at.exception
    assert at.session_state[STATE_KEY] is result  # no recomputation

    # A malformed text field names the field instead of a traceback.
    at.text_input(key="inventory_store_lead_times").set_value("[2, oops").run(timeout=60)
    assert not at.exception
    assert "store_lead_times" in at.error[0].value
