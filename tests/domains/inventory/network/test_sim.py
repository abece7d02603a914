"""Inventory-network simulator: dynamics by hand, allocation rules, lead times, batching, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decisionlab.core.engine import rollout
from decisionlab.core.seeding import make_generator
from decisionlab.core.sim import BatchedSimulator
from decisionlab.domains.inventory.network.scenario import (
    NETWORK_SCENARIOS,
    BacklogScenario,
    MultiWarehouseScenario,
    OneWarehouseScenario,
    SerialScenario,
    TransshipmentScenario,
)
from decisionlab.domains.inventory.network.sim import NetworkSim, NetworkState
from decisionlab.domains.inventory.network.topology import (
    DemandModel,
    Edge,
    Node,
    Topology,
    one_warehouse,
    serial,
    single_store,
)
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim, StoreState

H, P = 2.0, 7.0


def _hub(lead_w: int, leads: tuple[int, ...], hub: str = "warehouse", lost_sales: bool = True,
         h_w: float = 0.5) -> NetworkSim:
    n = len(leads)
    topo = one_warehouse(lead_w, h_w, leads, (H,) * n, (P,) * n, lost_sales, hub=hub)
    return NetworkSim.from_parts(topo, DemandModel((5.0,) * n, (1.0,) * n))


def _state(on_hand: list[list[float]], pipeline: list[list[list[float]]]) -> NetworkState:
    return NetworkState(torch.tensor(on_hand), torch.tensor(pipeline))


@pytest.mark.parametrize("name", list(NETWORK_SCENARIOS))
def test_every_preset_satisfies_the_simulator_protocol(name: str) -> None:
    """Shapes of demand, observation, node features and step outputs; rewards are minus costs."""
    sim = NetworkSim(NETWORK_SCENARIOS[name])
    assert isinstance(sim, BatchedSimulator)
    demand = sim.sample_exogenous(4, 6, make_generator(0))
    assert demand.shape == (4, 6, sim.n_stores)
    state = sim.reset(4)
    for t in range(6):
        obs = sim.observe(state)
        assert obs.shape == (4, sim.observation_size) and sim.flat_observation(obs) is obs
        result = sim.step(state, torch.full((4, sim.action_size), 3.0), demand[:, t])
        state = result.state
    info = result.info
    assert torch.allclose(result.reward, -info["cost"])
    assert torch.allclose(info["cost"], info["holding_cost"] + info["shortage_cost"] + info["backlog_cost"])
    assert info["on_hand"].shape == (4, sim.n_nodes)
    nodes = sim.observe_nodes(state)
    assert nodes.shape[:2] == (4, sim.n_nodes) and sim.edge_index.shape == (2, sim.n_edges)
    assert sim.observe_edges(state).shape == (4, sim.n_edges, sim.max_lead + 2)
    assert torch.equal(sim.observe(sim.state_from_observation(sim.observe(state))), sim.observe(state))


@pytest.mark.parametrize("lead_time", [0, 1, 3])
def test_single_store_with_lost_sales_matches_the_single_store_simulator(lead_time: int) -> None:
    """Same orders, same demand: the network simulator reproduces SingleStoreSim exactly."""
    scenario = LostSalesScenario(lead_time=lead_time, holding_cost=H, underage_cost=P)
    old = SingleStoreSim(scenario)
    new = NetworkSim.from_parts(single_store(lead_time, H, P, lost_sales=True), DemandModel((5.0,), (5.0**0.5,)))
    gen = make_generator(3)
    demand = old.sample_exogenous(8, 30, gen)
    orders = torch.rand(8, 30, generator=gen) * 10
    s_old, s_new = old.reset(8), new.reset(8)
    for t in range(30):
        assert torch.allclose(old.observe(s_old), new.observe(s_new))
        r_old = old.step(s_old, orders[:, t], demand[:, t])
        r_new = new.step(s_new, orders[:, t : t + 1], demand[:, t : t + 1])
        assert torch.allclose(r_old.reward, r_new.reward)
        assert torch.allclose(r_old.info["sales"], r_new.info["sales"])
        s_old, s_new = r_old.state, r_new.state
    assert isinstance(s_old, StoreState)


def test_backlog_net_stock_goes_negative_and_is_charged_p() -> None:
    """L = 1: nothing on hand, demand 3 → net stock −3 (cost 3p); the order of 10 arrives next
    period and first clears the backlog: 10 − 3 − 2 = 5 left (cost 5h)."""
    sim = NetworkSim.from_parts(single_store(1, H, P, lost_sales=False), DemandModel((5.0,), (1.0,)))
    state = sim.reset(1)
    first = sim.step(state, torch.tensor([[10.0]]), torch.tensor([[3.0]]))
    assert first.state.on_hand.tolist() == [[0.0, -3.0]]
    assert float(first.info["backlog_cost"]) == 3 * P and float(first.info["shortage_cost"]) == 0.0
    second = sim.step(first.state, torch.tensor([[0.0]]), torch.tensor([[2.0]]))
    assert second.state.on_hand.tolist() == [[0.0, 5.0]]
    assert float(second.info["cost"]) == 5 * H


def test_sales_count_demand_served_from_stock_in_its_period() -> None:
    sim = NetworkSim.from_parts(single_store(1, H, P, lost_sales=False), DemandModel((5.0,), (1.0,)))
    state = _state([[0.0, -3.0]], [[[10.0]]])
    result = sim.step(state, torch.tensor([[0.0]]), torch.tensor([[2.0]]))
    assert float(result.info["sales"]) == 2.0  # 10 arrive, 3 go to the backlog, 2 of the 7 left serve demand


def test_mixed_lead_times_arrive_exactly_on_time() -> None:
    """Warehouse L=2 from the supplier, store leads 1 and 3: one request on each link in period 0
    shows up at the destination in periods 2, 1 and 3 (before that period's demand)."""
    sim = _hub(2, (1, 3), h_w=0.0)
    state = NetworkState(torch.tensor([[0.0, 100.0, 0.0, 0.0]]), torch.zeros(1, 3, 3))
    state = sim.step(state, torch.tensor([[7.0, 4.0, 5.0]]), torch.zeros(1, 2)).state
    seen = []
    for _ in range(4):
        seen.append(state.on_hand[0].tolist())
        state = sim.step(state, torch.zeros(1, 3), torch.zeros(1, 2)).state
    # rows: start of periods 1..4 (after period t's step): warehouse, store0, store1
    assert seen[0][1:] == [91.0, 0.0, 0.0]  # 100 − 4 − 5 shipped in period 0
    assert seen[1][1:] == [91.0, 4.0, 0.0]  # store0 (L=1) received in period 1
    assert seen[2][1:] == [98.0, 4.0, 0.0]  # warehouse (L=2) received in period 2
    assert seen[3][1:] == [98.0, 4.0, 5.0]  # store1 (L=3) received in period 3
    assert sim.arrival_index.tolist() == [1, 0, 2] and sim.max_lead == 3


def test_proportional_allocation_when_the_warehouse_is_short() -> None:
    """Stock 6, requests 4 and 8 → each gets request · 6/12: 2 and 4; with 20 in stock both in full."""
    sim = _hub(1, (1, 1))
    short = _state([[0, 6.0, 0, 0]], [[[0.0], [0.0], [0.0]]])
    after = sim.post_decision(short, torch.tensor([[0.0, 4.0, 8.0]]))
    assert after.pipeline[0, 1:, 0].tolist() == [2.0, 4.0] and float(after.on_hand[0, 1]) == 0.0
    plenty = _state([[0, 20.0, 0, 0]], [[[0.0], [0.0], [0.0]]])
    after = sim.post_decision(plenty, torch.tensor([[0.0, 4.0, 8.0]]))
    assert after.pipeline[0, 1:, 0].tolist() == [4.0, 8.0] and float(after.on_hand[0, 1]) == 8.0
    # what arrives at the warehouse this period can be shipped this period
    arriving = _state([[0, 0.0, 0, 0]], [[[12.0], [0.0], [0.0]]])
    after = sim.post_decision(arriving, torch.tensor([[0.0, 4.0, 8.0]]))
    assert after.pipeline[0, 1:, 0].tolist() == [4.0, 8.0]


def test_centre_ships_everything_it_receives() -> None:
    """A centre holds nothing: 10 arrive, requests 1 and 3 → 2.5 and 7.5; no requests → by mean demand."""
    sim = _hub(1, (1, 2), hub="centre", lost_sales=False)
    state = NetworkState(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), torch.tensor([[[10.0, 0.0], [0.0, 0.0], [0, 0]]]))
    after = sim.post_decision(state, torch.tensor([[0.0, 1.0, 3.0]]))
    assert after.pipeline[0, 1, 0].item() == pytest.approx(2.5, abs=1e-4)
    assert after.pipeline[0, 2, 1].item() == pytest.approx(7.5, abs=1e-4)
    assert float(after.on_hand[0, 1]) == 0.0
    after = sim.post_decision(state, torch.zeros(1, 3))
    assert after.pipeline[0, 1, 0].item() == pytest.approx(5.0, abs=1e-4)  # equal mean demands: equal split
    assert after.pipeline[0, 2, 1].item() == pytest.approx(5.0, abs=1e-4)


def test_serial_chain_ships_only_what_is_upstream_and_backlogs_at_the_store() -> None:
    sim = NetworkSim.from_parts(serial((1, 1, 1), (0.1, 0.5, 1.0), 9.0), DemandModel((5.0,), (1.0,)))
    state = NetworkState(torch.tensor([[0.0, 3.0, 1.0, 0.0]]), torch.zeros(1, 3, 1))
    result = sim.step(state, torch.tensor([[10.0, 10.0, 10.0]]), torch.tensor([[4.0]]))
    assert result.state.pipeline[0, :, 0].tolist() == [10.0, 3.0, 1.0]  # supplier full, then stock-limited
    assert result.state.on_hand[0].tolist() == [0.0, 0.0, 0.0, -4.0]
    assert float(result.info["backlog_cost"]) == 36.0 and float(result.info["holding_cost"]) == 0.0


def test_multi_warehouse_allocates_per_warehouse_on_each_link() -> None:
    """Store 0 orders from both warehouses; warehouse 0 is short, warehouse 1 is not."""
    scenario = MultiWarehouseScenario(n_warehouses=2, n_stores=2, adjacency=((1, 1), (1, 0)))
    sim = NetworkSim(scenario)
    links = [(e.src, e.dst) for e in sim.topology.edges]
    assert links == [(0, 1), (0, 2), (1, 3), (1, 4), (2, 3)]
    state = NetworkState(torch.tensor([[0.0, 4.0, 10.0, 0.0, 0.0]]), torch.zeros(1, 5, sim.max_lead))
    after, shipped = sim._ship(state, torch.tensor([[0.0, 0.0, 2.0, 6.0, 3.0]]))
    assert shipped[0].tolist() == [0.0, 0.0, 1.0, 3.0, 3.0]
    assert after.on_hand[0, 1:3].tolist() == [0.0, 7.0]


def test_zero_lead_time_link_delivers_at_once() -> None:
    sim = NetworkSim.from_parts(single_store(0, H, P, lost_sales=True), DemandModel((5.0,), (1.0,)))
    result = sim.step(NetworkState(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 1, 0)), torch.tensor([[4.0]]),
                      torch.tensor([[3.0]]))
    assert result.state.on_hand.tolist() == [[0.0, 2.0]] and float(result.info["cost"]) == 2 * H


def test_step_is_pure_and_batched_rows_are_independent() -> None:
    """The input state is untouched; rolling B networks together equals rolling each alone."""
    sim = NetworkSim(OneWarehouseScenario(n_stores=4))
    gen = make_generator(1)
    state = sim.random_state(5, gen)
    before = (state.on_hand.clone(), state.pipeline.clone())
    action = torch.rand(5, sim.n_edges, generator=gen) * 8
    demand = sim.sample_exogenous(5, 1, gen)[:, 0]
    together = sim.step(state, action, demand)
    assert torch.equal(state.on_hand, before[0]) and torch.equal(state.pipeline, before[1])
    for i in range(5):
        alone = sim.step(NetworkState(state.on_hand[i : i + 1], state.pipeline[i : i + 1]), action[i : i + 1],
                         demand[i : i + 1])
        assert torch.allclose(alone.reward, together.reward[i : i + 1])
        assert torch.allclose(alone.state.pipeline, together.state.pipeline[i : i + 1])


@pytest.mark.parametrize("scenario", [OneWarehouseScenario(), TransshipmentScenario(), SerialScenario()],
                         ids=["one_warehouse", "transshipment", "serial"])
def test_cost_is_differentiable_in_every_link_order(scenario) -> None:
    """Gradients of a 12-period cost reach every link's orders (through allocation) and are finite."""
    sim = NetworkSim(scenario)
    gen = make_generator(2)
    orders = (torch.rand(12, 3, sim.n_edges, generator=gen) * sim.edge_flow * 2).requires_grad_(True)
    demand = sim.sample_exogenous(3, 12, gen)
    state = sim.random_state(3, gen)
    total = torch.zeros(())
    for t in range(12):
        result = sim.step(state, orders[t], demand[:, t])
        state, total = result.state, total - result.reward.sum()
    total.backward()
    grad = orders.grad
    assert torch.isfinite(grad).all()
    assert (grad[:6].abs().sum(dim=(0, 1)) > 0).all()  # early orders of every link matter


def test_post_decision_state_is_what_demand_is_served_from() -> None:
    sim = NetworkSim(OneWarehouseScenario(n_stores=3))
    gen = make_generator(4)
    state = sim.random_state(6, gen)
    action = torch.rand(6, sim.n_edges, generator=gen) * 6
    demand = sim.sample_exogenous(6, 1, gen)[:, 0]
    after = sim.post_decision(state, action)
    result = sim.step(state, action, demand)
    expected = torch.relu(after.on_hand[:, sim.stores] - demand)
    assert torch.allclose(result.state.on_hand[:, sim.stores], expected)
    assert torch.equal(result.state.pipeline, after.pipeline)


def test_demand_common_random_numbers_correlation_and_means() -> None:
    scenario = OneWarehouseScenario(n_stores=4)
    sim = NetworkSim(scenario)
    a = sim.sample_exogenous(64, 50, make_generator(9))
    assert torch.equal(a, sim.sample_exogenous(64, 50, make_generator(9)))
    flat = sim.sample_exogenous(4000, 20, make_generator(1)).reshape(-1, 4).double().numpy()
    means = scenario.stores.demand_means
    assert np.allclose(flat.mean(0), means, rtol=0.02)
    corr = np.corrcoef(flat.T)[np.triu_indices(4, 1)]
    assert np.all(np.abs(corr - 0.5) < 0.05)  # clipping at 0 barely moves it at CV <= 0.5
    assert (flat >= 0).all()


def test_store_parameters_come_from_the_ranges_and_store_i_does_not_depend_on_n() -> None:
    small, large = OneWarehouseScenario(n_stores=3), OneWarehouseScenario(n_stores=10)
    assert np.allclose(small.stores.demand_means, large.stores.demand_means[:3])
    s = large.stores
    assert ((s.demand_means >= 2.5) & (s.demand_means <= 7.5)).all()
    assert ((s.demand_cvs >= 0.25) & (s.demand_cvs <= 0.5)).all()
    assert set(s.lead_times.tolist()) <= {2, 3}
    assert ((s.holding_costs >= 0.7) & (s.holding_costs <= 1.3)).all()
    assert ((s.underage_costs >= 6.3) & (s.underage_costs <= 11.7)).all()
    assert OneWarehouseScenario(scenario_seed=1).stores.demand_means[0] != small.stores.demand_means[0]


def test_negative_demand_only_when_allowed() -> None:
    low = BacklogScenario(demand_mean=1.0, demand_cv=1.0)
    assert (NetworkSim(low).sample_exogenous(256, 10, make_generator(0)) >= 0).all()
    free = BacklogScenario(demand_mean=1.0, demand_cv=1.0, allow_negative_demand=True)
    assert (NetworkSim(free).sample_exogenous(256, 10, make_generator(0)) < 0).any()


def test_topology_validation() -> None:
    sup, wh, st = Node("s", "supplier"), Node("w", "warehouse", 1.0), Node("x", "store", 1.0, 5.0)
    with pytest.raises(ValueError, match="no supply link"):
        Topology((sup, wh, st), (Edge(0, 2, 1),), lost_sales=True)
    with pytest.raises(ValueError, match="cycle"):
        Topology((sup, wh, Node("v", "warehouse"), st), (Edge(1, 2, 1), Edge(2, 1, 1), Edge(2, 3, 1)), True)
    with pytest.raises(ValueError, match="store ships nothing"):
        Topology((sup, st, wh), (Edge(0, 1, 1), Edge(1, 2, 1)), True)
    with pytest.raises(ValueError, match="centre"):
        Topology((sup, Node("c", "centre"), st), (Edge(0, 1, 0), Edge(1, 2, 1)), False)
    with pytest.raises(ValueError, match="one lead time"):
        serial((1, 2), (1.0,), 9.0)


def test_rollout_through_the_core_keeps_gradients() -> None:
    """The generic rollout works on the network simulator with a differentiable policy."""
    sim = NetworkSim(OneWarehouseScenario(n_stores=3))
    weights = torch.ones(sim.n_edges, requires_grad=True)

    class Scaled:
        name = "scaled"

        def act(self, obs: torch.Tensor) -> torch.Tensor:
            return weights * sim.edge_flow.expand(obs.shape[0], -1)

    demand = sim.sample_exogenous(4, 10, make_generator(0))
    traj = rollout(sim, Scaled(), demand, grad=True, record=("holding_cost",))
    (-traj.rewards.mean()).backward()
    assert traj.info["holding_cost"].shape == (4, 10) and weights.grad is not None


def test_node_and_edge_features_for_graph_networks() -> None:
    """Per-node on hand and inbound pipeline (summed over links, per slot), kind one-hot; per-link pipeline."""
    sim = _hub(1, (1, 2))
    state = NetworkState(torch.tensor([[0.0, 10.0, 3.0, 1.0]]), torch.tensor([[[4.0, 0.0], [2.0, 0.0], [5.0, 6.0]]]))
    nodes = sim.observe_nodes(state, scaled=False)[0]
    assert nodes[:, 0].tolist() == [0.0, 10.0, 3.0, 1.0]
    assert nodes[:, 1:3].tolist() == [[0.0, 0.0], [4.0, 0.0], [2.0, 0.0], [5.0, 6.0]]
    assert nodes[:, 3:7].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert sim.edge_index.tolist() == [[0, 1, 1], [1, 2, 3]]
    edges = sim.observe_edges(state, scaled=False)[0]
    assert edges[:, :2].tolist() == [[4.0, 0.0], [2.0, 0.0], [5.0, 6.0]] and edges[:, 2].tolist() == [1, 1, 2]


def test_a_copied_scenario_describes_its_own_stores() -> None:
    from decisionlab.domains.inventory.network.scenario import OneWarehouseScenario

    big = OneWarehouseScenario(n_stores=20)
    assert len(big.stores.demand_means) == 20
    small = big.model_copy(update={"n_stores": 5})
    assert len(small.stores.demand_means) == 5 and small.topology().n_nodes == 7
    assert small.stores.demand_means.tolist() == big.stores.demand_means[:5].tolist()  # store i stays store i
