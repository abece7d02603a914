"""Single-store lost-sales simulator: dynamics by hand, purity, differentiability and common random numbers."""

from __future__ import annotations

import pytest
import torch

from decisionlab.core.engine import rollout
from decisionlab.core.seeding import make_generator
from decisionlab.domains.inventory.single_store.policies import BaseStockPolicy
from decisionlab.domains.inventory.single_store.scenario import LostSalesScenario
from decisionlab.domains.inventory.single_store.sim import SingleStoreSim, StoreState, state_from_observation

H, P = 2.0, 7.0


def _sim(lead_time: int, **kwargs: object) -> SingleStoreSim:
    return SingleStoreSim(LostSalesScenario(lead_time=lead_time, holding_cost=H, underage_cost=P, **kwargs))


def test_order_arrives_exactly_lead_time_periods_later() -> None:
    """L = 2: an order placed in period 0 is first usable in period 2, before that period's demand."""
    sim = _sim(2)
    state = sim.reset(1)
    orders = [5.0, 0.0, 0.0, 0.0, 0.0]
    demands = [1.0, 1.0, 2.0, 1.0, 4.0]
    on_hand, costs, lost = [], [], []
    for q, d in zip(orders, demands, strict=True):
        result = sim.step(state, torch.tensor([q]), torch.tensor([d]))
        state = result.state
        on_hand.append(float(state.on_hand))
        costs.append(float(result.info["cost"]))
        lost.append(float(result.info["demand"] - result.info["sales"]))
        assert float(result.reward) == -float(result.info["cost"])
    assert on_hand == [0.0, 0.0, 3.0, 2.0, 0.0]
    assert lost == [1.0, 1.0, 0.0, 0.0, 2.0]  # nothing on hand yet; then 2 of 4 lost at the end
    assert costs == [P * 1, P * 1, H * 3, H * 2, P * 2]


def test_lost_sales_clip_at_zero_and_cost_is_holding_plus_shortage() -> None:
    """Batch of three stores: surplus, exact match, shortage. Stock never goes negative."""
    sim = _sim(1)
    state = StoreState(on_hand=torch.tensor([6.0, 2.0, 1.0]), pipeline=torch.tensor([[2.0], [3.0], [0.0]]))
    result = sim.step(state, torch.tensor([1.0, 0.0, 4.0]), torch.tensor([3.0, 5.0, 10.0]))
    assert result.state.on_hand.tolist() == [5.0, 0.0, 0.0]
    assert result.state.pipeline.tolist() == [[1.0], [0.0], [4.0]]
    assert result.info["holding_cost"].tolist() == [H * 5, 0.0, 0.0]
    assert result.info["shortage_cost"].tolist() == [0.0, 0.0, P * 9]
    assert result.info["sales"].tolist() == [3.0, 5.0, 1.0]
    assert torch.equal(result.info["cost"], result.info["holding_cost"] + result.info["shortage_cost"])
    assert torch.equal(result.reward, -result.info["cost"])


def test_zero_lead_time_order_arrives_at_once() -> None:
    sim = _sim(0)
    state = StoreState(on_hand=torch.tensor([1.0]), pipeline=torch.zeros(1, 0))
    result = sim.step(state, torch.tensor([[4.0]]), torch.tensor([3.0]))
    assert float(result.state.on_hand) == 2.0
    assert float(result.info["cost"]) == H * 2
    assert result.state.pipeline.shape == (1, 0)


def test_negative_orders_count_as_zero() -> None:
    sim = _sim(0)
    state = StoreState(on_hand=torch.tensor([5.0]), pipeline=torch.zeros(1, 0))
    result = sim.step(state, torch.tensor([-3.0]), torch.tensor([2.0]))
    assert float(result.state.on_hand) == 3.0
    assert float(result.info["order"]) == 0.0


def test_step_is_pure() -> None:
    """The input state's tensors are not modified, so one state can be stepped under several policies."""
    sim = _sim(3)
    state = StoreState(on_hand=torch.tensor([4.0, 1.0]), pipeline=torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 1.0]]))
    on_hand, pipeline = state.on_hand.clone(), state.pipeline.clone()
    first = sim.step(state, torch.tensor([2.0, 0.0]), torch.tensor([3.0, 9.0]))
    second = sim.step(state, torch.tensor([2.0, 0.0]), torch.tensor([3.0, 9.0]))
    assert torch.equal(state.on_hand, on_hand)
    assert torch.equal(state.pipeline, pipeline)
    assert torch.equal(first.state.on_hand, second.state.on_hand)
    assert torch.equal(first.state.pipeline, second.state.pipeline)


def test_observation_round_trip() -> None:
    sim = _sim(2)
    state = StoreState(on_hand=torch.tensor([4.0]), pipeline=torch.tensor([[1.0, 2.0]]))
    obs = sim.observe(state)
    assert obs.tolist() == [[4.0, 1.0, 2.0]]
    assert obs.shape[1:] == sim.spaces.observation.shape
    back = state_from_observation(obs)
    assert torch.equal(back.on_hand, state.on_hand)
    assert torch.equal(back.pipeline, state.pipeline)
    assert float(state.inventory_position()) == 7.0


@pytest.mark.parametrize(("on_hand", "demand", "slope"), [(5.0, 3.0, H), (0.0, 3.0, -P)])
def test_cost_is_differentiable_in_the_order(on_hand: float, demand: float, slope: float) -> None:
    """L = 0: d cost / d order is h when stock is left over and -p when sales are lost."""
    sim = _sim(0)
    order = torch.tensor([1.0], requires_grad=True)
    result = sim.step(StoreState(torch.tensor([on_hand]), torch.zeros(1, 0)), order, torch.tensor([demand]))
    result.info["cost"].sum().backward()
    assert order.grad is not None
    assert float(order.grad) == slope


def test_gradient_flows_through_the_pipeline() -> None:
    """L = 1: this period's order changes next period's cost; the rollout keeps that gradient."""
    sim = _sim(1)
    order = torch.tensor([2.0], requires_grad=True)
    state = StoreState(torch.tensor([0.0]), torch.tensor([[0.0]]))
    first = sim.step(state, order, torch.tensor([0.0]))
    second = sim.step(first.state, torch.tensor([0.0]), torch.tensor([5.0]))  # 2 arrive, 3 lost
    (first.info["cost"] + second.info["cost"]).sum().backward()
    assert float(order.grad) == -P


def test_rollout_gradient_reaches_policy_parameters() -> None:
    """A parametrised base-stock level gets a gradient from a multi-period rollout."""
    sim = _sim(2)
    level = torch.tensor(12.0, requires_grad=True)
    demand = sim.sample_exogenous(64, 20, make_generator(0))
    traj = rollout(sim, BaseStockPolicy(level), demand, grad=True)
    (-traj.rewards.mean()).backward()
    assert level.grad is not None
    assert float(level.grad) < 0  # 12 is below the optimal level (~19): raising it lowers cost


def test_common_random_numbers() -> None:
    """Same generator seed: identical demand; another seed: different demand."""
    sim = _sim(2)
    a = sim.sample_exogenous(8, 50, make_generator(3))
    b = sim.sample_exogenous(8, 50, make_generator(3))
    c = sim.sample_exogenous(8, 50, make_generator(4))
    assert a.shape == (8, 50)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_poisson_demand_is_integer_with_the_right_mean() -> None:
    demand = _sim(1, demand_mean=5.0).sample_exogenous(200, 500, make_generator(1))
    assert torch.equal(demand, demand.round())
    assert float(demand.min()) >= 0
    assert float(demand.mean()) == pytest.approx(5.0, abs=0.02)  # s.e. = sqrt(5 / 1e5) ~ 0.007
    assert float(demand.var()) == pytest.approx(5.0, rel=0.03)


def test_normal_demand_is_non_negative() -> None:
    """Normal demand with a large CV has many negative draws; all are clipped to 0."""
    sim = _sim(1, demand_distribution="normal", demand_mean=10.0, demand_cv=1.5)
    demand = sim.sample_exogenous(100, 200, make_generator(2))
    assert float(demand.min()) == 0.0
    assert float((demand == 0).float().mean()) > 0.2  # P(N(10, 15) < 0) ~ 0.25
    assert not torch.equal(demand, demand.round())  # continuous
